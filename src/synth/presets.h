// Built-in model shapes for synthetic GGUF files: the hyperparameters of real, published models
// (config.json as released), named the way llama.cpp names their architecture and tensors. A
// preset plus a quantization type determines every byte of metadata and every tensor shape of the
// file `snug mkmodel` writes, so plans and benchmarks on synthetic files match the real ones.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace snug::synth {

// Quantization mixes mkmodel can write, named as llama-quantize names them.
inline constexpr const char* kTypeQ4_K_M = "Q4_K_M";
inline constexpr const char* kTypeQ8_0 = "Q8_0";
inline constexpr const char* kTypeF16 = "F16";

struct Preset {
  std::string name;          // full name with quant suffix: "llama-3.2-3b-q4_k_m"
  std::string base;          // without the suffix: "llama-3.2-3b"
  std::string display_name;  // general.name: "Llama 3.2 3B Instruct"
  std::string arch;          // llama.cpp architecture: llama, qwen2, qwen3, qwen3moe, gemma3, phi3
  std::string type;          // quantization mix: Q4_K_M, Q8_0 or F16

  uint32_t n_layer = 0;
  uint32_t n_embd = 0;
  uint32_t n_head = 0;
  uint32_t n_head_kv = 0;
  uint32_t head_dim = 0;  // key/value length per head (may differ from n_embd / n_head)
  uint32_t n_ff = 0;      // dense FFN width (for MoE: the dense-equivalent width the file records)
  uint32_t n_vocab = 0;   // embedding rows; the tokenizer is padded to this many tokens
  uint32_t n_ctx_train = 0;
  float rms_eps = 1e-5f;

  float rope_freq_base = 10000.0f;
  float rope_freq_base_swa = 0.0f;  // local (sliding-window) layers' base; 0 = same as global
  // RoPE scaling as recorded in the GGUF: "" (none), "linear", "llama3" (rope_freqs tensor),
  // "longrope" (Phi-3 long/short factor tensors).
  std::string rope_scaling;
  float rope_scaling_factor = 0.0f;
  uint32_t rope_orig_ctx = 0;          // original (pre-extension) context length
  float rope_low_freq_factor = 0.0f;   // llama3 scaling
  float rope_high_freq_factor = 0.0f;  // llama3 scaling

  uint32_t n_swa = 0;  // sliding window size in tokens; 0 = no sliding window
  uint32_t swa_pattern =
      0;  // every swa_pattern-th layer is global (gemma3: 6 = 5 local : 1 global)

  uint32_t n_expert = 0;
  uint32_t n_expert_used = 0;
  uint32_t n_ff_exp = 0;  // per-expert FFN width

  bool tied_embeddings = false;  // no output.weight: the token embedding doubles as the LM head
  bool qk_norm = false;          // per-head RMS norm on Q and K (qwen3, gemma3)
  bool qkv_bias = false;         // biases on Q, K, V projections (qwen2)
  bool fused_qkv = false;        // one attn_qkv tensor (phi3)
  bool post_norms = false;       // post-attention and post-FFN norms (gemma3)
  bool gated_ffn = true;         // separate ffn_gate; false = phi3's fused gate+up in ffn_up

  std::string vocab;          // llama.cpp models/ggml-vocab-<vocab>.gguf
  std::string chat_template;  // written when non-empty; else the vocab file's own template is kept
};

// Every built-in preset, each with its default quantization (Q4_K_M; Q8_0 for `tiny`).
const std::vector<Preset>& AllPresets();

// Finds a preset by name, with or without a quant suffix ("qwen2.5-0.5b", "qwen2.5-0.5b-q8_0"),
// case-insensitively. A suffix sets Preset::type and Preset::name. NotFound lists the valid names.
Result<Preset> FindPreset(std::string_view name);

// Canonical type name ("Q4_K_M") for user input like "q4_k_m"; InvalidArgument otherwise.
Result<std::string> ParseType(std::string_view type);

// The preset with another quantization type (name suffix updated). InvalidArgument on bad type.
Result<Preset> WithType(const Preset& preset, std::string_view type);

}  // namespace snug::synth
