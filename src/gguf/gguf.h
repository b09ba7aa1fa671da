// GGUF files as snug sees them: metadata and tensor infos, never tensor data. Our own reader
// (reader.cpp) fills this from local files, buffers or remote files read with HTTP Range.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

namespace snug::gguf {

// GGUF value types (the numeric values of the file format).
enum class ValueType : uint32_t {
  kUint8 = 0,
  kInt8 = 1,
  kUint16 = 2,
  kInt16 = 3,
  kUint32 = 4,
  kInt32 = 5,
  kFloat32 = 6,
  kBool = 7,
  kString = 8,
  kArray = 9,
  kUint64 = 10,
  kInt64 = 11,
  kFloat64 = 12,
};

// A metadata value. Arrays keep their element type and, to bound memory on hostile or huge inputs
// (a 150k-entry tokenizer), store numeric elements as int64/double and strings only when asked.
struct Value {
  ValueType type = ValueType::kUint32;
  ValueType array_type = ValueType::kUint32;  // element type when type == kArray
  uint64_t array_length = 0;                  // element count when type == kArray
  std::variant<int64_t, uint64_t, double, bool, std::string, std::vector<int64_t>,
               std::vector<double>, std::vector<std::string>>
      data;
};

struct TensorInfo {
  std::string name;
  uint32_t type = 0;        // ggml_type numeric value
  std::vector<int64_t> ne;  // dimensions, ne[0] innermost (ggml order)
  uint64_t offset = 0;      // relative to the data section of its split
  uint64_t nbytes = 0;      // from ggml type traits and ne
  uint16_t split = 0;       // which split file holds it
};

// Two entries of tokenizer.ggml.tokens with the same text as llama.cpp's vocabulary reads them (an
// empty token reads as "[EMPTY_<id>]"). llama.cpp aborts on such a vocabulary (llama-vocab.cpp
// asserts that every token text maps to one id), so the reader records the first one it finds.
struct DuplicateToken {
  std::string text;
  uint64_t first_id = 0;   // the lowest id with this text
  uint64_t second_id = 0;  // the next id with the same text
};

struct File {
  uint32_t version = 0;
  std::map<std::string, Value> kv;
  std::vector<TensorInfo> tensors;
  uint64_t alignment = 32;
  uint64_t data_offset = 0;  // of the first split
  uint64_t file_bytes = 0;   // all splits together
  uint16_t n_splits = 1;
  std::string path;  // local path or URL of the first split
  // The reader keeps no tokenizer-sized string array, so it looks for repeated tokens while it has
  // the bytes (only in arrays of up to kMaxScannedTokens; gguf/validate.h reports both cases).
  std::optional<DuplicateToken> duplicate_token;

  // Typed lookups; nullopt when absent or of another type (integers of any width are accepted).
  std::optional<std::string> GetString(const std::string& key) const;
  std::optional<int64_t> GetInt(const std::string& key) const;
  std::optional<double> GetFloat(const std::string& key) const;
  std::optional<bool> GetBool(const std::string& key) const;
  // Numeric array (per-layer head counts, sliding-window patterns); nullopt when absent.
  std::optional<std::vector<int64_t>> GetIntArray(const std::string& key) const;
  // "general.architecture", e.g. "llama", "qwen3moe", "gemma3".
  std::string Arch() const;
  // Key within the architecture namespace: ArchKey("block_count") -> "llama.block_count".
  std::string ArchKey(const std::string& suffix) const { return Arch() + "." + suffix; }
  uint64_t TensorBytes() const;
};

}  // namespace snug::gguf
