// `snug plan` as a user runs it: exit codes 0 / 2 / 3 and the SPEC.md JSON contract, on a preset
// (no file) and on a real sparse model file.
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>

namespace {

struct Ran {
  int exit_code = -1;
  std::string out;
};

Ran Snug(const std::string& args) {
  const std::string cmd =
      std::string("SNUG_MEMORY_LIMIT= ") + SNUG_BINARY + " " + args + " 2>/dev/null";
  Ran r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (p == nullptr) return r;
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

Ran SnugStderr(const std::string& args) {
  const std::string cmd = std::string("SNUG_MEMORY_LIMIT= ") + SNUG_BINARY + " " + args + " 2>&1";
  Ran r;
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf;
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0)
    r.out.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

TEST(PlanCli, JsonFollowsTheContract) {
  Ran r = Snug("plan preset:llama-3.2-3b-q4_k_m --memory-limit 6GiB --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"]["arch"], "llama");
  EXPECT_EQ(j["model"]["n_ctx_train"], 131072);
  EXPECT_EQ(j["model"]["n_layer"], 28);
  EXPECT_GT(j["model"]["file_bytes"].get<uint64_t>(), 1'500'000'000u);
  EXPECT_EQ(j["budget"]["source"], "override");
  EXPECT_TRUE(j["budget"]["devices"].is_array());
  EXPECT_LT(j["budget"]["host_bytes"].get<uint64_t>(), 6ull << 30);
  EXPECT_EQ(j["fit"]["ok"], true);
  EXPECT_EQ(j["fit"]["n_ctx"], 8192);
  EXPECT_EQ(j["fit"]["kv_type"], "f16");
  EXPECT_EQ(j["fit"]["n_gpu_layers"], 0);
  EXPECT_EQ(j["fit"]["n_parallel"], 1);
  EXPECT_FALSE(j["fit"]["reason"].get<std::string>().empty());
  for (const char* k : {"weights_bytes", "kv_bytes", "compute_bytes", "output_bytes",
                        "overhead_bytes", "peak_host_bytes"}) {
    EXPECT_GT(j["memory"][k].get<uint64_t>(), 0u) << k;
  }
  EXPECT_EQ(j["memory"]["kv_bytes"], 896ull << 20);
  EXPECT_TRUE(j["memory"]["per_device"].is_array());
  EXPECT_GT(j["max_ctx"]["q8_0"].get<uint32_t>(), j["max_ctx"]["f16"].get<uint32_t>());
  EXPECT_GT(j["max_ctx"]["q4_0"].get<uint32_t>(), j["max_ctx"]["q8_0"].get<uint32_t>());
}

TEST(PlanCli, DoesNotFitExitsThreeWithJsonAndNumbers) {
  Ran r = Snug("plan preset:llama-3.2-3b-q4_k_m --memory-limit 6GiB --ctx 131072 --json");
  EXPECT_EQ(r.exit_code, 3);
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["fit"]["ok"], false);
  EXPECT_EQ(j["fit"]["n_ctx"], 131072);
  EXPECT_EQ(j["memory"]["kv_bytes"].get<uint64_t>(), 14ull << 30);
  Ran human = SnugStderr("plan preset:llama-3.2-3b-q4_k_m --memory-limit 6GiB --ctx 131072");
  EXPECT_EQ(human.exit_code, 3);
  EXPECT_NE(human.out.find("needs"), std::string::npos) << human.out;
  EXPECT_NE(human.out.find("at ctx 131072 (f16 KV) but the budget is 5.4 GiB"), std::string::npos)
      << human.out;
  EXPECT_NE(human.out.find("the largest context that fits is"), std::string::npos) << human.out;
}

TEST(PlanCli, UsageErrorsExitTwo) {
  EXPECT_EQ(Snug("plan preset:llama-3.2-3b-q4_k_m --ctx lots").exit_code, 2);
  EXPECT_EQ(Snug("plan preset:llama-3.2-3b-q4_k_m --kv-type q5_1").exit_code, 2);
  EXPECT_EQ(Snug("plan").exit_code, 2);
}

TEST(PlanCli, UnknownModelSaysWhichFormsWork) {
  Ran r = SnugStderr("plan no-such-model-anywhere");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.out.find("preset:NAME"), std::string::npos) << r.out;
}

TEST(PlanCli, PlansALocalFileAndAProfile) {
  const auto dir = std::filesystem::temp_directory_path() / "snug-plan-cli-test";
  std::filesystem::create_directories(dir);
  const std::string path = (dir / "qwen.gguf").string();
  Ran made = Snug("mkmodel qwen2.5-0.5b " + path);
  ASSERT_EQ(made.exit_code, 0) << made.out;
  Ran r = Snug("plan " + path + " --hw mac-8gb --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["model"]["arch"], "qwen2");
  EXPECT_EQ(j["budget"]["source"], "profile");
  EXPECT_EQ(j["fit"]["n_ctx"], 8192);
  EXPECT_EQ(j["fit"]["n_gpu_layers"], 25);  // 24 layers + output on the unified GPU
  ASSERT_EQ(j["memory"]["per_device"].size(), 1u);
  EXPECT_EQ(j["memory"]["per_device"][0]["unified"], true);
  std::filesystem::remove_all(dir);
}

TEST(PlanCli, VramLimitCapsTheDeviceAndForcesAPartialOffload) {
  Ran r = Snug(
      "plan preset:llama-3.1-8b-q4_k_m --hw datacenter-80gb --vram-limit 2GiB --ctx 8192 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out;
  auto j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["budget"]["devices"].size(), 1u);
  EXPECT_EQ(j["budget"]["devices"][0]["budget_bytes"], 2ull << 30);
  const int ngl = j["fit"]["n_gpu_layers"];
  EXPECT_GT(ngl, 0);
  EXPECT_LT(ngl, 32);
  EXPECT_LE(j["memory"]["per_device"][0]["total_bytes"].get<uint64_t>(), 2ull << 30);
  EXPECT_EQ(Snug("plan preset:llama-3.1-8b-q4_k_m --vram-limit much --json").exit_code, 2);
}

}  // namespace
