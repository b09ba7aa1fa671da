// gguf::ValidateModel: every preset and every llama.cpp tokenizer passes; each malformed class
// that made llama.cpp abort (or refuse) is refused with a message naming the key and its value.
// Broken files are real GGUF files written by snug's own generator (synth::WriteModel) with one
// key changed.
#include "gguf/validate.h"

#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "gguf_test_util.h"
#include "synth/describe.h"
#include "synth/presets.h"
#include "synth/writer.h"

namespace snug::gguf {
namespace {

using testing::TempDir;

std::string VocabDir() {
  return std::string(SNUG_LLAMA_SRC) + "/models";
}

// Writes `preset` (zero weights: sparse, fast) with `edit` applied to its metadata, reads it back.
File WritePreset(const TempDir& dir, const std::string& preset,
                 const std::function<void(gguf_context*)>& edit = {}) {
  auto p = synth::FindPreset(preset);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  synth::WriteOptions options;
  options.vocab_dir = VocabDir();
  options.edit_metadata = edit;
  const std::string path = dir / (preset + ".gguf");
  const Status written = synth::WriteModel(*p, path, options);
  EXPECT_TRUE(written.ok()) << written.ToString();
  auto file = ReadFile(path);
  EXPECT_TRUE(file.ok()) << file.status().ToString();
  return file.ok() ? *file : File{};
}

// Replaces the token array with `tokens(old)`.
std::function<void(gguf_context*)> EditTokens(
    const std::function<void(std::vector<std::string>*)>& change) {
  return [change](gguf_context* g) {
    const int64_t id = gguf_find_key(g, "tokenizer.ggml.tokens");
    std::vector<std::string> tokens;
    for (size_t i = 0; i < gguf_get_arr_n(g, id); ++i)
      tokens.emplace_back(gguf_get_arr_str(g, id, i));
    change(&tokens);
    std::vector<const char*> ptrs;
    for (const std::string& t : tokens)
      ptrs.push_back(t.c_str());
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", ptrs.data(), ptrs.size());
  };
}

// The broken file is refused, as Corrupt, naming the file and every fragment.
void ExpectRefused(const File& file, const std::vector<std::string>& fragments) {
  const Status s = ValidateModel(file);
  ASSERT_FALSE(s.ok()) << "accepted " << file.path;
  EXPECT_EQ(s.code(), Code::kCorrupt) << s.ToString();
  EXPECT_NE(s.message().find(file.path + " is not a valid model: "), std::string::npos)
      << s.message();
  for (const std::string& f : fragments)
    EXPECT_NE(s.message().find(f), std::string::npos) << "no '" << f << "' in: " << s.message();
}

TEST(GgufValidate, EveryPresetFilePasses) {
  TempDir dir;
  for (const synth::Preset& p : synth::AllPresets()) {
    SCOPED_TRACE(p.name);
    const File file = WritePreset(dir, p.base);
    EXPECT_FALSE(file.duplicate_token.has_value());
    const Status s = ValidateModel(file);
    EXPECT_TRUE(s.ok()) << s.ToString();
    std::filesystem::remove(dir / (p.base + ".gguf"));
  }
}

TEST(GgufValidate, EveryPresetDescriptionPassesInEveryType) {
  for (const synth::Preset& base : synth::AllPresets()) {
    for (const char* type : {synth::kTypeQ4_K_M, synth::kTypeQ8_0, synth::kTypeF16}) {
      auto p = synth::WithType(base, type);
      ASSERT_TRUE(p.ok());
      auto file = synth::DescribePreset(*p, VocabDir());
      ASSERT_TRUE(file.ok()) << file.status().ToString();
      const Status s = ValidateModel(*file);
      EXPECT_TRUE(s.ok()) << p->name << ": " << s.ToString();
    }
  }
}

// llama.cpp's own tokenizer files load in llama.cpp's tokenizer tests, so none may be refused.
TEST(GgufValidate, EveryLlamaCppTokenizerPasses) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(VocabDir())) {
    if (entry.path().extension() != ".gguf") continue;
    auto file = ReadFile(entry.path().string());
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_FALSE(file->duplicate_token.has_value())
        << entry.path() << ": '" << file->duplicate_token->text << "'";
    const Status s = ValidateVocab(*file);
    EXPECT_TRUE(s.ok()) << s.ToString();
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(GgufValidate, RepeatedToken) {
  TempDir dir;
  const File file = WritePreset(
      dir, "tiny", EditTokens([](std::vector<std::string>* t) { (*t)[1000] = (*t)[500]; }));
  ASSERT_TRUE(file.duplicate_token.has_value());
  EXPECT_EQ(file.duplicate_token->first_id, 500u);
  EXPECT_EQ(file.duplicate_token->second_id, 1000u);
  ExpectRefused(file, {"tokenizer.ggml.tokens has the token '", "twice (ids 500 and 1000)"});
}

TEST(GgufValidate, RepeatedTokenIsFoundAsLlamaCppSeesIt) {
  TempDir dir;
  auto scan = [&](std::vector<const char*> tokens) {
    const std::string path = dir / "tokens.gguf";
    testing::WriteGguf(path,
                       [&](gguf_context* g) {
                         gguf_set_arr_str(g, "tokenizer.ggml.tokens", tokens.data(), tokens.size());
                       },
                       {});
    auto file = ReadFile(path);
    EXPECT_TRUE(file.ok()) << file.status().ToString();
    return file->duplicate_token;
  };
  EXPECT_FALSE(scan({"a", "b", "ab", "ba"}).has_value());
  // Empty tokens are renamed "[EMPTY_<id>]" by llama.cpp: two empty ones differ...
  EXPECT_FALSE(scan({"a", "", "b", ""}).has_value());
  // ...but one collides with a literal token of its new name (and only that exact spelling).
  auto d = scan({"a", "", "[EMPTY_1]"});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->text, "[EMPTY_1]");
  EXPECT_EQ(d->first_id, 1u);
  EXPECT_EQ(d->second_id, 2u);
  EXPECT_FALSE(scan({"a", "", "[EMPTY_01]", "[EMPTY_2]", "[EMPTY_9]"}).has_value());
  // The first repeat in file order is reported, with the lowest earlier id.
  d = scan({"x", "y", "z", "y", "x", "y"});
  ASSERT_TRUE(d.has_value());
  EXPECT_EQ(d->text, "y");
  EXPECT_EQ(d->first_id, 1u);
  EXPECT_EQ(d->second_id, 3u);
}

TEST(GgufValidate, BlockCountBeyondTheTensors) {
  TempDir dir;
  const File file = WritePreset(
      dir, "tiny", [](gguf_context* g) { gguf_set_val_u32(g, "llama.block_count", 4096); });
  ExpectRefused(
      file, {"llama.block_count is 4096 but the file has tensors for 4 blocks (blk.0 .. blk.3)"});
}

TEST(GgufValidate, BlockCountShortOfTheTensorsOrZero) {
  TempDir dir;
  ExpectRefused(WritePreset(dir, "tiny",
                            [](gguf_context* g) { gguf_set_val_u32(g, "llama.block_count", 2); }),
                {"llama.block_count is 2 but the file has tensors for 4 blocks"});
  ExpectRefused(WritePreset(dir, "tiny",
                            [](gguf_context* g) { gguf_set_val_u32(g, "llama.block_count", 0); }),
                {"llama.block_count is 0"});
  ExpectRefused(
      WritePreset(dir, "tiny", [](gguf_context* g) { gguf_remove_key(g, "llama.block_count"); }),
      {"llama.block_count is missing"});
}

TEST(GgufValidate, ExpertCounts) {
  TempDir dir;
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.expert_count", 100000); }),
      {"llama.expert_count is 100000", "at most 1024 experts"});
  ExpectRefused(WritePreset(dir, "tiny",
                            [](gguf_context* g) {
                              gguf_set_val_u32(g, "llama.expert_count", 4);
                              gguf_set_val_u32(g, "llama.expert_used_count", 8);
                            }),
                {"llama.expert_used_count is 8 but llama.expert_count is 4"});
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.expert_used_count", 2); }),
      {"llama.expert_used_count is 2 but llama.expert_count is 0"});
  ExpectRefused(WritePreset(dir, "tiny",
                            [](gguf_context* g) { gguf_set_val_u32(g, "llama.expert_count", 8); }),
                {"llama.expert_count is 8 but llama.expert_used_count is 0"});
}

