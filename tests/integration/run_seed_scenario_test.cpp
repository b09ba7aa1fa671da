// The seed scenario (SPEC.md): a 3B model (llama-3.2-3b-q4_k_m preset, zero weights) inside a real
// 6 GiB memory cgroup. Default settings start, answer and report the context they chose without
// being OOM-killed; --ctx 131072 exits 3 within a second with the numbers; --kv-type auto picks a
// quantized KV cache only if it fits.
#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "../support/memory_cgroup.h"
#include "run_support.h"

namespace snug::testing {
namespace {

constexpr uint64_t kLimit = 6ull << 30;

// Runs argv inside the cgroup (the shell joins it, then execs).
ProcessResult RunIn(const MemoryCgroup& cgroup, const std::vector<std::string>& argv) {
  std::string command = "echo $$ > " + cgroup.procs_file() + " && exec";
  for (const auto& a : argv)
    command += " '" + a + "'";
  return RunProcess({"/bin/sh", "-c", command});
}

class SeedScenarioTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    model_ = new std::string(dir_->path() + "/llama-3.2-3b-q4_k_m.gguf");
    error_ = new std::string(MakeModel("llama-3.2-3b-q4_k_m", *model_, "zero"));
  }
  static void TearDownTestSuite() {
    delete model_;
    delete error_;
    delete dir_;
  }
  void SetUp() override {
    ASSERT_TRUE(error_->empty()) << *error_;
    if (!cgroup_.ok()) GTEST_SKIP() << "memory cgroup unavailable: " << cgroup_.error();
  }

  static TempDir* dir_;
  static std::string* model_;
  static std::string* error_;
  MemoryCgroup cgroup_{kLimit};
};
TempDir* SeedScenarioTest::dir_ = nullptr;
std::string* SeedScenarioTest::model_ = nullptr;
std::string* SeedScenarioTest::error_ = nullptr;

TEST_F(SeedScenarioTest, DefaultSettingsAnswerInsideSixGiB) {
  ProcessResult r =
      RunIn(cgroup_, {SNUG_BINARY, "run", *model_, "Why is the sky blue?", "-n", "4", "--json"});
  ASSERT_EQ(r.signal, 0) << "killed by signal " << r.signal << "\n" << r.err;
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(cgroup_.OomKills(), 0);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_ctx"], 8192);  // min(n_ctx_train 131072, 8192) fits in 6 GiB
  EXPECT_EQ(j["kv_type"], "f16");
  EXPECT_GE(j["tokens"].get<int>(), 1);
  EXPECT_NE(r.err.find("ctx 8192"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("cgroup"), std::string::npos) << r.err;  // the budget's source
  EXPECT_LT(cgroup_.PeakBytes(), kLimit);
  std::printf("seed scenario: %s\npeak %.2f GiB, %.1f s\n", r.err.c_str(),
              cgroup_.PeakBytes() / double(1 << 30), r.seconds);
}

TEST_F(SeedScenarioTest, HugeExplicitContextExitsThreeFastWithNumbers) {
  ProcessResult r = RunIn(cgroup_, {SNUG_BINARY, "run", *model_, "hi", "--ctx", "131072"});
  EXPECT_EQ(r.signal, 0);
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_LT(r.seconds, 1.0);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("131072"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("GiB"), std::string::npos) << r.err;  // needed / available
  EXPECT_NE(r.err.find("largest"), std::string::npos) << r.err;
  EXPECT_EQ(cgroup_.OomKills(), 0);
}

TEST_F(SeedScenarioTest, HugeContextWithKvAutoQuantizesOnlyIfThatFits) {
  // Ask the planner first, in the same cgroup, then check that run does exactly that.
  ProcessResult plan = RunIn(
      cgroup_, {SNUG_BINARY, "plan", *model_, "--ctx", "131072", "--kv-type", "auto", "--json"});
  ASSERT_EQ(plan.signal, 0);
  ProcessResult r = RunIn(cgroup_, {SNUG_BINARY, "run", *model_, "hi", "--ctx", "131072",
                                    "--kv-type", "auto", "-n", "1", "--json"});
  ASSERT_EQ(r.signal, 0) << r.err;
  EXPECT_EQ(cgroup_.OomKills(), 0);
  if (plan.exit_code == 0) {
    auto p = nlohmann::json::parse(plan.out);
    ASSERT_EQ(r.exit_code, 0) << r.err;
    auto j = nlohmann::json::parse(r.out);
    EXPECT_EQ(j["n_ctx"], 131072);
    EXPECT_NE(j["kv_type"], "f16");  // f16 at 131072 needs ~14 GiB of KV alone
    EXPECT_EQ(j["kv_type"], p["fit"]["kv_type"]);
  } else {
    EXPECT_EQ(plan.exit_code, 3) << plan.err;
    EXPECT_EQ(r.exit_code, 3) << r.err;
    EXPECT_LT(r.seconds, 1.0);
    EXPECT_NE(r.err.find("q4_0"), std::string::npos) << r.err;  // it tried quantized KV too
  }
}

}  // namespace
}  // namespace snug::testing
