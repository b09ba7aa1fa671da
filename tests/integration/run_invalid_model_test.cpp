// A malformed GGUF made llama.cpp abort (SIGABRT) inside `snug run` and `snug plan`: now the
// header is validated first, and the process exits 1 with the key named. Each file is the tiny
// preset written by snug's own generator with one key broken.
#include <gguf.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "run_support.h"
#include "synth/presets.h"
#include "synth/writer.h"

namespace snug::testing {
namespace {

std::string WriteBroken(const TempDir& dir, const std::string& name,
                        const std::function<void(gguf_context*)>& edit) {
  auto preset = synth::FindPreset("tiny");
  EXPECT_TRUE(preset.ok()) << preset.status().ToString();
  synth::WriteOptions options;
  options.vocab_dir = std::string(SNUG_LLAMA_SRC) + "/models";
  options.edit_metadata = edit;
  const std::string path = dir.path() + "/" + name + ".gguf";
  const Status written = synth::WriteModel(*preset, path, options);
  EXPECT_TRUE(written.ok()) << written.ToString();
  return path;
}

void ExpectRefused(const std::vector<std::string>& argv, const std::string& fragment) {
  const ProcessResult r = RunProcess(argv);
  EXPECT_EQ(r.signal, 0) << "killed by signal " << r.signal << ": " << r.err;
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_NE(r.err.find(fragment), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find("GGML_ASSERT"), std::string::npos) << r.err;
}

TEST(RunInvalidModelTest, RepeatedTokenExitsOneNamingTheKey) {
  TempDir dir;
  const std::string path = WriteBroken(dir, "dup", [](gguf_context* g) {
    const int64_t id = gguf_find_key(g, "tokenizer.ggml.tokens");
    std::vector<std::string> tokens;
    for (size_t i = 0; i < gguf_get_arr_n(g, id); ++i)
      tokens.emplace_back(gguf_get_arr_str(g, id, i));
    tokens[1000] = tokens[500];
    std::vector<const char*> ptrs;
    for (const std::string& t : tokens)
      ptrs.push_back(t.c_str());
    gguf_set_arr_str(g, "tokenizer.ggml.tokens", ptrs.data(), ptrs.size());
  });
  ExpectRefused({SNUG_BINARY, "run", path, "hi", "-n", "2"},
                "tokenizer.ggml.tokens has the token '");
  ExpectRefused({SNUG_BINARY, "plan", path}, "twice (ids 500 and 1000)");
}

TEST(RunInvalidModelTest, BlockCountBeyondTheTensorsExitsOneNamingTheKey) {
  TempDir dir;
  const std::string path = WriteBroken(
      dir, "blocks", [](gguf_context* g) { gguf_set_val_u32(g, "llama.block_count", 4096); });
  const std::string message =
      "llama.block_count is 4096 but the file has tensors for 4 blocks (blk.0 .. blk.3)";
  ExpectRefused({SNUG_BINARY, "run", path, "hi", "-n", "2"}, message);
  ExpectRefused({SNUG_BINARY, "plan", path}, message);
}

TEST(RunInvalidModelTest, NanEpsilonExitsOneNamingTheKey) {
  TempDir dir;
  const std::string path = WriteBroken(dir, "eps", [](gguf_context* g) {
    gguf_set_val_f32(g, "llama.attention.layer_norm_rms_epsilon", std::nanf(""));
  });
  ExpectRefused({SNUG_BINARY, "run", path, "hi", "-n", "2"},
                "llama.attention.layer_norm_rms_epsilon is nan");
}

}  // namespace
}  // namespace snug::testing
