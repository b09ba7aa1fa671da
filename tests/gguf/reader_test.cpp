#include "gguf/reader.h"

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <set>

#include "gguf_test_util.h"

namespace snug::gguf {
namespace {

using testing::TempDir;
using testing::TensorSpec;
using testing::WriteGguf;

void SetAllTypes(gguf_context* g) {
  gguf_set_val_str(g, "general.architecture", "llama");
  gguf_set_val_u8(g, "t.u8", 200);
  gguf_set_val_i8(g, "t.i8", -100);
  gguf_set_val_u16(g, "t.u16", 60000);
  gguf_set_val_i16(g, "t.i16", -30000);
  gguf_set_val_u32(g, "llama.block_count", 4000000000u);
  gguf_set_val_i32(g, "t.i32", -2000000000);
  gguf_set_val_f32(g, "t.f32", 0.5f);
  gguf_set_val_bool(g, "t.bool", true);
  gguf_set_val_u64(g, "t.u64", 1ull << 40);
  gguf_set_val_u64(g, "t.u64_huge", ~0ull);
  gguf_set_val_i64(g, "t.i64", -(1ll << 40));
  gguf_set_val_f64(g, "t.f64", 1e300);
  const int32_t heads[] = {32, 32, 8, 8};
  gguf_set_arr_data(g, "llama.attention.head_count", GGUF_TYPE_INT32, heads, 4);
  const bool swa[] = {true, false, true, true, false};
  gguf_set_arr_data(g, "t.swa", GGUF_TYPE_BOOL, swa, 5);
  const float f[] = {1.5f, -2.0f};
  gguf_set_arr_data(g, "t.floats", GGUF_TYPE_FLOAT32, f, 2);
  const uint8_t u8s[] = {1, 255};
  gguf_set_arr_data(g, "t.u8s", GGUF_TYPE_UINT8, u8s, 2);
  const char* strs[] = {"a", "", "hello"};
  gguf_set_arr_str(g, "t.strs", strs, 3);
  // Longer than the reader keeps: only the length survives.
  std::vector<int32_t> many(kMaxKeptNumericArray + 1, 7);
  gguf_set_arr_data(g, "t.many_ints", GGUF_TYPE_INT32, many.data(), many.size());
  std::vector<std::string> tokens(kMaxKeptStringArray + 10, "tok");
  std::vector<const char*> token_ptrs;
  for (const auto& t : tokens)
    token_ptrs.push_back(t.c_str());
  gguf_set_arr_str(g, "tokenizer.ggml.tokens", token_ptrs.data(), token_ptrs.size());
}

TEST(GgufReader, ReadsEveryValueType) {
  TempDir dir;
  const std::string path = dir / "types.gguf";
  const uint64_t size = WriteGguf(path, SetAllTypes, {{"w", GGML_TYPE_F32, {8}}});
  ASSERT_GT(size, 0u);
  auto file = ReadFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->version, 3u);
  EXPECT_EQ(file->path, path);
  EXPECT_EQ(file->file_bytes, size);
  EXPECT_EQ(file->Arch(), "llama");
  EXPECT_EQ(file->ArchKey("block_count"), "llama.block_count");
  EXPECT_EQ(file->GetInt("t.u8"), 200);
  EXPECT_EQ(file->GetInt("t.i8"), -100);
  EXPECT_EQ(file->GetInt("t.u16"), 60000);
  EXPECT_EQ(file->GetInt("t.i16"), -30000);
  EXPECT_EQ(file->GetInt(file->ArchKey("block_count")), 4000000000ll);
  EXPECT_EQ(file->GetInt("t.i32"), -2000000000);
  EXPECT_EQ(file->GetInt("t.u64"), 1ll << 40);
  EXPECT_EQ(file->GetInt("t.u64_huge"), std::nullopt);  // does not fit an int64
  EXPECT_EQ(file->GetInt("t.i64"), -(1ll << 40));
  EXPECT_EQ(file->GetFloat("t.f32"), 0.5);
  EXPECT_EQ(file->GetFloat("t.f64"), 1e300);
  EXPECT_EQ(file->GetFloat("t.u16"), 60000.0);  // integers are accepted as floats
  EXPECT_EQ(file->GetBool("t.bool"), true);
  EXPECT_EQ(file->GetBool("t.u8"), std::nullopt);
  EXPECT_EQ(file->GetString("t.u8"), std::nullopt);
  EXPECT_EQ(file->GetInt("general.architecture"), std::nullopt);
  EXPECT_EQ(file->GetInt("absent"), std::nullopt);
  EXPECT_EQ(file->GetIntArray(file->ArchKey("attention.head_count")),
            (std::vector<int64_t>{32, 32, 8, 8}));
  EXPECT_EQ(file->GetIntArray("t.swa"), (std::vector<int64_t>{1, 0, 1, 1, 0}));
  EXPECT_EQ(file->GetIntArray("t.u8s"), (std::vector<int64_t>{1, 255}));
  EXPECT_EQ(file->GetIntArray("t.floats"), std::nullopt);
  EXPECT_EQ(file->GetInt("llama.attention.head_count"), std::nullopt);