TEST(GgufValidate, MixtureOfExpertsBounds) {
  // Checked on the description (no 17 GB sparse file needed): the same keys, the same checks.
  auto p = synth::FindPreset("qwen3-30b-a3b");
  ASSERT_TRUE(p.ok());
  auto file = synth::DescribePreset(*p, VocabDir());
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ASSERT_TRUE(ValidateModel(*file).ok()) << ValidateModel(*file).ToString();
  File broken = *file;
  std::get<int64_t>(broken.kv.at("qwen3moe.expert_count").data) = 100000;
  ExpectRefused(broken, {"qwen3moe.expert_count is 100000"});
  broken = *file;
  std::get<int64_t>(broken.kv.at("qwen3moe.expert_used_count").data) = 129;
  ExpectRefused(broken, {"qwen3moe.expert_used_count is 129 but qwen3moe.expert_count is 128"});
  broken = *file;
  std::get<int64_t>(broken.kv.at("qwen3moe.expert_feed_forward_length").data) = 512;
  ExpectRefused(broken, {"tensor 'blk.0.ffn_gate_exps.weight' has shape [2048, 768, 128]",
                         "expects [2048, 512, 128]"});
}

TEST(GgufValidate, NormEpsilons) {
  TempDir dir;
  const char* key = "llama.attention.layer_norm_rms_epsilon";
  for (float bad : {std::nanf(""), -1e-5f, std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    ExpectRefused(WritePreset(dir, "tiny", [&](gguf_context* g) { gguf_set_val_f32(g, key, bad); }),
                  {std::string(key) + " is "});
  }
  ExpectRefused(
      WritePreset(dir, "tiny", [&](gguf_context* g) { gguf_set_val_f32(g, key, std::nanf("")); }),
      {std::string(key) + " is nan"});
  ExpectRefused(WritePreset(dir, "tiny", [&](gguf_context* g) { gguf_remove_key(g, key); }),
                {std::string(key) + " is missing"});
  ExpectRefused(WritePreset(dir, "tiny",
                            [&](gguf_context* g) {
                              gguf_set_val_f32(g, "llama.attention.layer_norm_epsilon", -1.0f);
                            }),
                {"llama.attention.layer_norm_epsilon is -1"});
  // 0 is what ggml accepts (eps >= 0).
  EXPECT_TRUE(ValidateModel(WritePreset(dir, "tiny", [&](gguf_context* g) {
                gguf_set_val_f32(g, key, 0);
              })).ok());
}

TEST(GgufValidate, Rope) {
  TempDir dir;
  for (float bad : {0.0f, -10000.0f, std::nanf(""), std::numeric_limits<float>::infinity()}) {
    SCOPED_TRACE(bad);
    ExpectRefused(
        WritePreset(dir, "tiny",
                    [&](gguf_context* g) { gguf_set_val_f32(g, "llama.rope.freq_base", bad); }),
        {"llama.rope.freq_base is "});
  }
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_f32(g, "llama.rope.scaling.factor", -8.0f); }),
      {"llama.rope.scaling.factor is -8"});
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_str(g, "llama.rope.scaling.type", "magic"); }),
      {"llama.rope.scaling.type is 'magic'"});
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.rope.dimension_count", 16); }),
      {"llama.rope.dimension_count is 16 but the key head size is 32"});
  // A scaling factor of 0 means "none" to llama.cpp.
  EXPECT_TRUE(ValidateModel(WritePreset(dir, "tiny", [](gguf_context* g) {
                gguf_set_val_f32(g, "llama.rope.scaling.factor", 0);
              })).ok());
}

