#include "synth/writer.h"

#include <ggml.h>
#include <gguf.h>
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "test_util.h"

namespace snug::synth {
namespace {

using testing::ScratchDir;
using testing::VocabDir;

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

WriteOptions Random(uint64_t seed) {
  WriteOptions o;
  o.weights = WriteOptions::Weights::kRandom;
  o.seed = seed;
  o.vocab_dir = VocabDir();
  return o;
}

size_t EntriesIn(const std::filesystem::path& dir) {
  return static_cast<size_t>(std::distance(std::filesystem::directory_iterator(dir), {}));
}

TEST(WriterTest, ZeroWeightsAreSparse) {
  ScratchDir dir;
  const std::string path = dir.File("l3b.gguf");
  WriteOptions options;
  options.vocab_dir = VocabDir();
  ASSERT_TRUE(WriteModel(*FindPreset("llama-3.2-3b"), path, options).ok());
  struct stat st {};
  ASSERT_EQ(stat(path.c_str(), &st), 0);
  EXPECT_GT(st.st_size, 1'900'000'000);
  // Only metadata and the small F32 tensors take blocks on disk.
  EXPECT_LT(static_cast<uint64_t>(st.st_blocks) * 512, 64u << 20) << "allocated bytes";
  EXPECT_EQ(EntriesIn(dir.path()), 1u) << "no temporary file is left behind";
}

TEST(WriterTest, SameSeedSameBytesOtherSeedOtherBytes) {
  ScratchDir dir;
  const auto tiny = *FindPreset("tiny");
  ASSERT_TRUE(WriteModel(tiny, dir.File("a.gguf"), Random(42)).ok());
  ASSERT_TRUE(WriteModel(tiny, dir.File("b.gguf"), Random(42)).ok());
  ASSERT_TRUE(WriteModel(tiny, dir.File("c.gguf"), Random(7)).ok());
  const std::string a = ReadAll(dir.File("a.gguf"));
  EXPECT_GT(a.size(), 10u << 20);
  EXPECT_TRUE(a == ReadAll(dir.File("b.gguf"))) << "same seed must give identical files";
  const std::string c = ReadAll(dir.File("c.gguf"));
  EXPECT_EQ(a.size(), c.size());
  EXPECT_FALSE(a == c) << "another seed must give other weights";
}

TEST(WriterTest, RandomWeightsAreScaledFiniteNoise) {
  ScratchDir dir;
  const std::string path = dir.File("tiny.gguf");
  ASSERT_TRUE(WriteModel(*FindPreset("tiny"), path, Random(1)).ok());
  gguf_init_params params{true, nullptr};
  gguf_context* g = gguf_init_from_file(path.c_str(), params);
  ASSERT_NE(g, nullptr);
  const int64_t id = gguf_find_tensor(g, "blk.1.ffn_up.weight");
  ASSERT_GE(id, 0);
  const ggml_type type = gguf_get_tensor_type(g, id);
  const size_t offset = gguf_get_data_offset(g) + gguf_get_tensor_offset(g, id);
  const size_t size = gguf_get_tensor_size(g, id);
  const int64_t n = size / ggml_type_size(type) * ggml_blck_size(type);
  gguf_free(g);

  std::string bytes = ReadAll(path).substr(offset, size);
  std::vector<float> values(n);
  ggml_get_type_traits(type)->to_float(bytes.data(), values.data(), n);
  double sum = 0, sum2 = 0;
  for (float v : values) {
    ASSERT_TRUE(std::isfinite(v));
    sum += v;
    sum2 += double{v} * v;
  }
  const double mean = sum / n;
  const double stddev = std::sqrt(sum2 / n - mean * mean);
  // Fan-in scaled: 1/sqrt(128 columns).
  EXPECT_NEAR(mean, 0.0, 0.005);
  EXPECT_NEAR(stddev, 1.0 / std::sqrt(128.0), 0.005);
}

TEST(WriterTest, TypeOverride) {
  ScratchDir dir;
  WriteOptions options = Random(3);
  options.type = "f16";
  const std::string path = dir.File("tiny-f16.gguf");
  ASSERT_TRUE(WriteModel(*FindPreset("tiny"), path, options).ok());
  gguf_init_params params{true, nullptr};
  gguf_context* g = gguf_init_from_file(path.c_str(), params);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(gguf_get_tensor_type(g, gguf_find_tensor(g, "blk.0.attn_q.weight")), GGML_TYPE_F16);
  EXPECT_EQ(gguf_get_val_u32(g, gguf_find_key(g, "general.file_type")), 1u);
  gguf_free(g);

  options.type = "Q3_K";
  const Status bad = WriteModel(*FindPreset("tiny"), dir.File("bad.gguf"), options);
  EXPECT_EQ(bad.code(), Code::kInvalidArgument);
  EXPECT_FALSE(std::filesystem::exists(dir.File("bad.gguf")));
}

TEST(WriterTest, ErrorsLeaveNothingBehind) {
  ScratchDir dir;
  WriteOptions options;
  options.vocab_dir = VocabDir();
  const Status no_dir = WriteModel(*FindPreset("tiny"), dir.File("missing/x.gguf"), options);
  EXPECT_EQ(no_dir.code(), Code::kIoError);
  EXPECT_NE(no_dir.message().find("missing/x.gguf"), std::string::npos) << no_dir.message();

  options.vocab_dir = dir.File("no-vocab-here");
  const Status no_vocab = WriteModel(*FindPreset("tiny"), dir.File("x.gguf"), options);
  EXPECT_EQ(no_vocab.code(), Code::kNotFound);
  EXPECT_NE(no_vocab.message().find("SNUG_VOCAB_DIR"), std::string::npos);
  EXPECT_EQ(EntriesIn(dir.path()), 0u);
}

TEST(WriterTest, ReplacesAnExistingFileWhole) {
  ScratchDir dir;
  const std::string path = dir.File("m.gguf");
  { std::ofstream(path) << "old contents"; }
  ASSERT_TRUE(WriteModel(*FindPreset("tiny"), path, Random(5)).ok());
  EXPECT_EQ(ReadAll(path).substr(0, 4), "GGUF");
  EXPECT_EQ(EntriesIn(dir.path()), 1u);
}

}  // namespace
}  // namespace snug::synth