  const Value& floats = file->kv.at("t.floats");
  EXPECT_EQ(floats.type, ValueType::kArray);
  EXPECT_EQ(floats.array_type, ValueType::kFloat32);
  EXPECT_EQ(std::get<std::vector<double>>(floats.data), (std::vector<double>{1.5, -2.0}));
  const Value& strs = file->kv.at("t.strs");
  EXPECT_EQ(strs.array_type, ValueType::kString);
  EXPECT_EQ(std::get<std::vector<std::string>>(strs.data),
            (std::vector<std::string>{"a", "", "hello"}));

  const Value& many = file->kv.at("t.many_ints");
  EXPECT_EQ(many.array_length, kMaxKeptNumericArray + 1);
  EXPECT_EQ(file->GetIntArray("t.many_ints"), std::nullopt);
  const Value& tokens = file->kv.at("tokenizer.ggml.tokens");
  EXPECT_EQ(tokens.array_type, ValueType::kString);
  EXPECT_EQ(tokens.array_length, kMaxKeptStringArray + 10);
  EXPECT_TRUE(std::get<std::vector<std::string>>(tokens.data).empty());
}

// Compares our parse with ggml's own reader on the same file.
void ExpectMatchesGgml(const std::string& path, const File& file) {
  gguf_init_params params{/*no_alloc=*/true, /*ctx=*/nullptr};
  gguf_context* g = gguf_init_from_file(path.c_str(), params);
  ASSERT_NE(g, nullptr) << path;
  EXPECT_EQ(file.version, gguf_get_version(g));
  EXPECT_EQ(static_cast<int64_t>(file.kv.size()), gguf_get_n_kv(g));
  for (int64_t i = 0; i < gguf_get_n_kv(g); ++i) {
    const std::string key = gguf_get_key(g, i);
    ASSERT_TRUE(file.kv.count(key)) << key;
    const Value& v = file.kv.at(key);
    EXPECT_EQ(static_cast<int>(v.type), static_cast<int>(gguf_get_kv_type(g, i))) << key;
    if (v.type == ValueType::kArray) {
      EXPECT_EQ(v.array_length, gguf_get_arr_n(g, i)) << key;
      EXPECT_EQ(static_cast<int>(v.array_type), static_cast<int>(gguf_get_arr_type(g, i))) << key;
    }
    if (v.type == ValueType::kString) {
      EXPECT_EQ(file.GetString(key), gguf_get_val_str(g, i));
    }
  }
  EXPECT_EQ(file.alignment, gguf_get_alignment(g));
  EXPECT_EQ(file.data_offset, gguf_get_data_offset(g));
  ASSERT_EQ(static_cast<int64_t>(file.tensors.size()), gguf_get_n_tensors(g));
  for (int64_t i = 0; i < gguf_get_n_tensors(g); ++i) {
    const TensorInfo& t = file.tensors[i];
    EXPECT_EQ(t.name, gguf_get_tensor_name(g, i));
    EXPECT_EQ(t.type, static_cast<uint32_t>(gguf_get_tensor_type(g, i)));
    EXPECT_EQ(t.offset, gguf_get_tensor_offset(g, i));
    EXPECT_EQ(t.nbytes, gguf_get_tensor_size(g, i)) << t.name;
    EXPECT_EQ(t.split, 0);
  }
  gguf_free(g);
}

TEST(GgufReader, TensorInfosMatchGgml) {
  TempDir dir;
  const std::string path = dir / "tensors.gguf";
  const std::vector<TensorSpec> tensors = {
      {"token_embd.weight", GGML_TYPE_Q4_K, {512, 100}},
      {"blk.0.attn_q.weight", GGML_TYPE_Q4_0, {256, 256}},
      {"blk.0.ffn_up.weight", GGML_TYPE_Q8_0, {64, 3, 2}},
      {"blk.0.attn_norm.weight", GGML_TYPE_F32, {7}},
      {"blk.0.conv", GGML_TYPE_F16, {3, 5, 7, 2}},
      {"output.weight", GGML_TYPE_BF16, {33, 9}},
  };
  const uint64_t size = WriteGguf(
      path, [](gguf_context* g) { gguf_set_val_str(g, "general.architecture", "qwen3"); }, tensors);
  auto file = ReadFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  ExpectMatchesGgml(path, *file);
  EXPECT_EQ(file->file_bytes, size);
  EXPECT_EQ(file->tensors[2].ne, (std::vector<int64_t>{64, 3, 2}));
  EXPECT_EQ(file->tensors[3].nbytes, 28u);
  EXPECT_EQ(file->tensors[1].nbytes, 256u / 32 * 18 * 256);
  uint64_t sum = 0;
  for (const auto& t : file->tensors)
    sum += t.nbytes;
  EXPECT_EQ(file->TensorBytes(), sum);
  EXPECT_EQ(file->data_offset % 32, 0u);
}

TEST(GgufReader, HonoursCustomAlignment) {
  // ggml's writer lays tensors out with its default alignment whatever general.alignment says, so
  // this file is built by hand (and ggml's reader confirms it is valid).
  TempDir dir;
  const std::string path = dir / "aligned.gguf";
  testing::Bytes b;
  b.Header(3, 3, 1).KvU32("general.alignment", 256);
  b.Tensor("a", {3}, GGML_TYPE_F32, 0).Tensor("b", {5}, GGML_TYPE_F32, 256);
  b.Tensor("c", {300}, GGML_TYPE_F16, 512).PadTo(256).Zeros(1200);
  testing::WriteAll(path, b.data());
  auto file = ReadFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->alignment, 256u);
  EXPECT_EQ(file->data_offset, 256u);
  EXPECT_EQ(file->tensors[2].offset, 512u);
  EXPECT_EQ(file->tensors[2].nbytes, 600u);
  ExpectMatchesGgml(path, *file);
}

