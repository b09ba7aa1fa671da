#include "synth/layout.h"

#include <fmt/format.h>
#include <ggml.h>
#include <gguf.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <numbers>

namespace snug::synth::internal {

void GgufDeleter::operator()(gguf_context* ctx) const {
  gguf_free(ctx);
}
void GgmlDeleter::operator()(ggml_context* ctx) const {
  ggml_free(ctx);
}

namespace {

// llama-quant.cpp's tensor categories, by the same name matching.
enum class Category { kOutput, kTokenEmbd, kAttnV, kAttnK, kAttnQ, kAttnOut, kFfnDown, kOther };

Category CategoryOf(const std::string& name) {
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  if (name == "output.weight") return Category::kOutput;
  if (name == "token_embd.weight") return Category::kTokenEmbd;
  if (has("attn_qkv.weight") || has("attn_v.weight")) return Category::kAttnV;
  if (has("attn_k.weight")) return Category::kAttnK;
  if (has("attn_q.weight")) return Category::kAttnQ;
  if (has("attn_output.weight")) return Category::kAttnOut;
  if (has("ffn_down")) return Category::kFfnDown;
  return Category::kOther;
}

// llama-quant.cpp: "use more bits" for the first and last eighth of the layers and every third
// layer in between.
bool UseMoreBits(int i_layer, int n_layers) {
  return i_layer < n_layers / 8 || i_layer >= 7 * n_layers / 8 || (i_layer - n_layers / 8) % 3 == 2;
}

// llama-quant.cpp's tensor_type_fallback: rows that do not divide into the type's blocks.
ggml_type Fallback(ggml_type type, int64_t ncols) {
  if (ncols % ggml_blck_size(type) == 0) return type;
  ggml_type out = type;
  switch (type) {
    case GGML_TYPE_Q4_K:
      out = GGML_TYPE_Q5_0;
      break;
    case GGML_TYPE_Q5_K:
      out = GGML_TYPE_Q5_1;
      break;
    case GGML_TYPE_Q6_K:
      out = GGML_TYPE_Q8_0;
      break;
    default:
      break;
  }
  if (ncols % ggml_blck_size(out) != 0) out = GGML_TYPE_F16;
  return out;
}

// The type llama-quantize gives a weight matrix (2D/3D, name ending in "weight", not a norm or
// expert router) for the preset's mix. Covers the Q4_K_M rules of llama_tensor_get_type_impl for
// dense and MoE models without 8 experts, which is every preset here.
ggml_type QuantType(const Preset& p, const std::string& name, int layer, int64_t ncols) {
  if (p.type == kTypeF16) return GGML_TYPE_F16;
  if (p.type == kTypeQ8_0) return Fallback(GGML_TYPE_Q8_0, ncols);
  const Category cat = CategoryOf(name);
  const int n_layer = static_cast<int>(p.n_layer);
  ggml_type type = GGML_TYPE_Q4_K;
  if (cat == Category::kOutput || (p.tied_embeddings && cat == Category::kTokenEmbd)) {
    type = ncols % ggml_blck_size(GGML_TYPE_Q4_K) != 0 ? GGML_TYPE_Q8_0 : GGML_TYPE_Q6_K;
  } else if (cat == Category::kAttnV || cat == Category::kFfnDown) {
    if (UseMoreBits(layer, n_layer)) type = GGML_TYPE_Q6_K;
  }
  return Fallback(type, ncols);
}

// Llama 3.1+ frequency factors, as convert_hf_to_gguf.py computes rope_freqs.weight.
std::vector<float> Llama3RopeFactors(const Preset& p) {
  const int n_rot = static_cast<int>(p.head_dim);
  const double low_wavelen = p.rope_orig_ctx / p.rope_low_freq_factor;
  const double high_wavelen = p.rope_orig_ctx / p.rope_high_freq_factor;
  std::vector<float> factors;
  for (int i = 0; i < n_rot; i += 2) {
    const double freq =
        1.0 / std::pow(static_cast<double>(p.rope_freq_base), static_cast<double>(i) / n_rot);
    const double wavelen = 2.0 * std::numbers::pi / freq;
    double factor = 1.0;
    if (wavelen > low_wavelen) {
      factor = p.rope_scaling_factor;
    } else if (wavelen >= high_wavelen) {
      const double smooth = (p.rope_orig_ctx / wavelen - p.rope_low_freq_factor) /
                            (p.rope_high_freq_factor - p.rope_low_freq_factor);
      factor = 1.0 / ((1.0 - smooth) / p.rope_scaling_factor + smooth);
    }
    factors.push_back(static_cast<float>(factor));
  }
  return factors;
}

// Phi-3.5's LongRoPE factors are learned per dimension; only their shape matters for memory, so
// these are smooth ramps over the published range (short ~1..1.5, long ~1..30).
std::vector<float> LongRopeFactors(const Preset& p, bool long_factors) {
  const int n = static_cast<int>(p.head_dim / 2);
  std::vector<float> factors;
  for (int i = 0; i < n; ++i) {
    const double t = n > 1 ? static_cast<double>(i) / (n - 1) : 0.0;
    factors.push_back(
        static_cast<float>(long_factors ? 1.0 + 29.0 * t * t * t : 1.0 + 0.5 * t * t));
  }
  return factors;
}

}  // namespace

uint32_t FileTypeOf(const std::string& type) {
  if (type == kTypeF16) return 1;   // LLAMA_FTYPE_MOSTLY_F16
  if (type == kTypeQ8_0) return 7;  // LLAMA_FTYPE_MOSTLY_Q8_0
  return 15;                        // LLAMA_FTYPE_MOSTLY_Q4_K_M
}

std::vector<TensorPlan> PlanTensors(const Preset& p) {
  std::vector<TensorPlan> out;
  auto weight = [&](std::string name, std::vector<int64_t> ne, int layer) {
    const int type = QuantType(p, name, layer, ne[0]);
    out.push_back({std::move(name), type, std::move(ne), Fill::kWeights, {}});
  };
  auto f32 = [&](std::string name, std::vector<int64_t> ne, Fill fill,
                 std::vector<float> values = {}) {
    out.push_back({std::move(name), GGML_TYPE_F32, std::move(ne), fill, std::move(values)});
  };

  const int64_t n_embd = p.n_embd;
  const int64_t n_q = int64_t{p.head_dim} * p.n_head;
  const int64_t n_kv = int64_t{p.head_dim} * p.n_head_kv;

  if (p.rope_scaling == "llama3") {
    f32("rope_freqs.weight", {p.head_dim / 2}, Fill::kValues, Llama3RopeFactors(p));
  }
  if (p.rope_scaling == "longrope") {
    f32("rope_factors_long.weight", {p.head_dim / 2}, Fill::kValues, LongRopeFactors(p, true));
    f32("rope_factors_short.weight", {p.head_dim / 2}, Fill::kValues, LongRopeFactors(p, false));
  }
  weight("token_embd.weight", {n_embd, p.n_vocab}, 0);

  for (uint32_t il = 0; il < p.n_layer; ++il) {
    const int i = static_cast<int>(il);
    auto blk = [il](const char* suffix) { return fmt::format("blk.{}.{}", il, suffix); };
    f32(blk("attn_norm.weight"), {n_embd}, Fill::kOnes);
    if (p.fused_qkv) {
      weight(blk("attn_qkv.weight"), {n_embd, n_q + 2 * n_kv}, i);
    } else {
      weight(blk("attn_q.weight"), {n_embd, n_q}, i);
      weight(blk("attn_k.weight"), {n_embd, n_kv}, i);
      weight(blk("attn_v.weight"), {n_embd, n_kv}, i);
    }
    if (p.qkv_bias) {
      f32(blk("attn_q.bias"), {n_q}, Fill::kZeros);
      f32(blk("attn_k.bias"), {n_kv}, Fill::kZeros);
      f32(blk("attn_v.bias"), {n_kv}, Fill::kZeros);
    }
    if (p.qk_norm) {
      f32(blk("attn_q_norm.weight"), {p.head_dim}, Fill::kOnes);
      f32(blk("attn_k_norm.weight"), {p.head_dim}, Fill::kOnes);
    }
    weight(blk("attn_output.weight"), {n_q, n_embd}, i);
    if (p.post_norms) f32(blk("post_attention_norm.weight"), {n_embd}, Fill::kOnes);
    f32(blk("ffn_norm.weight"), {n_embd}, Fill::kOnes);
    if (p.n_expert > 0) {
      // The router stays F32: llama-quantize never quantizes ffn_gate_inp.
      // In random mode it is noise too, so experts are actually chosen by the input.
      f32(blk("ffn_gate_inp.weight"), {n_embd, p.n_expert}, Fill::kWeights);
      weight(blk("ffn_gate_exps.weight"), {n_embd, p.n_ff_exp, p.n_expert}, i);
      weight(blk("ffn_up_exps.weight"), {n_embd, p.n_ff_exp, p.n_expert}, i);
      weight(blk("ffn_down_exps.weight"), {p.n_ff_exp, n_embd, p.n_expert}, i);
    } else if (p.gated_ffn) {
      weight(blk("ffn_gate.weight"), {n_embd, p.n_ff}, i);
      weight(blk("ffn_up.weight"), {n_embd, p.n_ff}, i);
      weight(blk("ffn_down.weight"), {p.n_ff, n_embd}, i);
    } else {
      weight(blk("ffn_up.weight"), {n_embd, 2 * int64_t{p.n_ff}}, i);
      weight(blk("ffn_down.weight"), {p.n_ff, n_embd}, i);
    }
    if (p.post_norms) f32(blk("post_ffw_norm.weight"), {n_embd}, Fill::kOnes);
  }

  f32("output_norm.weight", {n_embd}, Fill::kOnes);
  if (!p.tied_embeddings) weight("output.weight", {n_embd, p.n_vocab}, static_cast<int>(p.n_layer));
  return out;
}

namespace {

using GgufPtr = std::shared_ptr<gguf_context>;

// Tokenizer files are read once per process: DescribePreset may be called for every preset.
Result<GgufPtr> LoadVocab(const std::string& path) {
  static std::mutex mu;
  static std::map<std::string, GgufPtr> cache;
  std::lock_guard<std::mutex> lock(mu);
  if (auto it = cache.find(path); it != cache.end()) return it->second;
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) {
    return Status::NotFound(fmt::format(
        "tokenizer file {} not found (set SNUG_VOCAB_DIR to llama.cpp's models/ directory)", path));
  }
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  gguf_context* ctx = gguf_init_from_file(path.c_str(), params);
  if (ctx == nullptr) return Status::Corrupt(fmt::format("cannot read tokenizer file {}", path));
  GgufPtr ptr(ctx, gguf_free);
  cache[path] = ptr;
  return ptr;
}

// Copies one scalar KV of any type from src to dst.
void CopyScalar(gguf_context* dst, const gguf_context* src, int64_t id, const char* key) {
  switch (gguf_get_kv_type(src, id)) {
    case GGUF_TYPE_UINT8:
      gguf_set_val_u8(dst, key, gguf_get_val_u8(src, id));
      break;
    case GGUF_TYPE_INT8:
      gguf_set_val_i8(dst, key, gguf_get_val_i8(src, id));
      break;
    case GGUF_TYPE_UINT16:
      gguf_set_val_u16(dst, key, gguf_get_val_u16(src, id));
      break;
    case GGUF_TYPE_INT16:
      gguf_set_val_i16(dst, key, gguf_get_val_i16(src, id));
      break;
    case GGUF_TYPE_UINT32:
      gguf_set_val_u32(dst, key, gguf_get_val_u32(src, id));
      break;
    case GGUF_TYPE_INT32:
      gguf_set_val_i32(dst, key, gguf_get_val_i32(src, id));
      break;
    case GGUF_TYPE_FLOAT32:
      gguf_set_val_f32(dst, key, gguf_get_val_f32(src, id));
      break;
    case GGUF_TYPE_UINT64:
      gguf_set_val_u64(dst, key, gguf_get_val_u64(src, id));
      break;
    case GGUF_TYPE_INT64:
      gguf_set_val_i64(dst, key, gguf_get_val_i64(src, id));
      break;
    case GGUF_TYPE_FLOAT64:
      gguf_set_val_f64(dst, key, gguf_get_val_f64(src, id));
      break;
    case GGUF_TYPE_BOOL:
      gguf_set_val_bool(dst, key, gguf_get_val_bool(src, id));
      break;
    case GGUF_TYPE_STRING:
      gguf_set_val_str(dst, key, gguf_get_val_str(src, id));
      break;
    default:
      break;
  }
}

// Element size of numeric GGUF array types (strings are handled separately).
size_t ArrayElementSize(gguf_type type) {
  switch (type) {
    case GGUF_TYPE_UINT8:
    case GGUF_TYPE_INT8:
    case GGUF_TYPE_BOOL:
      return 1;
    case GGUF_TYPE_UINT16:
    case GGUF_TYPE_INT16:
      return 2;
    case GGUF_TYPE_UINT32:
    case GGUF_TYPE_INT32:
    case GGUF_TYPE_FLOAT32:
      return 4;
    default:
      return 8;
  }
}

// Copies every tokenizer.* key. Per-token arrays are padded to n_vocab with unused "[PAD<i>]"
// tokens, as real files do when the embedding has more rows than the tokenizer has tokens (Qwen).
Status CopyTokenizer(gguf_context* dst, const gguf_context* src, const Preset& p,
                     const std::string& vocab_path) {
  const int64_t tokens_id = gguf_find_key(src, "tokenizer.ggml.tokens");
  if (tokens_id < 0) return Status::Corrupt(vocab_path + " has no tokenizer.ggml.tokens");
  const size_t n_tokens = gguf_get_arr_n(src, tokens_id);
  if (n_tokens > p.n_vocab) {
    return Status::Internal(fmt::format("preset {} has {} embedding rows but tokenizer {} has {}",
                                        p.base, p.n_vocab, p.vocab, n_tokens));
  }
  const size_t n_pad = p.n_vocab - n_tokens;
  const std::vector<std::string> per_token = {"tokenizer.ggml.tokens", "tokenizer.ggml.token_type",
                                              "tokenizer.ggml.scores"};

  for (int64_t id = 0; id < gguf_get_n_kv(src); ++id) {
    const char* key = gguf_get_key(src, id);
    if (std::strncmp(key, "tokenizer.", 10) != 0) continue;
    if (!p.chat_template.empty() && std::strcmp(key, "tokenizer.chat_template") == 0) continue;
    if (gguf_get_kv_type(src, id) != GGUF_TYPE_ARRAY) {
      CopyScalar(dst, src, id, key);
      continue;
    }
    const gguf_type elem = gguf_get_arr_type(src, id);
    const size_t n = gguf_get_arr_n(src, id);
    const bool pad = std::find(per_token.begin(), per_token.end(), key) != per_token.end();
    if (elem == GGUF_TYPE_STRING) {
      std::vector<std::string> extra;
      if (pad) {
        for (size_t i = 0; i < n_pad; ++i)
          extra.push_back(fmt::format("[PAD{}]", n_tokens + i));
      }
      std::vector<const char*> strings;
      strings.reserve(n + extra.size());
      for (size_t i = 0; i < n; ++i)
        strings.push_back(gguf_get_arr_str(src, id, i));
      for (const std::string& s : extra)
        strings.push_back(s.c_str());
      gguf_set_arr_str(dst, key, strings.data(), strings.size());
    } else if (elem != GGUF_TYPE_ARRAY) {
      const size_t size = ArrayElementSize(elem);
      const size_t total = n + (pad ? n_pad : 0);
      std::vector<uint8_t> data(total * size, 0);
      std::memcpy(data.data(), gguf_get_arr_data(src, id), n * size);
      if (pad && std::strcmp(key, "tokenizer.ggml.token_type") == 0) {
        for (size_t i = n; i < total; ++i) {
          const int32_t unused = 5;  // LLAMA_TOKEN_TYPE_UNUSED
          std::memcpy(data.data() + i * size, &unused, sizeof(unused));
        }
      }
      gguf_set_arr_data(dst, key, elem, data.data(), total);
    }
  }
  if (!p.chat_template.empty()) {
    gguf_set_val_str(dst, "tokenizer.chat_template", p.chat_template.c_str());
  }
  return Status::Ok();
}

void SetArchKeys(gguf_context* g, const Preset& p) {
  auto key = [&](const char* suffix) { return p.arch + "." + suffix; };
  auto u32 = [&](const char* suffix, uint32_t v) { gguf_set_val_u32(g, key(suffix).c_str(), v); };
  auto f32 = [&](const char* suffix, float v) { gguf_set_val_f32(g, key(suffix).c_str(), v); };

  gguf_set_val_str(g, "general.architecture", p.arch.c_str());
  gguf_set_val_str(g, "general.type", "model");
  gguf_set_val_str(g, "general.name", p.display_name.c_str());
  gguf_set_val_u32(g, "general.file_type", FileTypeOf(p.type));
  gguf_set_val_u32(g, "general.quantization_version", 2);

  u32("block_count", p.n_layer);
  u32("context_length", p.n_ctx_train);
  u32("embedding_length", p.n_embd);
  u32("feed_forward_length", p.n_ff);
  u32("attention.head_count", p.n_head);
  u32("attention.head_count_kv", p.n_head_kv);
  u32("attention.key_length", p.head_dim);
  u32("attention.value_length", p.head_dim);
  f32("attention.layer_norm_rms_epsilon", p.rms_eps);
  f32("rope.freq_base", p.rope_freq_base);
  u32("rope.dimension_count", p.head_dim);
  u32("vocab_size", p.n_vocab);
  if (p.rope_freq_base_swa > 0) f32("rope.freq_base_swa", p.rope_freq_base_swa);
  if (p.rope_scaling == "linear") {
    gguf_set_val_str(g, key("rope.scaling.type").c_str(), "linear");
    f32("rope.scaling.factor", p.rope_scaling_factor);
  }
  if (p.rope_scaling == "longrope") {
    // convert_hf_to_gguf.py's Phi-3 attention factor: sqrt(1 + ln(scale) / ln(original ctx)).
    const double scale = static_cast<double>(p.n_ctx_train) / p.rope_orig_ctx;
    f32("rope.scaling.attn_factor",
        static_cast<float>(
            std::sqrt(1.0 + std::log(scale) / std::log(static_cast<double>(p.rope_orig_ctx)))));
    u32("rope.scaling.original_context_length", p.rope_orig_ctx);
  }
  if (p.n_swa > 0) u32("attention.sliding_window", p.n_swa);
  if (p.swa_pattern > 0) u32("attention.sliding_window_pattern", p.swa_pattern);
  if (p.n_expert > 0) {
    u32("expert_count", p.n_expert);
    u32("expert_used_count", p.n_expert_used);
    u32("expert_feed_forward_length", p.n_ff_exp);
  }
}

}  // namespace

