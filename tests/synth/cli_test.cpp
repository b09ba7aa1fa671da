// `snug mkmodel` end to end through the real binary.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <string>

#include "test_util.h"

namespace snug::synth {
namespace {

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr
};

CommandResult Snug(const std::string& args) {
  CommandResult run;
  const std::string cmd =
      "SNUG_VOCAB_DIR='" + testing::VocabDir() + "' '" SNUG_BINARY "' " + args + " 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  if (pipe == nullptr) return run;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), pipe)) > 0)
    run.output.append(buf.data(), n);
  const int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class MkmodelCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(SNUG_BINARY)) GTEST_SKIP() << SNUG_BINARY << " is not built";
  }
  testing::ScratchDir dir_;
};

TEST_F(MkmodelCliTest, WritesAndDescribesTheModel) {
  const std::string out = dir_.File("tiny.gguf");
  const CommandResult run = Snug("mkmodel tiny-q8_0 '" + out + "' --weights random --seed 9");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_TRUE(std::filesystem::exists(out));
  EXPECT_NE(run.output.find("tiny-q8_0"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("n_ctx_train 4096"), std::string::npos) << run.output;
}

TEST_F(MkmodelCliTest, ListsPresets) {
  const CommandResult run = Snug("mkmodel --list");
  EXPECT_EQ(run.exit_code, 0) << run.output;
  EXPECT_NE(run.output.find("qwen3-30b-a3b-q4_k_m"), std::string::npos) << run.output;
  EXPECT_NE(run.output.find("gemma3"), std::string::npos) << run.output;
}

TEST_F(MkmodelCliTest, UsageAndIoErrors) {
  CommandResult run = Snug("mkmodel no-such-model '" + dir_.File("x.gguf") + "'");
  EXPECT_EQ(run.exit_code, 2) << run.output;
  EXPECT_NE(run.output.find("llama-3.2-3b"), std::string::npos) << run.output;

  run = Snug("mkmodel tiny '" + dir_.File("x.gguf") + "' --type Q2_K");
  EXPECT_EQ(run.exit_code, 2) << run.output;

  run = Snug("mkmodel tiny '" + dir_.File("x.gguf") + "' --weights ones");
  EXPECT_EQ(run.exit_code, 2) << run.output;

  run = Snug("mkmodel tiny");
  EXPECT_EQ(run.exit_code, 2) << run.output;

  run = Snug("mkmodel tiny '" + dir_.File("no/such/dir/x.gguf") + "'");
  EXPECT_EQ(run.exit_code, 1) << run.output;
  EXPECT_NE(run.output.find("cannot create"), std::string::npos) << run.output;
}

}  // namespace
}  // namespace snug::synth
