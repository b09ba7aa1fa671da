// Hostile and damaged inputs: every one must give a clear error (or, for harmless damage, a parse),
// never a crash, a hang or a huge allocation.
#include <gtest/gtest.h>

#include "gguf/reader.h"
#include "gguf_test_util.h"

namespace snug::gguf {
namespace {

using testing::Bytes;
using testing::TempDir;

// A small valid file whose last tensor ends exactly at the end of the file, so that every proper
// prefix is a truncated file.
std::vector<uint8_t> SmallFile(const TempDir& dir) {
  const std::string path = dir / "small.gguf";
  testing::WriteGguf(
      path,
      [](gguf_context* g) {
        gguf_set_val_str(g, "general.architecture", "llama");
        gguf_set_val_u32(g, "llama.context_length", 4096);
        const int32_t heads[] = {8, 4};
        gguf_set_arr_data(g, "llama.attention.head_count", GGUF_TYPE_INT32, heads, 2);
        const char* toks[] = {"<s>", "a", "bc"};
        gguf_set_arr_str(g, "tokenizer.ggml.tokens", toks, 3);
        gguf_set_val_f32(g, "llama.rope.freq_base", 10000.0f);
      },
      {{"token_embd.weight", GGML_TYPE_Q8_0, {64, 2}}, {"output_norm.weight", GGML_TYPE_F32, {8}}});
  return testing::ReadAll(path);
}

Status Parse(const std::vector<uint8_t>& bytes, const std::string& name = "x.gguf") {
  return ParseHeader(bytes.data(), bytes.size(), bytes.size(), name).status;
}

void ExpectError(const std::vector<uint8_t>& bytes, Code code, const std::string& fragment) {
  const Status s = Parse(bytes);
  EXPECT_EQ(s.code(), code) << s.ToString();
  EXPECT_NE(s.message().find(fragment), std::string::npos) << s.message();
  EXPECT_EQ(s.message().rfind("x.gguf", 0), 0u) << "names the file first: " << s.message();
}

TEST(GgufCorrupt, EveryTruncationIsAnError) {
  TempDir dir;
  const std::vector<uint8_t> bytes = SmallFile(dir);
  ASSERT_TRUE(Parse(bytes).ok()) << Parse(bytes).ToString();
  for (size_t k = 0; k < bytes.size(); ++k) {
    const std::vector<uint8_t> prefix(bytes.begin(), bytes.begin() + k);
    const Status s = Parse(prefix);
    ASSERT_FALSE(s.ok()) << "prefix of " << k << " bytes parsed";
    ASSERT_EQ(s.code(), Code::kCorrupt) << k << ": " << s.ToString();
    ASSERT_TRUE(s.message().find("truncated") != std::string::npos ||
                s.message().find("not a GGUF file") != std::string::npos)
        << k << ": " << s.message();
  }
  // Through the file reader too, for a sample of cut points.
  for (size_t k : {size_t{0}, size_t{3}, size_t{20}, bytes.size() / 2, bytes.size() - 1}) {
    const std::string path = dir / ("cut" + std::to_string(k) + ".gguf");
    testing::WriteAll(path, std::vector<uint8_t>(bytes.begin(), bytes.begin() + k));
    auto file = ReadFile(path);
    EXPECT_EQ(file.status().code(), Code::kCorrupt) << k;
    EXPECT_NE(file.status().message().find(path), std::string::npos);
  }
}

TEST(GgufCorrupt, TruncatedTensorDataSaysWhichTensor) {
  TempDir dir;
  std::vector<uint8_t> bytes = SmallFile(dir);
  bytes.resize(bytes.size() - 1);
  ExpectError(bytes, Code::kCorrupt, "truncated: tensor 'output_norm.weight' (tensor info 2 of 2)");
}

TEST(GgufCorrupt, FlippedBytesNeverCrash) {
  TempDir dir;
  const std::vector<uint8_t> bytes = SmallFile(dir);
  auto header = ParseHeader(bytes.data(), bytes.size(), bytes.size(), "x");
  ASSERT_TRUE(header.status.ok());
  int errors = 0;
  for (size_t i = 0; i < header.file.data_offset; ++i) {
    for (uint8_t v :
         {uint8_t{0x00}, uint8_t{0xff}, uint8_t(bytes[i] ^ 0x80), uint8_t(bytes[i] + 1)}) {
      std::vector<uint8_t> damaged = bytes;
      damaged[i] = v;
      const Status s = Parse(damaged);
      if (!s.ok()) {
        ++errors;
        EXPECT_FALSE(s.message().empty());
      }
    }
  }
  EXPECT_GT(errors, 100);  // most damage to lengths and counts is detected
}

TEST(GgufCorrupt, NotGguf) {
  ExpectError({'\x7f', 'E', 'L', 'F', 2, 1, 1, 0}, Code::kCorrupt,
              "not a GGUF file: it starts with bytes 7f 45 4c 46");
  ExpectError({'G', 'G'}, Code::kCorrupt, "not a GGUF file: it has only 2 bytes");
}

TEST(GgufCorrupt, Versions) {
  ExpectError(Bytes().Header(1, 0, 0).data(), Code::kUnimplemented, "GGUF version 1");
  ExpectError(Bytes().Header(7, 0, 0).data(), Code::kUnimplemented, "GGUF version 7");
  ExpectError(
      Bytes().Raw("GGUF").Put<uint32_t>(0x03000000).Put<uint64_t>(0).Put<uint64_t>(0).data(),
      Code::kUnimplemented, "big-endian");
  EXPECT_TRUE(Parse(Bytes().Header(2, 0, 0).data()).ok());
  EXPECT_TRUE(Parse(Bytes().Header(3, 0, 0).data()).ok());
}

TEST(GgufCorrupt, HugeCounts) {
  ExpectError(Bytes().Header(3, 0, ~0ull).data(), Code::kCorrupt,
              "claims 18446744073709551615 metadata keys, more than snug's limit");
  ExpectError(Bytes().Header(3, 1ull << 40, 0).Zeros(100).data(), Code::kCorrupt,
              "claims 1099511627776 tensors");
  ExpectError(Bytes().Header(3, 1000, 10).Zeros(100).data(), Code::kCorrupt,
              "truncated or corrupt: its header claims 10 metadata keys and 1000 tensors");
  // A count that fits the bytes but not snug's bookkeeping limit.
  Bytes many;
  many.Header(3, 0, 100000).Zeros(100000 * 13);  // snug's limit is 65536 keys
  ExpectError(many.data(), Code::kCorrupt, "limit");
}

TEST(GgufCorrupt, HugeLengths) {
  ExpectError(Bytes().Header(3, 0, 1).Put<uint64_t>(1ull << 62).Raw("k").Zeros(16).data(),
              Code::kCorrupt, "truncated: metadata key 1 of 1");
  ExpectError(Bytes().Header(3, 0, 1).Str("k").Put<uint32_t>(8).Put<uint64_t>(~0ull).data(),
              Code::kCorrupt, "truncated");
  // Arrays whose element count cannot fit.
  ExpectError(Bytes()
                  .Header(3, 0, 1)
                  .Str("a")
                  .Put<uint32_t>(9)
                  .Put<uint32_t>(6)
                  .Put<uint64_t>(~0ull)
                  .data(),
              Code::kCorrupt, "truncated: metadata key 1 of 1 ('a')");
  ExpectError(Bytes()
                  .Header(3, 0, 1)
                  .Str("a")
                  .Put<uint32_t>(9)
                  .Put<uint32_t>(8)
                  .Put<uint64_t>(1ull << 61)
                  .data(),
              Code::kCorrupt, "truncated");
  // A key name longer than any sane key but present in the file.
  Bytes longkey;
  longkey.Header(3, 0, 1).Str(std::string(100000, 'k')).Put<uint32_t>(4).Put<uint32_t>(1);
  ExpectError(longkey.data(), Code::kCorrupt, "has a name of 100000 bytes");
}

TEST(GgufCorrupt, BadValues) {
  ExpectError(Bytes().Header(3, 0, 1).Str("k").Put<uint32_t>(13).Put<uint32_t>(0).data(),
              Code::kCorrupt, "unknown value type 13");
  ExpectError(
      Bytes().Header(3, 0, 1).Str("k").Put<uint32_t>(9).Put<uint32_t>(9).Put<uint64_t>(0).data(),
      Code::kCorrupt, "array of arrays");
  ExpectError(
      Bytes().Header(3, 0, 1).Str("k").Put<uint32_t>(9).Put<uint32_t>(99).Put<uint64_t>(0).data(),
      Code::kCorrupt, "unknown element type 99");
  ExpectError(Bytes().Header(3, 0, 2).KvU32("k", 1).KvU32("k", 2).data(), Code::kCorrupt,
              "metadata key 2 of 2 ('k') appears twice");
  ExpectError(Bytes().Header(3, 0, 1).KvU32("general.alignment", 48).data(), Code::kCorrupt,
              "is 48, which is not a power of two");
  ExpectError(Bytes().Header(3, 0, 1).KvU32("general.alignment", 0).data(), Code::kCorrupt,
              "not a power of two");
  ExpectError(
      Bytes().Header(3, 0, 1).Str("general.alignment").Put<uint32_t>(10).Put<uint64_t>(32).data(),
      Code::kCorrupt, "must be a uint32 but is a uint64");
}

TEST(GgufCorrupt, BadTensorInfos) {
  auto one = [](const std::vector<int64_t>& ne, uint32_t type, uint64_t offset) {
    Bytes b;
    b.Header(3, 1, 0).Tensor("t", ne, type, offset).PadTo(32).Zeros(4096);
    return b.data();
  };
  EXPECT_TRUE(Parse(one({16, 4}, GGML_TYPE_F32, 0)).ok());
  ExpectError(one({1, 1, 1, 1, 1}, GGML_TYPE_F32, 0), Code::kCorrupt,
              "tensor info 1 of 1 ('t') has 5 dimensions");
  ExpectError(one({16, -4}, GGML_TYPE_F32, 0), Code::kCorrupt, "negative dimension -4");
  ExpectError(one({1ll << 40, 1ll << 40}, GGML_TYPE_F32, 0), Code::kCorrupt, "more elements");
  ExpectError(one({1ll << 59, 8}, GGML_TYPE_F32, 0), Code::kCorrupt, "overflows");
  ExpectError(one({16}, 99, 0), Code::kCorrupt, "ggml type 99");
  ExpectError(one({16}, 4, 0), Code::kCorrupt, "ggml type 4, which was removed");  // old Q4_2
  ExpectError(one({33}, GGML_TYPE_Q4_0, 0), Code::kCorrupt, "not a multiple of the q4_0 block");
  ExpectError(one({16}, GGML_TYPE_F32, 7), Code::kCorrupt, "offset 7, not a multiple");
  ExpectError(one({16}, GGML_TYPE_F32, 1ull << 62), Code::kCorrupt, "truncated: tensor 't'");
  ExpectError(one({16}, GGML_TYPE_F32, ~0ull - 31), Code::kCorrupt, "2^64");
  ExpectError(one({1ll << 30, 1ll << 20}, GGML_TYPE_F32, 0), Code::kCorrupt,
              "truncated: tensor 't'");
  // Zero extents are empty tensors, as ggml accepts them.
  EXPECT_TRUE(Parse(one({0, 4}, GGML_TYPE_F32, 0)).ok());

  Bytes dup;
  dup.Header(3, 2, 0).Tensor("t", {4}, GGML_TYPE_F32, 0).Tensor("t", {4}, GGML_TYPE_F32, 32);
  dup.PadTo(32).Zeros(64);
  ExpectError(dup.data(), Code::kCorrupt, "tensor info 2 of 2 ('t') has the same name");
  Bytes longname;
  longname.Header(3, 1, 0).Tensor(std::string(64, 'n'), {4}, GGML_TYPE_F32, 0).PadTo(32).Zeros(64);
  ExpectError(longname.data(), Code::kCorrupt, "has a name of 64 bytes");
}

TEST(GgufCorrupt, UnknownSizeStillBoundsCounts) {
  // A remote server that gave no length: counts are bounded by snug's limits, not the file size.
  const auto bytes = Bytes().Header(3, 0, ~0ull).data();
  auto p = ParseHeader(bytes.data(), bytes.size(), kUnknownFileSize, "u");
  EXPECT_EQ(p.status.code(), Code::kCorrupt) << p.status.ToString();
  const auto ok = Bytes().Header(3, 1, 0).Tensor("t", {4}, GGML_TYPE_F32, 0).data();
  p = ParseHeader(ok.data(), ok.size(), kUnknownFileSize, "u");
  ASSERT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.file.file_bytes, p.file.data_offset + 16);
}

}  // namespace
}  // namespace snug::gguf
