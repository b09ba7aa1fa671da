// What the file `snug mkmodel` would write for a preset, without writing it: GGUF metadata and
// tensor infos as a gguf::File, so `snug plan preset:NAME` plans a model that is not on disk.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "gguf/gguf.h"
#include "synth/presets.h"

namespace snug::synth {

// The gguf::File of the preset's file (tokenizer from env::VocabDir()). Holds every metadata key
// the file has; big tokenizer arrays (tokens, scores, token types, merges) keep their element type
// and array_length but no elements. Tensor infos carry name, type, ne, offset and nbytes;
// data_offset and file_bytes are exact. `path` is "preset:<name>".
Result<gguf::File> DescribePreset(const Preset& preset);
// Same, with the tokenizer read from vocab_dir (llama.cpp's models/ directory).
Result<gguf::File> DescribePreset(const Preset& preset, const std::string& vocab_dir);

// Number of weights (elements of all tensors).
uint64_t CountParameters(const gguf::File& file);

}  // namespace snug::synth
