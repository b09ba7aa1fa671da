// Each check below names the llama.cpp code it mirrors (paths under llama.cpp's src/, as of the
// version snug builds against). "aborts" marks a GGML_ASSERT / GGML_ABORT, which kills the process;
// "throws" marks an exception llama.cpp turns into a failed load, checked here for the clearer
// message. Values llama.cpp only warns about are left alone.
#include "gguf/validate.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <fmt/format.h>

#include "gguf/reader.h"

namespace snug::gguf {
namespace {

constexpr int64_t kMaxLayers = 512;    // LLAMA_MAX_LAYERS, llama-hparams.h
constexpr int64_t kMaxExperts = 1024;  // LLAMA_MAX_EXPERTS, llama-hparams.h
// Widths and head counts beyond this are no model's (the widest have tens of thousands); the bound
// keeps the shape arithmetic below far from overflow on hostile values.
constexpr int64_t kMaxWidth = int64_t{1} << 24;

// Architectures whose llama.cpp loaders (src/models/<arch>.cpp) the structural checks follow.
bool IsKnownArch(const std::string& arch) {
  static const std::set<std::string> kKnown = {"llama",    "qwen2",  "qwen3",
                                               "qwen3moe", "gemma3", "phi3"};
  return kKnown.count(arch) > 0;
}

// A token text for a message: control bytes escaped, long texts cut.
std::string Shown(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (out.size() >= 60) {
      out += "...";
      break;
    }
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c == 0x7f) {
      out += fmt::format("\\x{:02x}", c);
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

std::string ShapeString(const std::vector<int64_t>& ne) {
  std::string s = "[";
  for (size_t i = 0; i < ne.size(); ++i)
    s += fmt::format("{}{}", i ? ", " : "", ne[i]);
  return s + "]";
}

// A tensor name's block index: "blk.12.attn_q.weight" -> 12; -1 for tensors outside blocks.
int64_t BlockIndex(const std::string& name) {
  if (name.rfind("blk.", 0) != 0) return -1;
  int64_t index = 0;
  size_t i = 4;
  for (; i < name.size() && name[i] >= '0' && name[i] <= '9'; ++i) {
    if (index > (int64_t{1} << 40)) return -1;
    index = index * 10 + (name[i] - '0');
  }
  if (i == 4 || i >= name.size() || name[i] != '.') return -1;
  return index;
}

class Checker {
 public:
  explicit Checker(const File& file) : f_(file), arch_(file.Arch()) {}

  Status Model() {
    if (arch_.empty()) return Fail("general.architecture is missing");  // llama-model-loader throws
    SNUG_RETURN_IF_ERROR(Hparams());
    SNUG_RETURN_IF_ERROR(Vocab());
    if (IsKnownArch(arch_)) SNUG_RETURN_IF_ERROR(Tensors());
    return Status::Ok();
  }

  Status Vocab();

 private:
  std::string Key(const char* suffix) const { return arch_ + "." + suffix; }

  Status Fail(const std::string& problem) const {
    return Status::Corrupt(fmt::format("{} is not a valid model: {}", f_.path, problem));
  }

  // A per-layer value given as a scalar or as an array of one entry per layer
  // (llama_model_loader::get_key_or_arr: an array of another length throws). Absent: `fallback`.
  Result<std::vector<int64_t>> PerLayer(const char* suffix, const std::vector<int64_t>& fallback) {
    const std::string key = Key(suffix);
    auto it = f_.kv.find(key);
    if (it == f_.kv.end()) return fallback;
    const Value& v = it->second;
    std::vector<int64_t> values;
    if (v.type != ValueType::kArray) {
      auto scalar = f_.GetInt(key);
      if (!scalar) return Fail(fmt::format("{} is not an integer", key));
      values.assign(n_layer_, *scalar);
    } else {
      if (v.array_length != static_cast<uint64_t>(n_layer_)) {
        return Fail(fmt::format("{} has {} entries but {} is {} (one entry per layer)", key,
                                v.array_length, Key("block_count"), n_layer_));
      }
      auto array = f_.GetIntArray(key);
      if (!array) return Fail(fmt::format("{} is not an array of integers", key));
      values = std::move(*array);
    }
    for (int64_t x : values)
      SNUG_RETURN_IF_ERROR(Bounded(key, x));
    return values;
  }

  Status Bounded(const std::string& key, int64_t value) const {
    if (value <= kMaxWidth) return Status::Ok();
    return Fail(fmt::format("{} is {}, more than any model has", key, value));
  }

  // A float key that must be finite and >= min (or > min when `strict`).
  Status CheckFloat(const std::string& key, double min, bool strict, const char* why) const {
    if (f_.kv.count(key) == 0) return Status::Ok();
    auto v = f_.GetFloat(key);
    if (!v) return Fail(fmt::format("{} is not a number", key));
    if (!std::isfinite(*v) || *v < min || (strict && *v == min)) {
      // Shown as the float32 GGUF stores ("-1e-05", not "-9.999999747378752e-06").
      return Fail(fmt::format("{} is {}; it must be a finite number {} {} ({})", key,
                              static_cast<float>(*v), strict ? ">" : ">=", min, why));
    }
    return Status::Ok();
  }

  Status Hparams();
  Status Blocks();
  Status Experts();
  Status Attention();
  Status Tensors();
  Status CheckShape(const TensorInfo& t, const std::vector<int64_t>& want, const char* why) const;

  const File& f_;
  const std::string arch_;
  int64_t n_layer_ = 0;
  int64_t n_embd_ = 0;
  std::vector<int64_t> n_head_, n_head_kv_, n_ff_;
  int64_t head_k_ = 0, head_v_ = 0;
  int64_t n_expert_ = 0, n_expert_used_ = 0, n_ff_exp_ = 0;
  uint64_t n_vocab_ = 0;
  bool have_vocab_ = false;
};

Status Checker::Hparams() {
  // llama-model.cpp, llama_model_base::load_hparams.
  auto ctx = f_.GetInt(Key("context_length"));
  if (!ctx) return Fail(Key("context_length") + " is missing");  // required key: throws
  if (*ctx <= 0) {
    return Fail(fmt::format("{} is {}; a model needs a positive training context",
                            Key("context_length"), *ctx));
  }
  auto embd = f_.GetInt(Key("embedding_length"));
  if (!embd) return Fail(Key("embedding_length") + " is missing");  // required key: throws
  if (*embd <= 0) {
    return Fail(fmt::format("{} is {}; it must be positive", Key("embedding_length"), *embd));
  }
  SNUG_RETURN_IF_ERROR(Bounded(Key("embedding_length"), *embd));
  n_embd_ = *embd;

  SNUG_RETURN_IF_ERROR(Blocks());
  SNUG_RETURN_IF_ERROR(Experts());

  SNUG_ASSIGN_OR_RETURN(n_ff_, PerLayer("feed_forward_length", std::vector<int64_t>(n_layer_, 0)));
  SNUG_ASSIGN_OR_RETURN(n_head_,
                        PerLayer("attention.head_count", std::vector<int64_t>(n_layer_, 0)));
  // head_count_kv defaults to head_count.
  SNUG_ASSIGN_OR_RETURN(n_head_kv_, PerLayer("attention.head_count_kv", n_head_));

  // llama_rope_scaling_type_from_string: anything else is LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED,
  // which aborts (GGML_ASSERT(rope_scaling_type_train != LLAMA_ROPE_SCALING_TYPE_UNSPECIFIED)).
  const std::string scaling_key = Key("rope.scaling.type");
  if (f_.kv.count(scaling_key) > 0) {
    auto type = f_.GetString(scaling_key);
    if (!type) return Fail(scaling_key + " is not a string");  // get_key<std::string> throws
    if (*type != "none" && *type != "linear" && *type != "yarn" && *type != "longrope") {
      return Fail(fmt::format(
          "{} is '{}'; llama.cpp knows none, linear, yarn and longrope (and aborts on others)",
          scaling_key, Shown(*type)));
    }
  }

  // RoPE: theta = pos * base^(-2i/n) is meaningless for a base that is not a positive number, and
  // a negative or non-finite scale makes every position's angle NaN or garbage.
  SNUG_RETURN_IF_ERROR(
      CheckFloat(Key("rope.freq_base"), 0, true, "the RoPE base frequency is a positive number"));
  SNUG_RETURN_IF_ERROR(CheckFloat(Key("rope.freq_base_swa"), 0, true,
                                  "the RoPE base frequency is a positive number"));
  // 0 means "no scaling" (load_hparams: rope_freq_scale_train = ropescale == 0 ? 1 : 1/ropescale).
  SNUG_RETURN_IF_ERROR(
      CheckFloat(Key("rope.scaling.factor"), 0, false, "0 means no scaling; negative is invalid"));
  SNUG_RETURN_IF_ERROR(
      CheckFloat(Key("rope.scale_linear"), 0, false, "0 means no scaling; negative is invalid"));
  SNUG_RETURN_IF_ERROR(CheckFloat(Key("rope.scaling.attn_factor"), 0, true,
                                  "it multiplies every rotated query and key"));

  // ggml-cpu/ops.cpp, ggml_compute_forward_{norm,rms_norm,l2_norm}_f32: GGML_ASSERT(eps >= 0.0f)
  // aborts at the first decode (a NaN fails it too).
  SNUG_RETURN_IF_ERROR(CheckFloat(Key("attention.layer_norm_rms_epsilon"), 0, false,
                                  "llama.cpp's RMS norm asserts eps >= 0"));
  SNUG_RETURN_IF_ERROR(CheckFloat(Key("attention.layer_norm_epsilon"), 0, false,
                                  "llama.cpp's layer norm asserts eps >= 0"));
  if (IsKnownArch(arch_) && f_.kv.count(Key("attention.layer_norm_rms_epsilon")) == 0) {
    // src/models/<arch>.cpp load_arch_hparams: a required get_key, throws.
    return Fail(Key("attention.layer_norm_rms_epsilon") + " is missing");
  }

  return Attention();
}

Status Checker::Blocks() {
  const std::string key = Key("block_count");
  auto n_layer = f_.GetInt(key);
  if (!n_layer) return Fail(key + " is missing");  // required key: throws

  // The blocks the file has tensors for. For the known architectures every block has tensors and
  // there are no others (create_tensor throws for a missing one; done_getting_tensors for extras).
  if (IsKnownArch(arch_)) {
    int64_t max_block = -1;
    for (const TensorInfo& t : f_.tensors)
      max_block = std::max(max_block, BlockIndex(t.name));
    if (max_block < 0) {
      return Fail(fmt::format("{} is {} but the file has no blk.* tensors", key, *n_layer));
    }
    if (*n_layer != max_block + 1) {
      return Fail(fmt::format("{} is {} but the file has tensors for {} blocks (blk.0 .. blk.{})",
                              key, *n_layer, max_block + 1, max_block));
    }
  }
  // load_hparams: GGML_ASSERT(n_layer_all > 0 && n_layer_all <= LLAMA_MAX_LAYERS) aborts.
  if (*n_layer <= 0 || *n_layer > kMaxLayers) {
    return Fail(
        fmt::format("{} is {}; llama.cpp supports 1 to {} layers", key, *n_layer, kMaxLayers));
  }
  n_layer_ = *n_layer;
  // load_hparams: GGML_ASSERT(n_layer_nextn <= n_layer_all) aborts.
  if (auto nextn = f_.GetInt(Key("nextn_predict_layers")); nextn && *nextn > n_layer_) {
    return Fail(
        fmt::format("{} is {} but {} is {}", Key("nextn_predict_layers"), *nextn, key, n_layer_));
  }
  return Status::Ok();
}

Status Checker::Experts() {
  // load_hparams, after "models may route a different number of experts per layer": every one of
  // these is a GGML_ASSERT and aborts.
  const std::string count_key = Key("expert_count");
  const std::string used_key = Key("expert_used_count");
  n_expert_ = f_.GetInt(count_key).value_or(0);
  SNUG_ASSIGN_OR_RETURN(std::vector<int64_t> used,
                        PerLayer("expert_used_count", std::vector<int64_t>(n_layer_, 0)));
  int64_t used_max = 0;
  for (int64_t u : used)
    used_max = std::max(used_max, u);
  n_expert_used_ = used.empty() ? 0 : used[0];
  const int64_t groups = f_.GetInt(Key("expert_group_count")).value_or(0);
  const int64_t groups_used = f_.GetInt(Key("expert_group_used_count")).value_or(0);

  // hunyuan-dense / hunyuan_vl files may say 1 expert; load_hparams makes that a dense model.
  if ((arch_ == "hunyuan-dense" || arch_ == "hunyuan_vl") && n_expert_ <= 1) {
    n_expert_ = used_max = n_expert_used_ = 0;
  }

  if (n_expert_ < 0 || n_expert_ > kMaxExperts) {
    return Fail(fmt::format("{} is {}; llama.cpp supports at most {} experts", count_key, n_expert_,
                            kMaxExperts));
  }
  if (used_max < 0 || used_max > n_expert_) {
    return Fail(fmt::format("{} is {} but {} is {}; a token cannot use more experts than exist",
                            used_key, used_max, count_key, n_expert_));
  }
  if (n_expert_ > 0) {
    if (used_max == 0) {
      return Fail(
          fmt::format("{} is {} but {} is 0; a mixture-of-experts model must use at "
                      "least one expert per token",
                      count_key, n_expert_, used_key));
    }
    if (groups < 0 || groups >= n_expert_) {
      return Fail(fmt::format("{} is {}; it must be less than {} ({})", Key("expert_group_count"),
                              groups, count_key, n_expert_));
    }
    if (groups > 1) {
      if (n_expert_ % groups != 0) {
        return Fail(fmt::format("{} is {} but {} is {}, which it does not divide",
                                Key("expert_group_count"), groups, count_key, n_expert_));
      }
      if (groups_used <= 0 || groups_used >= groups) {
        return Fail(fmt::format("{} is {}; it must be between 1 and {} - 1 ({})",
                                Key("expert_group_used_count"), groups_used,
                                Key("expert_group_count"), groups));
      }
    }
  } else if (groups != 0) {
    return Fail(
        fmt::format("{} is {} but the model has no experts", Key("expert_group_count"), groups));
  }
  if (arch_ == "qwen3moe" && n_expert_used_ == 0) {
    // models/qwen3moe.cpp load_arch_tensors throws "n_expert(_used) must be > 0 for QWEN3MOE".
    return Fail(fmt::format("{} is {}; qwen3moe needs experts",
                            n_expert_ == 0 ? count_key : used_key,
                            n_expert_ == 0 ? n_expert_ : n_expert_used_));
  }
  if (arch_ == "qwen3moe") {
    SNUG_ASSIGN_OR_RETURN(std::vector<int64_t> ff_exp, PerLayer("expert_feed_forward_length",
                                                                std::vector<int64_t>(n_layer_, 0)));
    n_ff_exp_ = ff_exp.empty() ? 0 : ff_exp[0];
  }
  return Status::Ok();
}

Status Checker::Attention() {
  const std::string head_key = Key("attention.head_count");
  const std::string kv_key = Key("attention.head_count_kv");
  const bool known = IsKnownArch(arch_);
  for (int64_t il = 0; il < n_layer_; ++il) {
    const int64_t h = n_head_[il], kv = n_head_kv_[il];
    const std::string where = n_layer_ > 1 ? fmt::format(" (layer {})", il) : "";
    if (h < 0 || kv < 0) {
      return Fail(fmt::format("{} is {}{}", h < 0 ? head_key : kv_key, h < 0 ? h : kv, where));
    }
    // Attention-free layers (recurrent hybrids) have zero heads; these architectures have none.
    if (known && h == 0) return Fail(fmt::format("{} is 0{}", head_key, where));
    if (known && kv == 0) return Fail(fmt::format("{} is 0{}", kv_key, where));
    // Grouped-query attention broadcasts K/V heads over query heads: ggml_mul_mat and
    // ggml_flash_attn_ext assert that the KV head count divides the query head count (aborts).
    if (h > 0 && kv > 0 && h % kv != 0) {
      return Fail(
          fmt::format("{} is {} but {} is {}{}; the KV head count must divide the query head count",
                      kv_key, kv, head_key, h, where));
    }
  }
  if (n_layer_ == 0 || n_head_[0] == 0) return Status::Ok();

  // load_hparams: head sizes default to n_embd / n_head (layer 0), RoPE dims to the key size.
  const std::string k_key = Key("attention.key_length");
  const std::string v_key = Key("attention.value_length");
  const std::string rot_key = Key("rope.dimension_count");
  const int64_t head_default = n_embd_ / n_head_[0];
  head_k_ = f_.GetInt(k_key).value_or(head_default);
  head_v_ = f_.GetInt(v_key).value_or(head_default);
  SNUG_RETURN_IF_ERROR(Bounded(k_key, head_k_));
  SNUG_RETURN_IF_ERROR(Bounded(v_key, head_v_));
  const int64_t n_rot = f_.GetInt(rot_key).value_or(head_k_);
  if (!known) return Status::Ok();

  auto head_source = [&](const std::string& key) {
    return f_.kv.count(key) ? key
                            : fmt::format("{} / {} ({} / {})", Key("embedding_length"), head_key,
                                          n_embd_, n_head_[0]);
  };
  if (head_k_ <= 0) return Fail(fmt::format("{} is {}", head_source(k_key), head_k_));
  if (head_v_ <= 0) return Fail(fmt::format("{} is {}", head_source(v_key), head_v_));
  // models/{llama,qwen2,qwen3,qwen3moe,phi3}.cpp graph builders: GGML_ASSERT(n_embd_head ==
  // hparams.n_embd_head_k()) aborts when value and key heads differ.
  if (arch_ != "gemma3" && head_v_ != head_k_) {
    return Fail(fmt::format("{} is {} but {} is {}; {} needs equal key and value head sizes", v_key,
                            head_v_, k_key, head_k_, arch_));
  }
  // llama: load_hparams throws "invalid n_rot"; qwen2/qwen3/qwen3moe graph builders:
  // GGML_ASSERT(n_embd_head == n_rot) aborts.
  if ((arch_ == "llama" || arch_ == "qwen2" || arch_ == "qwen3" || arch_ == "qwen3moe") &&
      n_rot != head_k_) {
    return Fail(fmt::format("{} is {} but the key head size is {}; {} rotates whole heads", rot_key,
                            n_rot, head_k_, arch_));
  }
  // qwen2 and phi3 project queries to embedding_length and reshape them into n_head heads of the
  // key head size: ggml_reshape_3d asserts the element counts agree (aborts).
  if ((arch_ == "qwen2" || arch_ == "phi3") && head_k_ * n_head_[0] != n_embd_) {
    return Fail(
        fmt::format("{} ({}) x {} ({}) is {}, not {} ({}); {} splits the embedding into "
                    "its query heads",
                    head_key, n_head_[0], head_source(k_key), head_k_, head_k_ * n_head_[0],
                    Key("embedding_length"), n_embd_, arch_));
  }
  return Status::Ok();
}

Status Checker::Vocab() {
  // llama-vocab.cpp, llama_vocab::impl::load.
  auto model = f_.GetString("tokenizer.ggml.model");
  if (!model) return Fail("tokenizer.ggml.model is missing");  // required key: throws
  if (*model == "no_vocab" || *model == "none") {
    // No tokenizer: vocab_size dummy tokens (optional).
    n_vocab_ =
        static_cast<uint64_t>(std::max<int64_t>(0, f_.GetInt(Key("vocab_size")).value_or(0)));
    have_vocab_ = true;
    return Status::Ok();
  }

  auto it = f_.kv.find("tokenizer.ggml.tokens");
  if (it == f_.kv.end()) return Fail("tokenizer.ggml.tokens is missing");  // throws
  const Value& tokens = it->second;
  if (tokens.type != ValueType::kArray || tokens.array_type != ValueType::kString) {
    return Fail("tokenizer.ggml.tokens is not an array of strings");  // throws
  }
  const uint64_t n = tokens.array_length;
  if (n > kMaxScannedTokens) {
    return Fail(
        fmt::format("tokenizer.ggml.tokens has {} tokens, more than the {} snug checks for "
                    "repeats (real vocabularies have a few hundred thousand)",
                    n, kMaxScannedTokens));
  }
  // The scores and token types are read for every token id: a shorter array throws.
  for (const char* key : {"tokenizer.ggml.scores", "tokenizer.ggml.token_type"}) {
    auto arr = f_.kv.find(key);
    if (arr == f_.kv.end()) continue;
    if (arr->second.type != ValueType::kArray) return Fail(fmt::format("{} is not an array", key));
    if (arr->second.array_length < n) {
      return Fail(fmt::format("{} has {} entries but tokenizer.ggml.tokens has {} tokens", key,
                              arr->second.array_length, n));
    }
  }
  // GGML_ASSERT(id_to_token.size() == token_to_id.size()) aborts on a repeated token.
  if (f_.duplicate_token) {
    const DuplicateToken& d = *f_.duplicate_token;
    return Fail(fmt::format(
        "tokenizer.ggml.tokens has the token '{}' twice (ids {} and {}); llama.cpp aborts on a "
        "vocabulary with a repeated token",
        Shown(d.text), d.first_id, d.second_id));
  }
  n_vocab_ = n;
  have_vocab_ = true;

  // Special tokens. impl::load starts from the tokenizer type's default id and takes the GGUF's
  // value when it is inside the vocabulary; an id outside it only warns ("bad special token", and
  // real files have such ids for tokens they never use), so only a token llama.cpp adds to every
  // prompt and cannot resolve is refused: impl::tokenize and the BPE session's append_bos /
  // append_eos assert that it is set (aborts).
  const int64_t kNull = -1;
  struct Defaults {
    int64_t bos, eos, sep;
    std::optional<bool> add_bos, add_eos;  // nullopt: depends on the pre-tokenizer (BPE)
    bool wpm = false;                      // BERT: BOS and SEP are added to every prompt
  };
  Defaults d{kNull, kNull, kNull, false, false};
  if (*model == "llama") {
    d = {1, 2, kNull, true, false};
  } else if (*model == "bert") {
    d = {101, kNull, 102, true, false, true};
  } else if (*model == "gpt2" || *model == "hybriddna" || *model == "whitespace") {
    d = {11, 11, kNull, std::nullopt, std::nullopt};
  } else if (*model == "t5") {
    d = {kNull, 1, kNull, false, true};
  } else if (*model == "plamo2") {
    d = {1, 2, kNull, false, false};
  } else if (*model == "gemma4") {
    d = {kNull, kNull, kNull, true, std::nullopt};  // add_bos is forced on for Gemma 4
  } else {
    return Status::Ok();  // rwkv adds nothing; an unknown tokenizer throws in llama.cpp
  }
  if (auto b = f_.GetBool("tokenizer.ggml.add_bos_token"); b && *model != "gemma4") d.add_bos = *b;
  if (auto b = f_.GetBool("tokenizer.ggml.add_eos_token")) d.add_eos = *b;

  auto check = [&](const char* key, const char* what, int64_t default_id, bool added,
                   const char* flag) -> Status {
    if (!added) return Status::Ok();
    int64_t id = default_id >= 0 && static_cast<uint64_t>(default_id) < n ? default_id : kNull;
    auto given = f_.GetInt(key);
    if (given && *given >= 0 && static_cast<uint64_t>(*given) < n) id = *given;
    if (id != kNull) return Status::Ok();
    const std::string value = given ? fmt::format("{} is {}, outside the {} tokens", key, *given, n)
                                    : fmt::format("{} is missing", key);
    return Fail(
        fmt::format("{}, and no default {} token exists; llama.cpp adds a {} token to "
                    "every prompt ({}) and aborts when it has none",
                    value, what, what, flag));
  };
  SNUG_RETURN_IF_ERROR(check("tokenizer.ggml.bos_token_id", "BOS", d.bos,
                             d.wpm || d.add_bos.value_or(false),
                             d.wpm ? "BERT tokenizer" : "tokenizer.ggml.add_bos_token"));
  SNUG_RETURN_IF_ERROR(check("tokenizer.ggml.eos_token_id", "EOS", d.eos,
                             !d.wpm && d.add_eos.value_or(false), "tokenizer.ggml.add_eos_token"));
  SNUG_RETURN_IF_ERROR(
      check("tokenizer.ggml.seperator_token_id", "SEP", d.sep, d.wpm, "BERT tokenizer"));
  return Status::Ok();
}

Status Checker::CheckShape(const TensorInfo& t, const std::vector<int64_t>& want,
                           const char* why) const {
  // llama_model_loader::check_tensor_dims: the given dimensions must match and any others be 1;
  // it throws "tensor has wrong shape".
  bool ok = true;
  for (size_t i = 0; i < std::max(want.size(), t.ne.size()); ++i) {
    const int64_t have = i < t.ne.size() ? t.ne[i] : 1;
    const int64_t expect = i < want.size() ? want[i] : 1;
    if (have != expect) ok = false;
  }
  if (ok) return Status::Ok();
  return Fail(fmt::format("tensor '{}' has shape {} but {} expects {} ({})", t.name,
                          ShapeString(t.ne), arch_, ShapeString(want), why));
}

Status Checker::Tensors() {
  // The main tensors as src/models/<arch>.cpp load_arch_tensors creates them. Like
  // LLAMA_LOAD_LOCALS, every block is checked against layer 0's head and FFN sizes.
  const bool qwen2_like = arch_ == "qwen2" || arch_ == "phi3";  // queries as wide as n_embd
  // Models with separate sliding-window head sizes (gemma3 may have them) are not checked here.
  const bool heads_known = n_layer_ > 0 && n_head_[0] > 0 &&
                           f_.kv.count(Key("attention.key_length_swa")) == 0 &&
                           f_.kv.count(Key("attention.value_length_swa")) == 0;
  const int64_t n_q = qwen2_like ? n_embd_ : head_k_ * (n_layer_ > 0 ? n_head_[0] : 0);
  const int64_t kv0 = n_layer_ > 0 ? n_head_kv_[0] : 0;
  const int64_t n_k = head_k_ * kv0, n_v = head_v_ * kv0;
  const int64_t n_ff = n_layer_ > 0 ? n_ff_[0] : 0;
  const auto vocab = static_cast<int64_t>(n_vocab_);
  const char* kVocabWhy = "rows = tokens in tokenizer.ggml.tokens";

  for (const TensorInfo& t : f_.tensors) {
    const std::string& name = t.name;
    if (name == "token_embd.weight" || name == "output.weight") {
      if (have_vocab_) SNUG_RETURN_IF_ERROR(CheckShape(t, {n_embd_, vocab}, kVocabWhy));
      continue;
    }
    if (name == "output_norm.weight") {
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_embd_}, "embedding_length"));
      continue;
    }
    const int64_t il = BlockIndex(name);
    if (il < 0) continue;
    const std::string suffix = name.substr(name.find('.', 4) + 1);
    if (suffix == "attn_norm.weight" || suffix == "ffn_norm.weight") {
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_embd_}, "embedding_length"));
    } else if (heads_known && suffix == "attn_qkv.weight") {
      SNUG_RETURN_IF_ERROR(
          CheckShape(t, {n_embd_, n_q + n_k + n_v}, "queries, keys and values of all heads"));
    } else if (heads_known && suffix == "attn_q.weight") {
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_embd_, n_q}, "query heads x key head size"));
    } else if (heads_known && suffix == "attn_k.weight") {
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_embd_, n_k}, "KV heads x key head size"));
    } else if (heads_known && suffix == "attn_v.weight") {
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_embd_, n_v}, "KV heads x value head size"));
    } else if (heads_known && suffix == "attn_output.weight") {
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_q, n_embd_}, "query heads x key head size"));
    } else if (n_expert_ == 0 && (suffix == "ffn_gate.weight" || suffix == "ffn_up.weight")) {
      const int64_t width = arch_ == "phi3" && suffix == "ffn_up.weight" ? 2 * n_ff : n_ff;
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_embd_, width}, "feed_forward_length"));
    } else if (n_expert_ == 0 && suffix == "ffn_down.weight") {
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_ff, n_embd_}, "feed_forward_length"));
    } else if (n_expert_ > 0 && suffix == "ffn_gate_inp.weight") {
      SNUG_RETURN_IF_ERROR(CheckShape(t, {n_embd_, n_expert_}, "expert_count"));
    } else if (n_expert_ > 0 &&
               (suffix == "ffn_gate_exps.weight" || suffix == "ffn_up_exps.weight" ||
                suffix == "ffn_down_exps.weight")) {
      // llama: experts as wide as feed_forward_length; qwen3moe: expert_feed_forward_length, else
      // feed_forward_length / expert_used_count.
      int64_t width = n_ff;
      if (arch_ == "qwen3moe") {
        width = n_ff_exp_ > 0 ? n_ff_exp_ : (n_expert_used_ > 0 ? n_ff / n_expert_used_ : 0);
      } else if (arch_ != "llama") {
        continue;
      }
      const bool down = suffix == "ffn_down_exps.weight";
      SNUG_RETURN_IF_ERROR(CheckShape(t,
                                      down ? std::vector<int64_t>{width, n_embd_, n_expert_}
                                           : std::vector<int64_t>{n_embd_, width, n_expert_},
                                      "expert width and expert_count"));
    }
  }
  return Status::Ok();
}

}  // namespace

Status ValidateModel(const File& file) {
  return Checker(file).Model();
}

Status ValidateVocab(const File& file) {
  return Checker(file).Vocab();
}

}  // namespace snug::gguf
