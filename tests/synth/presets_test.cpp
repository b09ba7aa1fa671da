#include "synth/presets.h"

#include <gtest/gtest.h>

#include <set>

namespace snug::synth {
namespace {

TEST(PresetsTest, IssueListIsComplete) {
  std::set<std::string> bases;
  for (const Preset& p : AllPresets())
    bases.insert(p.base);
  for (const char* want :
       {"llama-3.2-1b", "llama-3.2-3b", "llama-3.1-8b", "qwen2.5-0.5b", "qwen2.5-7b", "qwen3-4b",
        "gemma-3-1b", "gemma-3-4b", "phi-3.5-mini", "mistral-7b", "qwen3-30b-a3b", "tiny"}) {
    EXPECT_TRUE(bases.count(want)) << want;
  }
}

TEST(PresetsTest, FindsWithAndWithoutQuantSuffix) {
  auto plain = FindPreset("llama-3.2-3b");
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(plain->type, "Q4_K_M");
  EXPECT_EQ(plain->name, "llama-3.2-3b-q4_k_m");

  auto q8 = FindPreset("qwen2.5-0.5b-q8_0");
  ASSERT_TRUE(q8.ok()) << q8.status().ToString();
  EXPECT_EQ(q8->base, "qwen2.5-0.5b");
  EXPECT_EQ(q8->type, "Q8_0");
  EXPECT_EQ(q8->name, "qwen2.5-0.5b-q8_0");

  auto upper = FindPreset("Llama-3.2-3B-Q4_K_M");
  ASSERT_TRUE(upper.ok());
  EXPECT_EQ(upper->name, "llama-3.2-3b-q4_k_m");

  auto tiny = FindPreset("tiny");
  ASSERT_TRUE(tiny.ok());
  EXPECT_EQ(tiny->type, "Q8_0");
  EXPECT_EQ(FindPreset("tiny-f16")->type, "F16");
}

TEST(PresetsTest, UnknownNameListsValidOnes) {
  auto missing = FindPreset("llama-9b");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("llama-3.2-3b"), std::string::npos);
  EXPECT_NE(missing.status().message().find("qwen3-30b-a3b"), std::string::npos);
  // A real base with a bad quant suffix is not silently accepted.
  EXPECT_FALSE(FindPreset("llama-3.2-3b-q3_k_s").ok());
}

TEST(PresetsTest, ParsesTypes) {
  EXPECT_EQ(ParseType("q4_k_m").value(), "Q4_K_M");
  EXPECT_EQ(ParseType("F16").value(), "F16");
  auto bad = ParseType("Q5_K_M");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
}

TEST(PresetsTest, HyperparametersMatchPublishedConfigs) {
  auto gemma = FindPreset("gemma-3-4b").value();
  EXPECT_EQ(gemma.arch, "gemma3");
  EXPECT_EQ(gemma.n_swa, 1024u);
  EXPECT_EQ(gemma.swa_pattern, 6u);
  EXPECT_EQ(gemma.head_dim, 256u);
  EXPECT_EQ(FindPreset("gemma-3-1b")->n_swa, 512u);
  auto moe = FindPreset("qwen3-30b-a3b").value();
  EXPECT_EQ(moe.arch, "qwen3moe");
  EXPECT_EQ(moe.n_expert, 128u);
  EXPECT_EQ(moe.n_expert_used, 8u);
  EXPECT_EQ(moe.n_ff_exp, 768u);
  auto mistral = FindPreset("mistral-7b").value();
  EXPECT_EQ(mistral.arch, "llama");
  EXPECT_EQ(FindPreset("phi-3.5-mini")->arch, "phi3");
  auto l3 = FindPreset("llama-3.2-3b").value();
  EXPECT_EQ(l3.n_layer, 28u);
  EXPECT_EQ(l3.n_head, 24u);
  EXPECT_EQ(l3.n_head_kv, 8u);
  EXPECT_TRUE(l3.tied_embeddings);
}

}  // namespace
}  // namespace snug::synth
