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

#include "run_support.h"

namespace snug::testing {
namespace {

constexpr uint64_t kLimit = 6ull << 30;

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

// A child memory cgroup of this process's own cgroup with a 6 GiB limit (v1 or v2); removed in
// the destructor. `error` says why it could not be made.
class MemoryCgroup {
 public:
  MemoryCgroup() {
    std::istringstream lines(Slurp("/proc/self/cgroup"));
    std::string line, v1_path, v2_path;
    while (std::getline(lines, line)) {
      const auto first = line.find(':'), second = line.find(':', first + 1);
      if (first == std::string::npos || second == std::string::npos) continue;
      const std::string controllers = line.substr(first + 1, second - first - 1);
      const std::string path = line.substr(second + 1);
      if (controllers == "memory" || controllers.find("memory,") != std::string::npos ||
          controllers.find(",memory") != std::string::npos) {
        v1_path = path;
      }
      if (line.rfind("0::", 0) == 0) v2_path = path;
    }
    const std::string name = "snug-seed-" + std::to_string(getpid());
    if (!v1_path.empty() && std::filesystem::exists("/sys/fs/cgroup/memory" + v1_path)) {
      dir_ = "/sys/fs/cgroup/memory" + v1_path + "/" + name;
      v2_ = false;
    } else if (!v2_path.empty() &&
               std::filesystem::exists("/sys/fs/cgroup" + v2_path + "/cgroup.controllers")) {
      dir_ = "/sys/fs/cgroup" + v2_path + "/" + name;
      v2_ = true;
    } else {
      error_ = "no memory cgroup controller found in /proc/self/cgroup";
      return;
    }
    std::error_code ec;
    if (!std::filesystem::create_directory(dir_, ec)) {
      error_ = "cannot create " + dir_ + ": " + ec.message();
      dir_.clear();
      return;
    }
    const std::string limit = std::to_string(kLimit);
    bool ok =
        v2_ ? WriteFile(dir_ + "/memory.max", limit) && WriteFile(dir_ + "/memory.swap.max", "0")
            : WriteFile(dir_ + "/memory.limit_in_bytes", limit);
    if (!v2_ && std::filesystem::exists(dir_ + "/memory.memsw.limit_in_bytes")) {
      WriteFile(dir_ + "/memory.memsw.limit_in_bytes", limit);  // no escape into swap
    }
    if (!ok) error_ = "cannot set the memory limit in " + dir_;
  }
  ~MemoryCgroup() {
    if (!dir_.empty()) rmdir(dir_.c_str());
  }
  const std::string& error() const { return error_; }
  bool ok() const { return error_.empty(); }
  const std::string& dir() const { return dir_; }
  // Kernel OOM kills recorded in this cgroup.
  int OomKills() const {
    std::istringstream in(Slurp(dir_ + (v2_ ? "/memory.events" : "/memory.oom_control")));
    std::string key;
    uint64_t value = 0;
    while (in >> key >> value) {
      if (key == "oom_kill") return static_cast<int>(value);
    }
    return 0;
  }
  uint64_t PeakBytes() const {
    const std::string text = Slurp(dir_ + (v2_ ? "/memory.peak" : "/memory.max_usage_in_bytes"));
    return text.empty() ? 0 : std::stoull(text);
  }

  // Runs argv inside the cgroup (the shell joins it, then execs).
  ProcessResult Run(const std::vector<std::string>& argv) const {
    std::string command = "echo $$ > " + dir_ + "/cgroup.procs && exec";
    for (const auto& a : argv)
      command += " '" + a + "'";
    return RunProcess({"/bin/sh", "-c", command});
  }

 private:
  std::string dir_;
  std::string error_;
  bool v2_ = false;
};

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
  MemoryCgroup cgroup_;
};
TempDir* SeedScenarioTest::dir_ = nullptr;
std::string* SeedScenarioTest::model_ = nullptr;
std::string* SeedScenarioTest::error_ = nullptr;

TEST_F(SeedScenarioTest, DefaultSettingsAnswerInsideSixGiB) {
  ProcessResult r =
      cgroup_.Run({SNUG_BINARY, "run", *model_, "Why is the sky blue?", "-n", "4", "--json"});
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
  ProcessResult r = cgroup_.Run({SNUG_BINARY, "run", *model_, "hi", "--ctx", "131072"});
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
  ProcessResult plan =
      cgroup_.Run({SNUG_BINARY, "plan", *model_, "--ctx", "131072", "--kv-type", "auto", "--json"});
  ASSERT_EQ(plan.signal, 0);
  ProcessResult r = cgroup_.Run({SNUG_BINARY, "run", *model_, "hi", "--ctx", "131072", "--kv-type",
                                 "auto", "-n", "1", "--json"});
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