TEST(GgufValidate, ContextAndEmbedding) {
  TempDir dir;
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.context_length", 0); }),
      {"llama.context_length is 0"});
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.embedding_length", 0); }),
      {"llama.embedding_length is 0"});
  // Every tensor is 128 wide.
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.embedding_length", 256); }),
      {"tensor 'token_embd.weight' has shape [128, 128256] but llama expects [256, 128256]"});
}

TEST(GgufValidate, Heads) {
  TempDir dir;
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.attention.head_count", 0); }),
      {"llama.attention.head_count is 0"});
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.attention.head_count_kv", 3); }),
      {"llama.attention.head_count_kv is 3 but llama.attention.head_count is 4"});
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.attention.head_count_kv", 8); }),
      {"llama.attention.head_count_kv is 8 but llama.attention.head_count is 4"});
  ExpectRefused(WritePreset(dir, "tiny",
                            [](gguf_context* g) {
                              const int32_t per_layer[] = {2, 2, 2};
                              gguf_set_arr_data(g, "llama.attention.head_count_kv", GGUF_TYPE_INT32,
                                                per_layer, 3);
                            }),
                {"llama.attention.head_count_kv has 3 entries but llama.block_count is 4"});
  // One entry per layer is fine.
  EXPECT_TRUE(ValidateModel(WritePreset(dir, "tiny", [](gguf_context* g) {
                const int32_t per_layer[] = {2, 2, 2, 2};
                gguf_set_arr_data(g, "llama.attention.head_count_kv", GGUF_TYPE_INT32, per_layer,
                                  4);
              })).ok());
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.attention.key_length", 0); }),
      {"llama.attention.key_length is 0"});
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.attention.value_length", 64); }),
      {"llama.attention.value_length is 64 but llama.attention.key_length is 32"});
  // Two KV heads fewer per layer: the K/V projections no longer match.
  ExpectRefused(
      WritePreset(dir, "tiny",
                  [](gguf_context* g) { gguf_set_val_u32(g, "llama.attention.head_count_kv", 1); }),
      {"tensor 'blk.0.attn_k.weight' has shape [128, 64] but llama expects [128, 32]"});
}

