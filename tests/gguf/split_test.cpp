#include <gtest/gtest.h>

#include <filesystem>

#include <fmt/format.h>

#include "gguf/reader.h"
#include "gguf/split.h"
#include "gguf_test_util.h"

namespace snug::gguf {
namespace {

using testing::TempDir;

// Writes part `no` (0-based) of `count` the way llama.cpp's gguf-split does: split.* keys in
// every part, the model's metadata in the first.
uint64_t WritePart(const std::string& path, int no, int count, int total_tensors,
                   const std::vector<testing::TensorSpec>& tensors) {
  return testing::WriteGguf(
      path,
      [&](gguf_context* g) {
        if (no == 0) gguf_set_val_str(g, "general.architecture", "llama");
        gguf_set_val_u16(g, "split.no", static_cast<uint16_t>(no));
        gguf_set_val_u16(g, "split.count", static_cast<uint16_t>(count));
        gguf_set_val_i32(g, "split.tensors.count", total_tensors);
      },
      tensors);
}

struct ThreeParts {
  TempDir dir;
  std::string prefix = dir / "model";
  uint64_t total = 0;
  ThreeParts() {
    total += WritePart(prefix + "-00001-of-00003.gguf", 0, 3, 4,
                       {{"token_embd.weight", GGML_TYPE_F16, {64, 10}}});
    total += WritePart(prefix + "-00002-of-00003.gguf", 1, 3, 4,
                       {{"blk.0.w", GGML_TYPE_F32, {32}}, {"blk.1.w", GGML_TYPE_F32, {32}}});
    total += WritePart(prefix + "-00003-of-00003.gguf", 2, 3, 4,
                       {{"output.weight", GGML_TYPE_Q8_0, {64, 10}}});
  }
  std::string Part(int n) const { return fmt::format("{}-{:05d}-of-00003.gguf", prefix, n); }
};

TEST(GgufSplit, ParsesNames) {
  auto n = ParseSplitName("/m/Qwen3-235B-Q4_K_M-00002-of-00005.gguf");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->prefix, "/m/Qwen3-235B-Q4_K_M");
  EXPECT_EQ(n->number, 2);
  EXPECT_EQ(n->count, 5);
  EXPECT_EQ(SplitPartName(*n, 5), "/m/Qwen3-235B-Q4_K_M-00005-of-00005.gguf");
  auto url = ParseSplitName("https://h/r/resolve/main/m-00001-of-00002.gguf?download=true");
  ASSERT_TRUE(url);
  EXPECT_EQ(SplitPartName(*url, 2), "https://h/r/resolve/main/m-00002-of-00002.gguf?download=true");
  EXPECT_FALSE(ParseSplitName("/m/model.gguf"));
  EXPECT_FALSE(ParseSplitName("/m/model-00003-of-00002.gguf"));
  EXPECT_FALSE(ParseSplitName("/m/model-00000-of-00002.gguf"));
}

TEST(GgufSplit, ReadsAllPartsFromAnyPart) {
  ThreeParts m;
  for (int start : {1, 2, 3}) {
    auto file = ReadFile(m.Part(start));
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    EXPECT_EQ(file->n_splits, 3);
    EXPECT_EQ(file->path, m.Part(1));
    EXPECT_EQ(file->Arch(), "llama");
    EXPECT_EQ(file->file_bytes, m.total);
    ASSERT_EQ(file->tensors.size(), 4u);
    EXPECT_EQ(file->tensors[0].name, "token_embd.weight");
    EXPECT_EQ(file->tensors[0].split, 0);
    EXPECT_EQ(file->tensors[1].split, 1);
    EXPECT_EQ(file->tensors[2].name, "blk.1.w");
    EXPECT_EQ(file->tensors[2].split, 1);
    EXPECT_EQ(file->tensors[2].offset, 128u);  // offsets stay relative to their own part
    EXPECT_EQ(file->tensors[3].split, 2);
    EXPECT_EQ(file->TensorBytes(), 64u * 10 * 2 + 128 + 128 + 68 * 10);
  }
}

TEST(GgufSplit, MissingPartIsNamed) {
  ThreeParts m;
  std::filesystem::remove(m.Part(3));
  auto file = ReadFile(m.Part(1));
  EXPECT_EQ(file.status().code(), Code::kNotFound);
  EXPECT_NE(file.status().message().find("part 3 of 3"), std::string::npos)
      << file.status().message();
  EXPECT_NE(file.status().message().find("model-00003-of-00003.gguf does not exist"),
            std::string::npos);
}

TEST(GgufSplit, PartFromAnotherModelIsRejected) {
  ThreeParts m;
  WritePart(m.Part(2), 2, 3, 4, {{"x", GGML_TYPE_F32, {4}}});  // claims to be the third part
  auto file = ReadFile(m.Part(1));
  EXPECT_EQ(file.status().code(), Code::kCorrupt);
  EXPECT_NE(file.status().message().find("should be part 2 of 3"), std::string::npos)
      << file.status().message();
}

TEST(GgufSplit, TensorCountMismatch) {
  ThreeParts m;
  WritePart(m.Part(3), 2, 3, 4, {});
  auto file = ReadFile(m.Part(1));
  EXPECT_EQ(file.status().code(), Code::kCorrupt);
  EXPECT_NE(file.status().message().find("has 3 tensors in its 3 parts but split.tensors.count "
                                         "says 4"),
            std::string::npos)
      << file.status().message();
}

TEST(GgufSplit, DuplicateTensorAcrossParts) {
  ThreeParts m;
  WritePart(m.Part(3), 2, 3, 4, {{"blk.0.w", GGML_TYPE_F32, {32}}});
  auto file = ReadFile(m.Part(1));
  EXPECT_EQ(file.status().code(), Code::kCorrupt);
  EXPECT_NE(file.status().message().find("'blk.0.w' in two parts"), std::string::npos);
}

TEST(GgufSplit, SplitHeaderWithoutSplitName) {
  TempDir dir;
  WritePart(dir / "renamed.gguf", 0, 2, 1, {{"a", GGML_TYPE_F32, {4}}});
  auto file = ReadFile(dir / "renamed.gguf");
  EXPECT_EQ(file.status().code(), Code::kInvalidArgument);
  EXPECT_NE(file.status().message().find("NAME-00001-of-00002.gguf"), std::string::npos)
      << file.status().message();
}

TEST(GgufSplit, SinglePartSplitIsAPlainFile) {
  TempDir dir;
  const std::string path = dir / "m-00001-of-00001.gguf";
  WritePart(path, 0, 1, 1, {{"a", GGML_TYPE_F32, {4}}});
  auto file = ReadFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->n_splits, 1);
}

}  // namespace
}  // namespace snug::gguf
