#include "synth/describe.h"

#include <ggml.h>
#include <gguf.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <map>

#include "synth/writer.h"
#include "test_util.h"

namespace snug::synth {
namespace {

using testing::ScratchDir;
using testing::VocabDir;

gguf::File Describe(const std::string& name) {
  auto preset = FindPreset(name);
  EXPECT_TRUE(preset.ok()) << preset.status().ToString();
  auto file = DescribePreset(*preset, VocabDir());
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  return file.ok() ? *file : gguf::File{};
}

const gguf::TensorInfo* Find(const gguf::File& f, const std::string& name) {
  for (const auto& t : f.tensors) {
    if (t.name == name) return &t;
  }
  return nullptr;
}

uint64_t UInt(const gguf::File& f, const std::string& key) {
  auto it = f.kv.find(key);
  if (it == f.kv.end()) return 0;
  if (auto* i = std::get_if<int64_t>(&it->second.data)) return static_cast<uint64_t>(*i);
  if (auto* u = std::get_if<uint64_t>(&it->second.data)) return *u;
  return 0;
}

// File sizes of the real Q4_K_M files (Hugging Face, bartowski / Qwen releases, decimal bytes).
TEST(DescribeTest, SizesAreWithinFivePercentOfRealFiles) {
  const std::map<std::string, double> real = {
      {"llama-3.2-1b-q4_k_m", 0.81e9},
      {"llama-3.2-3b-q4_k_m", 2.02e9},
      {"llama-3.1-8b-q4_k_m", 4.92e9},
      {"qwen2.5-7b-q4_k_m", 4.68e9},
  };
  for (const auto& [name, bytes] : real) {
    const gguf::File f = Describe(name);
    const double ratio = static_cast<double>(f.file_bytes) / bytes;
    EXPECT_NEAR(ratio, 1.0, 0.05) << name << ": " << f.file_bytes << " bytes vs real " << bytes;
  }
}

TEST(DescribeTest, QuantMixFollowsLlamaQuantize) {
  const gguf::File f = Describe("llama-3.2-3b-q4_k_m");
  EXPECT_EQ(UInt(f, "general.file_type"), 15u);  // LLAMA_FTYPE_MOSTLY_Q4_K_M
  // Tied embeddings: no output.weight; token_embd takes the output's Q6_K.
  EXPECT_EQ(Find(f, "output.weight"), nullptr);
  ASSERT_NE(Find(f, "token_embd.weight"), nullptr);
  EXPECT_EQ(Find(f, "token_embd.weight")->type, GGML_TYPE_Q6_K);
  // attn_v and ffn_down: Q6_K in the first/last eighth and every third layer, else Q4_K.
  EXPECT_EQ(Find(f, "blk.0.attn_v.weight")->type, GGML_TYPE_Q6_K);
  EXPECT_EQ(Find(f, "blk.3.attn_v.weight")->type, GGML_TYPE_Q4_K);
  EXPECT_EQ(Find(f, "blk.5.ffn_down.weight")->type, GGML_TYPE_Q6_K);
  EXPECT_EQ(Find(f, "blk.4.ffn_down.weight")->type, GGML_TYPE_Q4_K);
  EXPECT_EQ(Find(f, "blk.4.attn_q.weight")->type, GGML_TYPE_Q4_K);
  EXPECT_EQ(Find(f, "blk.4.ffn_norm.weight")->type, GGML_TYPE_F32);
  EXPECT_EQ(Find(f, "rope_freqs.weight")->type, GGML_TYPE_F32);

  const gguf::File untied = Describe("llama-3.1-8b");
  EXPECT_EQ(Find(untied, "output.weight")->type, GGML_TYPE_Q6_K);
  EXPECT_EQ(Find(untied, "token_embd.weight")->type, GGML_TYPE_Q4_K);

  // Qwen2.5-0.5B's 896-wide rows do not divide into 256-blocks: llama-quantize falls back.
  const gguf::File qwen = Describe("qwen2.5-0.5b");
  EXPECT_EQ(Find(qwen, "token_embd.weight")->type, GGML_TYPE_Q8_0);
  EXPECT_EQ(Find(qwen, "blk.3.attn_q.weight")->type, GGML_TYPE_Q5_0);
  EXPECT_EQ(Find(qwen, "blk.3.ffn_down.weight")->type, GGML_TYPE_Q4_K);  // 4864 columns

  const gguf::File q8 = Describe("llama-3.2-1b-q8_0");
  EXPECT_EQ(UInt(q8, "general.file_type"), 7u);
  for (const auto& t : q8.tensors) {
    if (t.ne.size() >= 2) {
      EXPECT_EQ(t.type, GGML_TYPE_Q8_0) << t.name;
    }
  }
  const gguf::File f16 = Describe("tiny-f16");
  EXPECT_EQ(UInt(f16, "general.file_type"), 1u);
  EXPECT_EQ(Find(f16, "blk.0.attn_q.weight")->type, GGML_TYPE_F16);
}

TEST(DescribeTest, ArchitectureKeysAndShapes) {
  const gguf::File gemma = Describe("gemma-3-4b");
  EXPECT_EQ(std::get<std::string>(gemma.kv.at("general.architecture").data), "gemma3");
  EXPECT_EQ(UInt(gemma, "gemma3.attention.sliding_window"), 1024u);
  EXPECT_EQ(UInt(gemma, "gemma3.attention.sliding_window_pattern"), 6u);
  EXPECT_EQ(UInt(gemma, "gemma3.attention.key_length"), 256u);
  EXPECT_EQ(UInt(gemma, "gemma3.context_length"), 131072u);
  ASSERT_NE(Find(gemma, "blk.0.post_ffw_norm.weight"), nullptr);
  EXPECT_EQ(Find(gemma, "blk.0.attn_q.weight")->ne, (std::vector<int64_t>{2560, 2048}));
  // 262208 embedding rows: the tokenizer is padded to match.
  EXPECT_EQ(gemma.kv.at("tokenizer.ggml.tokens").array_length, 262208u);

  const gguf::File moe = Describe("qwen3-30b-a3b");
  EXPECT_EQ(UInt(moe, "qwen3moe.expert_count"), 128u);
  EXPECT_EQ(UInt(moe, "qwen3moe.expert_used_count"), 8u);
  EXPECT_EQ(UInt(moe, "qwen3moe.expert_feed_forward_length"), 768u);
  EXPECT_EQ(Find(moe, "blk.0.ffn_down_exps.weight")->ne, (std::vector<int64_t>{768, 2048, 128}));
  EXPECT_EQ(Find(moe, "blk.0.ffn_gate_inp.weight")->type, GGML_TYPE_F32);

  const gguf::File phi = Describe("phi-3.5-mini");
  EXPECT_EQ(Find(phi, "blk.0.attn_qkv.weight")->ne, (std::vector<int64_t>{3072, 9216}));
  EXPECT_EQ(Find(phi, "blk.0.ffn_up.weight")->ne, (std::vector<int64_t>{3072, 16384}));
  ASSERT_NE(Find(phi, "rope_factors_long.weight"), nullptr);

  const gguf::File qwen7 = Describe("qwen2.5-7b");
  EXPECT_EQ(qwen7.kv.at("tokenizer.ggml.tokens").array_length, 152064u);
  EXPECT_EQ(qwen7.kv.at("tokenizer.ggml.token_type").array_length, 152064u);
  ASSERT_NE(Find(qwen7, "blk.0.attn_q.bias"), nullptr);
}

// The description is exactly what WriteModel writes: same keys, tensors, offsets and size.
TEST(DescribeTest, MatchesTheWrittenFile) {
  ScratchDir dir;
  for (const char* name : {"tiny", "qwen2.5-0.5b", "gemma-3-1b"}) {
    const gguf::File want = Describe(name);
    const std::string path = dir.File(std::string(name) + ".gguf");
    WriteOptions options;
    options.vocab_dir = VocabDir();
    ASSERT_TRUE(WriteModel(*FindPreset(name), path, options).ok());
    EXPECT_EQ(std::filesystem::file_size(path), want.file_bytes) << name;

    gguf_init_params params{true, nullptr};
    gguf_context* g = gguf_init_from_file(path.c_str(), params);
    ASSERT_NE(g, nullptr) << name;
    EXPECT_EQ(gguf_get_data_offset(g), want.data_offset) << name;
    EXPECT_EQ(static_cast<size_t>(gguf_get_n_kv(g)), want.kv.size()) << name;
    ASSERT_EQ(static_cast<size_t>(gguf_get_n_tensors(g)), want.tensors.size()) << name;
    for (size_t i = 0; i < want.tensors.size(); ++i) {
      EXPECT_EQ(gguf_get_tensor_name(g, i), want.tensors[i].name);
      EXPECT_EQ(static_cast<uint32_t>(gguf_get_tensor_type(g, i)), want.tensors[i].type);
      EXPECT_EQ(gguf_get_tensor_offset(g, i), want.tensors[i].offset);
      EXPECT_EQ(gguf_get_tensor_size(g, i), want.tensors[i].nbytes);
    }
    gguf_free(g);
  }
}

}  // namespace
}  // namespace snug::synth
