// Where these numbers come from: each preset copies the model's config.json as published by its
// authors on Hugging Face (the Instruct / -it release where there is one): hidden_size,
// num_hidden_layers, num_attention_heads, num_key_value_heads, head_dim, intermediate_size,
// vocab_size, max_position_embeddings, rms_norm_eps, rope_theta, rope_scaling, sliding_window,
// num_experts / num_experts_per_tok / moe_intermediate_size, tie_word_embeddings. The mapping to
// GGUF keys and tensors follows llama.cpp's convert_hf_to_gguf.py and src/models/<arch>.cpp, so a
// synthetic file has the same keys, tensor names and shapes as a converted real one.
#include "synth/presets.h"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>

namespace snug::synth {
namespace {

// Shortened versions of the models' own chat templates; llama.cpp's template detection
// (llama_chat_detect_template) recognises each of them.
constexpr const char* kLlama3Template =
    "{{- bos_token }}{%- for message in messages %}{{- '<|start_header_id|>' + message['role'] + "
    "'<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{%- endif %}";

constexpr const char* kGemmaTemplate =
    "{{ bos_token }}{%- for message in messages -%}{%- if message['role'] == 'assistant' -%}"
    "{%- set role = 'model' -%}{%- else -%}{%- set role = message['role'] -%}{%- endif -%}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{%- endfor -%}{%- if add_generation_prompt -%}{{ '<start_of_turn>model\\n' }}{%- endif -%}";

constexpr const char* kMistralTemplate =
    "{{- bos_token }}{%- for message in messages %}{%- if message['role'] == 'user' %}"
    "{%- if tools and loop.last %}{{- '[AVAILABLE_TOOLS]' + tools | tojson + '[/AVAILABLE_TOOLS]' "
    "}}"
    "{%- endif %}{{- '[INST] ' + message['content'] + '[/INST]' }}"
    "{%- elif message['role'] == 'assistant' %}{{- message['content'] + eos_token }}{%- endif %}"
    "{%- endfor %}";

Preset Llama(std::string base, std::string display) {
  Preset p;
  p.base = std::move(base);
  p.display_name = std::move(display);
  p.arch = "llama";
  p.type = kTypeQ4_K_M;
  p.vocab = "llama-bpe";
  p.chat_template = kLlama3Template;
  p.n_vocab = 128256;
  p.rms_eps = 1e-5f;
  p.rope_freq_base = 500000.0f;
  p.n_ctx_train = 131072;
  p.rope_scaling = "llama3";
  p.rope_orig_ctx = 8192;
  p.rope_low_freq_factor = 1.0f;
  p.rope_high_freq_factor = 4.0f;
  return p;
}

Preset Qwen(std::string base, std::string display, std::string arch) {
  Preset p;
  p.base = std::move(base);
  p.display_name = std::move(display);
  p.arch = std::move(arch);
  p.type = kTypeQ4_K_M;
  p.vocab = "qwen2";  // its ChatML template is kept
  p.n_vocab = 151936;
  p.rms_eps = 1e-6f;
  p.rope_freq_base = 1000000.0f;
  return p;
}

Preset Gemma3(std::string base, std::string display) {
  Preset p;
  p.base = std::move(base);
  p.display_name = std::move(display);
  p.arch = "gemma3";
  p.type = kTypeQ4_K_M;
  // llama.cpp ships no Gemma 3 tokenizer; Gemma 4's has the same 262144-token size.
  p.vocab = "gemma-4";
  p.chat_template = kGemmaTemplate;
  p.rms_eps = 1e-6f;
  p.rope_freq_base = 1000000.0f;
  p.rope_freq_base_swa = 10000.0f;  // rope_local_base_freq
  p.head_dim = 256;
  p.swa_pattern = 6;  // sliding_window_pattern: 5 local layers, then 1 global
  p.tied_embeddings = true;
  p.qk_norm = true;
  p.post_norms = true;
  return p;
}

std::vector<Preset> MakePresets() {
  std::vector<Preset> all;

  {  // meta-llama/Llama-3.2-1B-Instruct
    Preset p = Llama("llama-3.2-1b", "Llama 3.2 1B Instruct");
    p.n_layer = 16, p.n_embd = 2048, p.n_head = 32, p.n_head_kv = 8, p.head_dim = 64;
    p.n_ff = 8192, p.rope_scaling_factor = 32.0f, p.tied_embeddings = true;
    all.push_back(p);
  }
  {  // meta-llama/Llama-3.2-3B-Instruct
    Preset p = Llama("llama-3.2-3b", "Llama 3.2 3B Instruct");
    p.n_layer = 28, p.n_embd = 3072, p.n_head = 24, p.n_head_kv = 8, p.head_dim = 128;
    p.n_ff = 8192, p.rope_scaling_factor = 32.0f, p.tied_embeddings = true;
    all.push_back(p);
  }
  {  // meta-llama/Llama-3.1-8B-Instruct
    Preset p = Llama("llama-3.1-8b", "Llama 3.1 8B Instruct");
    p.n_layer = 32, p.n_embd = 4096, p.n_head = 32, p.n_head_kv = 8, p.head_dim = 128;
    p.n_ff = 14336, p.rope_scaling_factor = 8.0f, p.tied_embeddings = false;
    all.push_back(p);
  }
  {  // Qwen/Qwen2.5-0.5B-Instruct
    Preset p = Qwen("qwen2.5-0.5b", "Qwen2.5 0.5B Instruct", "qwen2");
    p.n_layer = 24, p.n_embd = 896, p.n_head = 14, p.n_head_kv = 2, p.head_dim = 64;
    p.n_ff = 4864, p.n_ctx_train = 32768, p.tied_embeddings = true, p.qkv_bias = true;
    all.push_back(p);
  }
  {  // Qwen/Qwen2.5-7B-Instruct
    Preset p = Qwen("qwen2.5-7b", "Qwen2.5 7B Instruct", "qwen2");
    p.n_layer = 28, p.n_embd = 3584, p.n_head = 28, p.n_head_kv = 4, p.head_dim = 128;
    p.n_ff = 18944, p.n_vocab = 152064, p.n_ctx_train = 32768, p.qkv_bias = true;
    all.push_back(p);
  }
  {  // Qwen/Qwen3-4B
    Preset p = Qwen("qwen3-4b", "Qwen3 4B", "qwen3");
    p.n_layer = 36, p.n_embd = 2560, p.n_head = 32, p.n_head_kv = 8, p.head_dim = 128;
    p.n_ff = 9728, p.n_ctx_train = 40960, p.tied_embeddings = true, p.qk_norm = true;
    all.push_back(p);
  }
  {  // Qwen/Qwen3-30B-A3B
    Preset p = Qwen("qwen3-30b-a3b", "Qwen3 30B A3B", "qwen3moe");
    p.n_layer = 48, p.n_embd = 2048, p.n_head = 32, p.n_head_kv = 4, p.head_dim = 128;
    p.n_ff = 6144, p.n_ctx_train = 40960, p.qk_norm = true;
    p.n_expert = 128, p.n_expert_used = 8, p.n_ff_exp = 768;
    all.push_back(p);
  }
  {  // google/gemma-3-1b-it
    Preset p = Gemma3("gemma-3-1b", "Gemma 3 1B IT");
    p.n_layer = 26, p.n_embd = 1152, p.n_head = 4, p.n_head_kv = 1, p.n_ff = 6912;
    p.n_vocab = 262144, p.n_ctx_train = 32768, p.n_swa = 512;
    all.push_back(p);
  }
  {  // google/gemma-3-4b-it (text model)
    Preset p = Gemma3("gemma-3-4b", "Gemma 3 4B IT");
    p.n_layer = 34, p.n_embd = 2560, p.n_head = 8, p.n_head_kv = 4, p.n_ff = 10240;
    p.n_vocab = 262208, p.n_ctx_train = 131072, p.n_swa = 1024;
    p.rope_scaling = "linear", p.rope_scaling_factor = 8.0f;
    all.push_back(p);
  }
  {  // microsoft/Phi-3.5-mini-instruct
    Preset p;
    p.base = "phi-3.5-mini", p.display_name = "Phi 3.5 Mini Instruct", p.arch = "phi3";
    p.type = kTypeQ4_K_M, p.vocab = "phi-3";  // its Phi-3 template is kept
    p.n_layer = 32, p.n_embd = 3072, p.n_head = 32, p.n_head_kv = 32, p.head_dim = 96;
    p.n_ff = 8192, p.n_vocab = 32064, p.n_ctx_train = 131072, p.rms_eps = 1e-5f;
    p.rope_freq_base = 10000.0f, p.rope_scaling = "longrope", p.rope_orig_ctx = 4096;
    p.rope_scaling_factor = 32.0f;  // 131072 / 4096, for the attention factor
    p.n_swa = 262144;               // recorded by the converter; llama.cpp ignores it for phi3
    p.fused_qkv = true, p.gated_ffn = false;
    all.push_back(p);
  }
  {  // mistralai/Mistral-7B-Instruct-v0.3
    Preset p;
    p.base = "mistral-7b", p.display_name = "Mistral 7B Instruct v0.3", p.arch = "llama";
    p.type = kTypeQ4_K_M, p.vocab = "llama-spm", p.chat_template = kMistralTemplate;
    p.n_layer = 32, p.n_embd = 4096, p.n_head = 32, p.n_head_kv = 8, p.head_dim = 128;
    p.n_ff = 14336, p.n_vocab = 32768, p.n_ctx_train = 32768, p.rms_eps = 1e-5f;
    p.rope_freq_base = 1000000.0f;
    all.push_back(p);
  }
  {  // Not a real model: a llama-architecture toy, small enough for unit tests to run.
    Preset p = Llama("tiny", "snug tiny test model");
    p.type = kTypeQ8_0;
    p.n_layer = 4, p.n_embd = 128, p.n_head = 4, p.n_head_kv = 2, p.head_dim = 32;
    p.n_ff = 384, p.n_ctx_train = 4096, p.tied_embeddings = true;
    p.rope_scaling.clear(), p.rope_orig_ctx = 0;
    p.rope_low_freq_factor = 0.0f, p.rope_high_freq_factor = 0.0f;
    all.push_back(p);
  }

  for (Preset& p : all) {
    if (p.head_dim == 0) p.head_dim = p.n_embd / p.n_head;
    std::string suffix = p.type;
    std::transform(suffix.begin(), suffix.end(), suffix.begin(), ::tolower);
    p.name = p.base + "-" + suffix;
  }
  return all;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return out;
}

}  // namespace

const std::vector<Preset>& AllPresets() {
  static const std::vector<Preset> presets = MakePresets();
  return presets;
}

Result<std::string> ParseType(std::string_view type) {
  const std::string lower = Lower(type);
  for (const char* known : {kTypeQ4_K_M, kTypeQ8_0, kTypeF16}) {
    if (lower == Lower(known)) return std::string(known);
  }
  return Status::InvalidArgument(
      fmt::format("unknown model type '{}': mkmodel writes Q4_K_M, Q8_0 or F16", type));
}

Result<Preset> WithType(const Preset& preset, std::string_view type) {
  SNUG_ASSIGN_OR_RETURN(std::string canonical, ParseType(type));
  Preset p = preset;
  p.type = canonical;
  p.name = p.base + "-" + Lower(canonical);
  return p;
}

Result<Preset> FindPreset(std::string_view name) {
  const std::string wanted = Lower(name);
  for (const Preset& p : AllPresets()) {
    if (wanted == p.base) return p;
    if (wanted.size() > p.base.size() + 1 && wanted.compare(0, p.base.size(), p.base) == 0 &&
        wanted[p.base.size()] == '-') {
      auto typed = WithType(p, std::string_view(wanted).substr(p.base.size() + 1));
      if (typed.ok()) return typed;
    }
  }
  std::string names;
  for (const Preset& p : AllPresets()) {
    if (!names.empty()) names += ", ";
    names += p.base;
  }
  return Status::NotFound(fmt::format(
      "unknown preset '{}'; presets are {} (optionally with a -q4_k_m, -q8_0 or -f16 suffix)", name,
      names));
}

}  // namespace snug::synth
