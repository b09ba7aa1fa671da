// Split GGUF models (llama.cpp's gguf-split: NAME-00001-of-00003.gguf): naming, and merging the
// parts' headers into one File. Shared by the local and the remote reader.
#pragma once

#include <functional>
#include <optional>
#include <string>

#include "core/status.h"
#include "gguf/gguf.h"

namespace snug::gguf {

struct SplitName {
  std::string prefix;  // everything before "-00001-of-00003.gguf"
  std::string suffix;  // what follows ".gguf" in a URL ("?download=true"), else empty
  int number = 0;      // 1-based, as in the name
  int count = 0;
};

// Recognises "<prefix>-NNNNN-of-MMMMM.gguf" (a URL query string after .gguf is allowed).
std::optional<SplitName> ParseSplitName(const std::string& path_or_url);

// The name of part `number` (1-based) of `count`, in llama.cpp's llama_split_path format.
std::string SplitPartName(const SplitName& name, int number);

// Given the header of the part a user named, reads the remaining parts with `read_part` and merges
// them: tensors tagged with their split index, file_bytes summed, path = the first part. A file
// without split.count (or with split.count 1) is returned unchanged. When `given` is not the first
// part, the first part is read too.
Result<File> MergeSplits(File given,
                         const std::function<Result<File>(const std::string& name)>& read_part);

}  // namespace snug::gguf
