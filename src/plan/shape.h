// What the planner needs to know about a model, extracted once from a GGUF header: per-layer
// attention geometry (for the KV cache), which layers use a sliding window, MoE sizes, and the
// bytes of every tensor grouped by layer (for placement on devices and CPU repacking).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"
#include "gguf/gguf.h"

namespace snug::plan {

// The CPU's weight-repacking capability (ggml-cpu/repack.cpp picks a repacked layout per tensor
// type from the CPU features). Decides which weights llama.cpp copies into anonymous CPU_REPACK
// memory instead of serving them from the mapped file.
struct CpuRepack {
  bool avx2 = false;          // x86: Q4_0, Q4_K, IQ4_NL, MXFP4
  bool avx512 = false;        // x86: additionally Q2_K
  bool neon_dotprod = false;  // arm64: Q4_0, Q4_K, Q5_K, Q6_K, IQ4_NL, MXFP4, Q8_0
  bool neon_i8mm = false;     // arm64 with int8 matmul: the same set
};

// The repack capability of the CPU this process runs on (no I/O: compiler builtins).
CpuRepack HostCpuRepack();

// True when llama.cpp's CPU backend stores a weight of this ggml type and shape repacked.
// `ne1` is the tensor's second dimension; `n_dims` its number of dimensions (2 for dense
// matrices, 3 for stacked MoE experts).
bool IsRepacked(const CpuRepack& cpu, uint32_t ggml_type, int64_t ne1, int n_dims);

struct TensorShape {
  std::string name;
  uint32_t type = 0;  // ggml_type
  uint64_t bytes = 0;
  int64_t ne1 = 1;
  int n_dims = 1;
  // Used as the weight of a matrix multiplication (the only kind CPU_REPACK takes).
  bool matmul = false;
  // A second use of another tensor's data (tied output = token_embd): costs memory only when it
  // lands on another device than the original (llama.cpp's dry run counts it once on the CPU).
  bool duplicate = false;
};

struct LayerShape {
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t head_dim_k = 0;
  uint32_t head_dim_v = 0;
  uint32_t n_ff = 0;  // dense FFN length (0 in pure MoE layers)
  bool swa = false;   // uses the sliding window (its KV cache holds the window, not n_ctx)
  bool has_kv = true;
  std::vector<TensorShape> tensors;

  uint32_t n_embd_k_gqa() const { return head_dim_k * n_head_kv; }
  uint32_t n_embd_v_gqa() const { return head_dim_v * n_head_kv; }
  uint64_t WeightBytes() const;
};

struct ModelShape {
  std::string name;  // general.name, else the file name
  std::string arch;
  uint32_t n_layer = 0;
  uint32_t n_embd = 0;
  uint32_t n_vocab = 0;
  uint32_t n_ctx_train = 0;
  uint32_t n_swa = 0;  // sliding window length; 0 when no layer slides
  uint32_t n_expert = 0;
  uint32_t n_expert_used = 0;
  uint32_t n_ff_exp = 0;  // expert FFN length
  uint32_t n_rot = 0;
  std::vector<LayerShape> layers;
  // Tensors outside the repeating blocks. Input ones (token embeddings) always stay on the host
  // (llama-model.cpp: the input layer is CPU); output ones follow the output layer's device.
  std::vector<TensorShape> input_tensors;
  std::vector<TensorShape> output_tensors;
  // No output.weight in the file: llama.cpp uses token_embd as the output matrix
  // (TENSOR_DUPLICATED), which on the CPU gets its own (possibly repacked) copy.
  bool tied_embeddings = false;
  // Graph shapes that change the compute buffer: one attn_qkv matmul instead of three, and one
  // ffn_up producing gate and up together (phi3).
  bool fused_qkv = false;
  bool fused_gate_up = false;
  uint64_t file_bytes = 0;
  uint32_t file_type = 0;
  // Non-empty when the architecture is not modelled precisely (the reason says so).
  std::string approximation;

  uint32_t MaxHeadDimV() const;
  uint64_t TotalWeightBytes() const;
};

// Reads the hyperparameters and tensor list from a parsed GGUF header. Fails with a sentence for
// headers that lack what a transformer needs (block count, embedding length, head counts) and for
// architectures whose memory llama.cpp lays out in ways snug cannot predict (recurrent states).
Result<ModelShape> ShapeFromGguf(const gguf::File& file);

}  // namespace snug::plan
