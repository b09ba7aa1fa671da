#include "plan/shape.h"

#include <fmt/format.h>

#include <algorithm>
#include <charconv>
#include <set>

namespace snug::plan {
namespace {

// ggml_type values (ggml.h) that matter for repacking.
constexpr uint32_t kQ4_0 = 2;
constexpr uint32_t kQ8_0 = 8;
constexpr uint32_t kQ2_K = 10;
constexpr uint32_t kQ4_K = 12;
constexpr uint32_t kQ5_K = 13;
constexpr uint32_t kQ6_K = 14;
constexpr uint32_t kIQ4_NL = 20;
constexpr uint32_t kMXFP4 = 39;

// Architectures whose memory is not a plain KV cache (llama-arch.cpp llm_arch_is_recurrent /
// llm_arch_is_hybrid, and MLA caches in llama-model.cpp create_memory).
const std::set<std::string>& RecurrentArchs() {
  static const std::set<std::string> kArchs = {"mamba",      "mamba2", "rwkv6",
                                               "rwkv6qwen2", "rwkv7",  "arwkv7"};
  return kArchs;
}
const std::set<std::string>& HybridArchs() {
  static const std::set<std::string> kArchs = {
      "jamba",   "falcon-h1",  "plamo2",         "granitehybrid", "lfm2",
      "lfm2moe", "nemotron_h", "nemotron_h_moe", "qwen3next",     "kimi-linear",
      "qwen35",  "qwen35moe",  "minimax-01"};
  return kArchs;
}
const std::set<std::string>& MlaArchs() {
  static const std::set<std::string> kArchs = {"deepseek2", "deepseek32", "deepseek4", "glm-dsa",
                                               "kimi-k2",   "minicpm3",   "plm"};
  return kArchs;
}
// Architectures whose graphs and caches were checked against llama.cpp's dry run.
const std::set<std::string>& ModelledArchs() {
  static const std::set<std::string> kArchs = {"llama",    "qwen2",    "qwen3",   "qwen3moe",
                                               "qwen2moe", "gemma",    "gemma2",  "gemma3",
                                               "phi3",     "mistral3", "granite", "olmo2"};
  return kArchs;
}

bool IsMatmulWeight(const gguf::TensorInfo& t) {
  const std::string& n = t.name;
  if (t.ne.size() < 2) return false;
  if (n.size() < 7 || n.compare(n.size() - 7, 7, ".weight") != 0) return false;
  if (n.find("norm") != std::string::npos) return false;
  if (n.rfind("token_embd", 0) == 0 || n.find("per_layer_token_embd") != std::string::npos ||
      n.find("pos_embd") != std::string::npos || n.find("rope_freqs") != std::string::npos) {
    return false;
  }
  return true;
}

TensorShape ToTensorShape(const gguf::TensorInfo& t) {
  TensorShape s;
  s.name = t.name;
  s.type = t.type;
  s.bytes = t.nbytes;
  s.n_dims = static_cast<int>(t.ne.size());
  s.ne1 = t.ne.size() > 1 ? t.ne[1] : 1;
  s.matmul = IsMatmulWeight(t);
  return s;
}

// "blk.12.attn_q.weight" -> 12; -1 for tensors outside the blocks.
int LayerIndex(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int value = -1;
  const char* begin = name.data() + 4;
  const char* end = name.data() + name.size();
  auto [ptr, ec] = std::from_chars(begin, end, value);
  if (ec != std::errc() || ptr == end || *ptr != '.') return -1;
  return value;
}

// A per-layer hyperparameter stored either as one integer or as an array with one per layer.
std::vector<int64_t> PerLayer(const gguf::File& file, const std::string& key, uint32_t n_layer,
                              int64_t fallback) {
  if (auto arr = file.GetIntArray(key); arr && !arr->empty()) {
    std::vector<int64_t> out(n_layer, arr->back());
    for (uint32_t i = 0; i < n_layer && i < arr->size(); ++i)
      out[i] = (*arr)[i];
    return out;
  }
  return std::vector<int64_t>(n_layer, file.GetInt(key).value_or(fallback));
}

uint32_t U32(int64_t v) {
  return v < 0 ? 0 : static_cast<uint32_t>(std::min<int64_t>(v, UINT32_MAX));
}

}  // namespace

CpuRepack HostCpuRepack() {
  CpuRepack cpu;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  cpu.avx2 = __builtin_cpu_supports("avx2");
  cpu.avx512 = __builtin_cpu_supports("avx512f");
#elif defined(__aarch64__)
  // Every arm64 CPU llama.cpp ships for has dotprod in practice (Apple M*, Graviton 2+).
  cpu.neon_dotprod = true;
#if defined(__ARM_FEATURE_MATMUL_INT8)
  cpu.neon_i8mm = true;
#endif
#endif
  return cpu;
}

bool IsRepacked(const CpuRepack& cpu, uint32_t type, int64_t ne1, int n_dims) {
  // ggml-cpu/repack.cpp ggml_repack_get_optimal_repack_type and extra_buffer_type::supports_op:
  // 2-D weights of MUL_MAT, 3-D stacked experts of MUL_MAT_ID.
  if (n_dims != 2 && n_dims != 3) return false;
  if (cpu.avx2) {
    if ((type == kQ4_0 || type == kQ4_K || type == kIQ4_NL || type == kMXFP4) && ne1 % 8 == 0) {
      return true;
    }
    if (type == kQ2_K && cpu.avx512 && ne1 % 8 == 0) return true;
    return false;
  }
  if (cpu.neon_dotprod || cpu.neon_i8mm) {
    switch (type) {
      case kQ4_0:
      case kIQ4_NL:
      case kMXFP4:
      case kQ8_0:
        return ne1 % 4 == 0;
      case kQ4_K:
      case kQ5_K:
      case kQ6_K:
        return ne1 % 8 == 0;
      default:
        return false;
    }
  }
  return false;
}

uint64_t LayerShape::WeightBytes() const {
  uint64_t sum = 0;
  for (const auto& t : tensors)
    sum += t.bytes;
  return sum;
}

uint32_t ModelShape::MaxHeadDimV() const {
  uint32_t m = 0;
  for (const auto& l : layers)
    m = std::max(m, l.n_embd_v_gqa());
  return m;
}

uint64_t ModelShape::TotalWeightBytes() const {
  uint64_t sum = 0;
  for (const auto& l : layers)
    sum += l.WeightBytes();
  for (const auto& t : input_tensors)
    sum += t.bytes;
  for (const auto& t : output_tensors)
    sum += t.bytes;
  return sum;
}

Result<ModelShape> ShapeFromGguf(const gguf::File& file) {
  ModelShape s;
  s.arch = file.Arch();
  if (s.arch.empty()) {
    return Status::Corrupt("the GGUF header has no general.architecture, so it is not a model");
  }
  s.name = file.GetString("general.name").value_or("");
  if (s.name.empty()) {
    std::string path = file.path;
    auto slash = path.find_last_of('/');
    s.name = slash == std::string::npos ? path : path.substr(slash + 1);
  }
  s.file_bytes = file.file_bytes;
  s.file_type = U32(file.GetInt("general.file_type").value_or(0));

  if (RecurrentArchs().count(s.arch)) {
    return Status::Unimplemented(fmt::format(
        "'{}' is a recurrent architecture; snug cannot predict its state memory yet", s.arch));
  }

  auto n_layer = file.GetInt(file.ArchKey("block_count"));
  auto n_embd = file.GetInt(file.ArchKey("embedding_length"));
  if (!n_layer || *n_layer <= 0 || *n_layer > 4096) {
    return Status::Corrupt(fmt::format("{}: missing or invalid {}.block_count", s.name, s.arch));
  }
  if (!n_embd || *n_embd <= 0 || *n_embd > (1 << 20)) {
    return Status::Corrupt(
        fmt::format("{}: missing or invalid {}.embedding_length", s.name, s.arch));
  }
  s.n_layer = U32(*n_layer);
  s.n_embd = U32(*n_embd);
  s.n_ctx_train = U32(file.GetInt(file.ArchKey("context_length")).value_or(0));
  if (s.n_ctx_train == 0) s.n_ctx_train = 4096;

  auto n_head = PerLayer(file, file.ArchKey("attention.head_count"), s.n_layer, 0);
  auto n_head_kv = PerLayer(file, file.ArchKey("attention.head_count_kv"), s.n_layer, -1);
  auto n_ff = PerLayer(file, file.ArchKey("feed_forward_length"), s.n_layer, 0);
  int64_t first_head = 0;
  for (auto h : n_head)
    first_head = std::max(first_head, h);
  if (first_head <= 0) {
    return Status::Corrupt(fmt::format("{}: missing {}.attention.head_count", s.name, s.arch));
  }
  const int64_t head_dim_default = s.n_embd / first_head;
  const uint32_t head_dim_k =
      U32(file.GetInt(file.ArchKey("attention.key_length")).value_or(head_dim_default));
  const uint32_t head_dim_v =
      U32(file.GetInt(file.ArchKey("attention.value_length")).value_or(head_dim_default));
  s.n_rot = U32(file.GetInt(file.ArchKey("rope.dimension_count")).value_or(head_dim_k));

  s.n_expert = U32(file.GetInt(file.ArchKey("expert_count")).value_or(0));
  s.n_expert_used = U32(file.GetInt(file.ArchKey("expert_used_count")).value_or(0));
  s.n_ff_exp = U32(file.GetInt(file.ArchKey("expert_feed_forward_length")).value_or(0));

  s.layers.resize(s.n_layer);
  for (uint32_t il = 0; il < s.n_layer; ++il) {
    auto& l = s.layers[il];
    l.n_head = U32(n_head[il]);
    l.n_head_kv = n_head_kv[il] < 0 ? l.n_head : U32(n_head_kv[il]);
    l.head_dim_k = head_dim_k;
    l.head_dim_v = head_dim_v;
    l.n_ff = U32(n_ff[il]);
    // llama-hparams: a layer with zero KV heads has no KV cache (e.g. attention-free layers).
    l.has_kv = l.n_head_kv > 0;
  }

  // Sliding window: which layers slide is architecture-specific (llama.cpp src/models/<arch>.cpp
  // load_arch_hparams calling hparams.set_swa_pattern(period): layer il slides unless
  // il % period == period - 1). Phi-3 declares a window but llama.cpp disables it (phi3.cpp).
  const auto window = file.GetInt(file.ArchKey("attention.sliding_window"));
  uint32_t default_period = 0;
  int64_t default_window = 0;
  if (s.arch == "gemma3") {
    default_period = 6;
  } else if (s.arch == "gemma2") {
    default_period = 2;
    default_window = 4096;
  } else if (s.arch == "cohere2") {
    default_period = 4;
  }
  if (default_period > 0) {
    const int64_t n_swa = window.value_or(default_window);
    if (n_swa > 0) {
      s.n_swa = U32(n_swa);
      const std::string pattern_key = file.ArchKey("attention.sliding_window_pattern");
      auto pattern_arr = file.GetIntArray(pattern_key);
      if (pattern_arr && pattern_arr->size() >= s.n_layer) {
        for (uint32_t il = 0; il < s.n_layer; ++il)
          s.layers[il].swa = (*pattern_arr)[il] != 0;
      } else {
        const uint32_t period = U32(file.GetInt(pattern_key).value_or(default_period));
        for (uint32_t il = 0; il < s.n_layer; ++il) {
          s.layers[il].swa = period == 0 || (il % period < period - 1);
        }
      }
    }
  }

  // Tensors, grouped by layer.
  bool has_output = false;
  for (const auto& t : file.tensors) {
    TensorShape ts = ToTensorShape(t);
    const int il = LayerIndex(t.name);
    if (il >= 0 && static_cast<uint32_t>(il) < s.n_layer) {
      if (t.name.find(".attn_qkv.") != std::string::npos) s.fused_qkv = true;
      if (t.name.find(".ffn_up.weight") != std::string::npos && t.ne.size() >= 2 &&
          s.layers[il].n_ff > 0 && t.ne[1] == 2 * int64_t{s.layers[il].n_ff}) {
        s.fused_gate_up = true;
      }
      s.layers[il].tensors.push_back(std::move(ts));
    } else if (t.name.rfind("token_embd", 0) == 0) {
      if (t.name == "token_embd.weight" && t.ne.size() >= 2) s.n_vocab = U32(t.ne[1]);
      s.input_tensors.push_back(std::move(ts));
    } else if (t.name.rfind("output", 0) == 0) {
      if (t.name == "output.weight") {
        has_output = true;
        if (s.n_vocab == 0 && t.ne.size() >= 2) s.n_vocab = U32(t.ne[1]);
      }
      s.output_tensors.push_back(std::move(ts));
    } else {
      // rope_freqs, layer-less extras (small): kept with the input on the host.
      s.input_tensors.push_back(std::move(ts));
    }
  }
  if (s.n_vocab == 0) s.n_vocab = U32(file.GetInt(file.ArchKey("vocab_size")).value_or(0));
  if (s.n_vocab == 0) {
    if (auto it = file.kv.find("tokenizer.ggml.tokens"); it != file.kv.end()) {
      s.n_vocab = U32(static_cast<int64_t>(it->second.array_length));
    }
  }
  if (!has_output) {
    for (const auto& t : s.input_tensors) {
      if (t.name == "token_embd.weight") {
        s.tied_embeddings = true;
        TensorShape dup = t;
        dup.name = "output.weight (tied to token_embd)";
        dup.matmul = true;
        dup.duplicate = true;
        s.output_tensors.push_back(dup);
      }
    }
  }

  if (HybridArchs().count(s.arch)) {
    s.approximation = fmt::format(
        "'{}' mixes attention with recurrent layers; snug counts every layer as attention, "
        "which overestimates",
        s.arch);
  } else if (MlaArchs().count(s.arch)) {
    s.approximation = fmt::format(
        "'{}' uses compressed (MLA) attention; snug counts a full K/V cache, which overestimates",
        s.arch);
  } else if (!ModelledArchs().count(s.arch)) {
    s.approximation = fmt::format(
        "'{}' is estimated as a generic transformer (not calibrated against llama.cpp)", s.arch);
  }
  return s;
}

}  // namespace snug::plan
