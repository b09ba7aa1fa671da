// Reading GGUF headers (metadata and tensor infos, never tensor data) from local files and byte
// buffers. Every count and length in the file is checked against the bytes that exist before it is
// used, so a truncated, corrupt or hostile file yields one error sentence naming the file and the
// problem, never a crash or an unbounded allocation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>

#include "core/status.h"
#include "gguf/gguf.h"

namespace snug::gguf {

// file_size value meaning "the total size is not known" (a server that sent no length): tensor
// data is then not checked against the end of the file, and file_bytes is where the last tensor
// ends.
inline constexpr uint64_t kUnknownFileSize = std::numeric_limits<uint64_t>::max();

// Metadata arrays longer than these keep only array_length (the planner needs counts, not the
// 150k tokenizer strings); shorter ones keep their elements in Value::data.
inline constexpr uint64_t kMaxKeptNumericArray = 4096;
inline constexpr uint64_t kMaxKeptStringArray = 1024;
// tokenizer.ggml.tokens arrays up to this length are scanned for repeated tokens
// (File::duplicate_token) with at most 24 bytes of bookkeeping per token. Real vocabularies have at
// most a few hundred thousand tokens; a longer array is left unscanned (and refused by
// ValidateModel).
inline constexpr uint64_t kMaxScannedTokens = uint64_t{1} << 21;

// The outcome of parsing a prefix of a GGUF file.
struct HeaderParse {
  // OK: `file` holds the header. kUnavailable: the prefix ended inside the header and the file is
  // longer, so more bytes are needed (at least `needed_bytes` from the start of the file); any
  // other code: the file itself is malformed and no amount of bytes will help.
  Status status;
  File file;
  uint64_t needed_bytes = 0;
};

// Parses the header from the first `size` bytes of a file whose total size is `file_size`
// (kUnknownFileSize if unknown). `name` (a path or URL) appears in error messages and File::path.
// Tensor infos are checked against the file size (offsets aligned, data within the file), not
// against `size`: the data section need not be present in `data`.
HeaderParse ParseHeader(const uint8_t* data, size_t size, uint64_t file_size,
                        const std::string& name);

// ParseHeader for callers that only want a Result: when the buffer ends inside the header and
// file_size is larger, the status has code kUnavailable ("need more bytes"); ParseHeader gives the
// number needed.
Result<File> ReadBuffer(const uint8_t* data, size_t size, uint64_t file_size);

// Reads a local GGUF file's header (maps the file; only the header pages are touched). For a split
// model (NAME-00001-of-00003.gguf, any part may be named) all parts are read: tensors carry their
// split index, file_bytes is the sum of the parts and path is the first part.
Result<File> ReadFile(const std::string& path);

}  // namespace snug::gguf