std::string VocabPath(const std::string& name) {
  return std::string(SNUG_LLAMA_SRC) + "/models/ggml-vocab-" + name + ".gguf";
}

TEST(GgufReader, ReadsEveryLlamaCppVocabFile) {
  const std::string dir = std::string(SNUG_LLAMA_SRC) + "/models";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "no llama.cpp models dir at " << dir;
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    const std::string path = entry.path().string();
    if (entry.path().extension() != ".gguf") continue;
    auto file = ReadFile(path);
    ASSERT_TRUE(file.ok()) << file.status().ToString();
    ExpectMatchesGgml(path, *file);
    ++n;
  }
  EXPECT_GE(n, 10);
}

TEST(GgufReader, LlamaBpeTokenCountAndSpeed) {
  const std::string path = VocabPath("llama-bpe");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing " << path;
  auto file = ReadFile(path);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->Arch(), "llama");
  EXPECT_EQ(file->GetString("tokenizer.ggml.model"), "gpt2");
  EXPECT_EQ(file->kv.at("tokenizer.ggml.tokens").array_length, 128256u);
  EXPECT_EQ(file->kv.at("tokenizer.ggml.merges").array_length, 280147u);

  constexpr int kRuns = 20;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < kRuns; ++i)
    ASSERT_TRUE(ReadFile(path).ok());
  const double ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count() /
      kRuns;
  std::printf("parsed %s (%.1f MiB header) in %.2f ms\n", path.c_str(),
              std::filesystem::file_size(path) / 1048576.0, ms);
  // The planner budget is 50 ms for all of `snug plan`; the header parse must be a small part.
  EXPECT_LT(ms, 40.0);
}

TEST(GgufReader, BufferPrefixAsksForMoreBytes) {
  TempDir dir;
  const std::string path = dir / "prefix.gguf";
  WriteGguf(path, SetAllTypes, {{"w", GGML_TYPE_F32, {1024, 1024}}});
  const std::vector<uint8_t> bytes = testing::ReadAll(path);
  const uint64_t file_size = bytes.size();
  auto full = ReadBuffer(bytes.data(), bytes.size(), file_size);
  ASSERT_TRUE(full.ok()) << full.status().ToString();
  const uint64_t header_end = full->data_offset;

  for (uint64_t k : {0ul, 3ul, 4ul, 23ul, 24ul, 100ul, header_end / 2, header_end - 40}) {
    HeaderParse p = ParseHeader(bytes.data(), k, file_size, "prefix.gguf");
    EXPECT_EQ(p.status.code(), Code::kUnavailable) << k << ": " << p.status.ToString();
    EXPECT_GT(p.needed_bytes, k);
    EXPECT_LE(p.needed_bytes, header_end);
    // Feeding what was asked for makes progress (the window can grow to exactly that).
    HeaderParse next = ParseHeader(bytes.data(), p.needed_bytes, file_size, "prefix.gguf");
    EXPECT_TRUE(next.status.ok() || next.needed_bytes > p.needed_bytes);
  }
  // The tensor data itself is never needed.
  HeaderParse p = ParseHeader(bytes.data(), header_end, file_size, "prefix.gguf");
  EXPECT_TRUE(p.status.ok()) << p.status.ToString();
  EXPECT_EQ(p.file.file_bytes, file_size);
}

TEST(GgufReader, MissingAndNonRegularFiles) {
  TempDir dir;
  auto missing = ReadFile(dir / "nope.gguf");
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("nope.gguf does not exist"), std::string::npos);
  auto directory = ReadFile(dir.path());
  EXPECT_EQ(directory.status().code(), Code::kInvalidArgument);
  testing::WriteAll(dir / "empty.gguf", {});
  auto empty = ReadFile(dir / "empty.gguf");
  EXPECT_EQ(empty.status().code(), Code::kCorrupt);
  EXPECT_NE(empty.status().message().find("empty"), std::string::npos);
}

}  // namespace
}  // namespace snug::gguf
