// Writes a synthetic GGUF model for a preset with ggml's own gguf writer.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/status.h"
#include "synth/presets.h"

struct gguf_context;

namespace snug::synth {

struct WriteOptions {
  enum class Weights {
    kZero,    // weights are zero and never written: the file is sparse, a 2 GB model takes ~no disk
    kRandom,  // small Gaussian noise from `seed`, quantized with ggml: finite, varied logits
  };
  Weights weights = Weights::kZero;
  uint64_t seed = 42;               // kRandom only; the same seed gives byte-identical files
  std::optional<std::string> type;  // overrides preset.type: Q4_K_M, Q8_0 or F16
  std::string vocab_dir;            // llama.cpp models/ directory; empty = env::VocabDir()
  // Called with the metadata (ggml's gguf_context: keys and tensor infos) just before it is
  // written. Tests use it to write a real file with one malformed key (gguf_set_val_u32 and
  // friends); it must not add, remove or reshape tensors.
  std::function<void(gguf_context*)> edit_metadata;
};

// Writes the model to `path`. The file is written under a temporary name in the same directory and
// renamed into place at the end, so an interrupted write never leaves a partial file at `path`.
// Norm weights are 1 and RoPE factors are real in both modes, so even zero weights compute finite
// values. InvalidArgument for a bad type, NotFound for a missing tokenizer, IoError for the disk.
Status WriteModel(const Preset& preset, const std::string& path, const WriteOptions& options);

}  // namespace snug::synth