TEST(GgufValidate, QueriesMustSplitTheEmbeddingForQwen2) {
  TempDir dir;
  ExpectRefused(WritePreset(dir, "qwen2.5-0.5b",
                            [](gguf_context* g) {
                              gguf_set_val_u32(g, "qwen2.attention.key_length", 80);
                              gguf_set_val_u32(g, "qwen2.attention.value_length", 80);
                              gguf_set_val_u32(g, "qwen2.rope.dimension_count", 80);
                            }),
                {"qwen2.attention.head_count (14) x qwen2.attention.key_length (80) is 1120, not "
                 "qwen2.embedding_length (896)"});
}

TEST(GgufValidate, VocabularyAgainstTheTensors) {
  TempDir dir;
  ExpectRefused(
      WritePreset(dir, "tiny", EditTokens([](std::vector<std::string>* t) { t->pop_back(); })),
      {"tensor 'token_embd.weight' has shape [128, 128256] but llama expects [128, "
       "128255] (rows = tokens in tokenizer.ggml.tokens)"});
  ExpectRefused(
      WritePreset(dir, "tiny",
                  EditTokens([](std::vector<std::string>* t) { t->push_back("extra"); })),
      {"tokenizer.ggml.token_type has 128256 entries but tokenizer.ggml.tokens has 128257"});
  ExpectRefused(WritePreset(dir, "tiny",
                            [](gguf_context* g) { gguf_remove_key(g, "tokenizer.ggml.tokens"); }),
                {"tokenizer.ggml.tokens is missing"});
}

TEST(GgufValidate, SpecialTokens) {
  TempDir dir;
  // An out-of-range id llama.cpp replaces with its default (11 for a gpt2 tokenizer) only warns:
  // files with unused special ids of 4294967295 exist, so this is not refused...
  EXPECT_TRUE(ValidateModel(WritePreset(dir, "tiny", [](gguf_context* g) {
                gguf_set_val_u32(g, "tokenizer.ggml.padding_token_id", 4294967295u);
                gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", 200000);
              })).ok());
  // ...but a BOS that llama.cpp adds to every prompt and cannot resolve aborts it: Gemma's
  // tokenizer has no default and always adds BOS.
  ExpectRefused(WritePreset(dir, "gemma-3-1b",
                            [](gguf_context* g) {
                              gguf_set_val_u32(g, "tokenizer.ggml.bos_token_id", 300000);
                            }),
                {"tokenizer.ggml.bos_token_id is 300000, outside the 262144 tokens"});
}

}  // namespace
}  // namespace snug::gguf
