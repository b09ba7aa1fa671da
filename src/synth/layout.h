// Internal to synth: the one place a preset becomes GGUF metadata and tensor infos. Both
// DescribePreset and WriteModel are built on BuildModel, so a description and a written file can
// never disagree.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "synth/presets.h"

struct gguf_context;
struct ggml_context;

namespace snug::synth::internal {

// What a tensor's bytes hold in a written file.
enum class Fill {
  kWeights,  // zero (sparse) in zero mode; scaled Gaussian noise, quantized, in random mode
  kOnes,     // norm weights: 1.0 in both modes, so activations keep their scale
  kZeros,    // biases
  kValues,   // fixed values (RoPE frequency factors), written in both modes
};

struct TensorPlan {
  std::string name;
  int type = 0;             // ggml_type
  std::vector<int64_t> ne;  // ggml order, ne[0] innermost
  Fill fill = Fill::kWeights;
  std::vector<float> values;  // for Fill::kValues
};

// The tensors of a preset, in file order, with llama-quantize's type choices for preset.type.
std::vector<TensorPlan> PlanTensors(const Preset& preset);

struct GgufDeleter {
  void operator()(gguf_context* ctx) const;
};
struct GgmlDeleter {
  void operator()(ggml_context* ctx) const;
};

struct BuiltModel {
  std::unique_ptr<gguf_context, GgufDeleter> gguf;  // metadata + tensor infos (no data)
  std::unique_ptr<ggml_context, GgmlDeleter> ggml;  // owns the tensor descriptors
  std::vector<TensorPlan> tensors;                  // same order as the gguf tensor infos
  uint64_t meta_bytes = 0;                          // header + KVs + infos, padded to alignment
  uint64_t file_bytes = 0;                          // meta_bytes + data section
};

// Builds the full metadata (tokenizer copied from <vocab_dir>/ggml-vocab-<preset.vocab>.gguf and
// padded to preset.n_vocab) and tensor infos. NotFound when the tokenizer file is missing.
Result<BuiltModel> BuildModel(const Preset& preset, const std::string& vocab_dir);

// LLAMA_FTYPE value for a type name ("Q4_K_M" -> 15), as general.file_type records it.
uint32_t FileTypeOf(const std::string& type);

}  // namespace snug::synth::internal