Result<BuiltModel> BuildModel(const Preset& preset, const std::string& vocab_dir) {
  const std::string vocab_path =
      (std::filesystem::path(vocab_dir) / ("ggml-vocab-" + preset.vocab + ".gguf")).string();
  SNUG_ASSIGN_OR_RETURN(GgufPtr vocab, LoadVocab(vocab_path));

  BuiltModel model;
  model.gguf.reset(gguf_init_empty());
  SetArchKeys(model.gguf.get(), preset);
  SNUG_RETURN_IF_ERROR(CopyTokenizer(model.gguf.get(), vocab.get(), preset, vocab_path));

  model.tensors = PlanTensors(preset);
  ggml_init_params params{};
  params.mem_size = (model.tensors.size() + 1) * ggml_tensor_overhead();
  params.mem_buffer = nullptr;
  params.no_alloc = true;
  model.ggml.reset(ggml_init(params));
  if (!model.ggml) return Status::Internal("ggml_init failed for tensor descriptors");
  for (const TensorPlan& t : model.tensors) {
    ggml_tensor* tensor = ggml_new_tensor(model.ggml.get(), static_cast<ggml_type>(t.type),
                                          static_cast<int>(t.ne.size()), t.ne.data());
    ggml_set_name(tensor, t.name.c_str());
    gguf_add_tensor(model.gguf.get(), tensor);
  }

  const size_t alignment = gguf_get_alignment(model.gguf.get());
  model.meta_bytes = gguf_get_meta_size(model.gguf.get());
  const int64_t last = gguf_get_n_tensors(model.gguf.get()) - 1;
  uint64_t data_bytes = 0;
  if (last >= 0) {
    const uint64_t end = gguf_get_tensor_offset(model.gguf.get(), last) +
                         gguf_get_tensor_size(model.gguf.get(), last);
    data_bytes = (end + alignment - 1) / alignment * alignment;
  }
  model.file_bytes = model.meta_bytes + data_bytes;
  return model;
}

}  // namespace snug::synth::internal
