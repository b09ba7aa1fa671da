// A description must equal what snug's own GGUF reader reads back from the written file, so
// `snug plan preset:NAME` and `snug plan NAME.gguf` see the same model.
#include <gtest/gtest.h>

#include "gguf/reader.h"
#include "synth/describe.h"
#include "synth/writer.h"
#include "test_util.h"

namespace snug::synth {
namespace {

TEST(ReaderCrosscheckTest, DescriptionEqualsReadBack) {
  testing::ScratchDir dir;
  for (const char* name : {"tiny", "gemma-3-4b", "qwen3-30b-a3b", "phi-3.5-mini"}) {
    SCOPED_TRACE(name);
    const Preset preset = *FindPreset(name);
    auto described = DescribePreset(preset, testing::VocabDir());
    ASSERT_TRUE(described.ok()) << described.status().ToString();
    const std::string path = dir.File(std::string(name) + ".gguf");
    WriteOptions options;
    options.vocab_dir = testing::VocabDir();
    ASSERT_TRUE(WriteModel(preset, path, options).ok());
    auto read = gguf::ReadFile(path);
    ASSERT_TRUE(read.ok()) << read.status().ToString();

    EXPECT_EQ(read->data_offset, described->data_offset);
    EXPECT_EQ(read->file_bytes, described->file_bytes);
    EXPECT_EQ(read->alignment, described->alignment);
    ASSERT_EQ(read->kv.size(), described->kv.size());
    for (const auto& [key, want] : described->kv) {
      auto it = read->kv.find(key);
      ASSERT_NE(it, read->kv.end()) << key;
      EXPECT_EQ(it->second.type, want.type) << key;
      EXPECT_EQ(it->second.array_type, want.array_type) << key;
      EXPECT_EQ(it->second.array_length, want.array_length) << key;
      EXPECT_TRUE(it->second.data == want.data) << key;
    }
    ASSERT_EQ(read->tensors.size(), described->tensors.size());
    for (size_t i = 0; i < read->tensors.size(); ++i) {
      const auto& a = read->tensors[i];
      const auto& b = described->tensors[i];
      EXPECT_EQ(a.name, b.name);
      EXPECT_EQ(a.type, b.type) << a.name;
      EXPECT_EQ(a.ne, b.ne) << a.name;
      EXPECT_EQ(a.offset, b.offset) << a.name;
      EXPECT_EQ(a.nbytes, b.nbytes) << a.name;
    }
  }
}

}  // namespace
}  // namespace snug::synth
