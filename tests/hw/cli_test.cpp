// `snug hw` through the real binary: a real memory cgroup with a 6 GiB limit, overrides by flag
// and environment, profiles, and fixture roots via SNUG_HOST_ROOT.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "../support/memory_cgroup.h"
#include "core/size.h"
#include "fixture.h"

namespace snug::hw {
namespace {

struct Output {
  int exit_code = -1;
  std::string text;
};

// Runs a shell command line and captures its stdout.
Output RunCommand(const std::string& command) {
  Output out;
  FILE* pipe = ::popen(command.c_str(), "r");
  if (pipe == nullptr) return out;
  char buffer[4096];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof(buffer), pipe)) > 0)
    out.text.append(buffer, n);
  int status = ::pclose(pipe);
  out.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

std::string Snug() {
  return std::string("env -u SNUG_MEMORY_LIMIT -u SNUG_HOST_ROOT ") + SNUG_BINARY;
}

nlohmann::json ParseJson(const Output& out) {
  nlohmann::json j = nlohmann::json::parse(out.text, nullptr, /*allow_exceptions=*/false);
  EXPECT_FALSE(j.is_discarded()) << out.text;
  return j;
}

TEST(SnugHwCli, InsideARealSixGiBCgroupTheBudgetComesFromTheCgroup) {
  snug::testing::MemoryCgroup cgroup(6 * kGiB);
  if (!cgroup.ok()) GTEST_SKIP() << "cannot create a memory cgroup: " << cgroup.error();
  // The shell moves itself into the cgroup, then becomes snug: snug starts inside the limit.
  Output out =
      RunCommand("sh -c 'echo $$ > " + cgroup.procs_file() + " && exec " + Snug() + " hw --json'");
  ASSERT_EQ(out.exit_code, 0) << out.text;
  nlohmann::json j = ParseJson(out);
  const nlohmann::json& budget = j["budget"];
  EXPECT_EQ(budget["source"], "cgroup") << budget.dump(2);
  const uint64_t raw = budget["host_raw_bytes"].get<uint64_t>();
  EXPECT_LE(raw, 6 * kGiB);
  EXPECT_GT(raw, 5 * kGiB) << "only snug runs in the test cgroup";
  EXPECT_EQ(budget["host_bytes"].get<uint64_t>(), raw - budget["headroom_bytes"].get<uint64_t>());
  EXPECT_NE(budget["detail"].get<std::string>().find("snug-test-"), std::string::npos)
      << budget["detail"];
  EXPECT_NE(j["host"]["cgroup"]["dir"].get<std::string>().find("snug-test-"), std::string::npos);
}

// --memory-limit is a what-if below the machine, never a way past the container: above the
// cgroup's own limit it is clamped to it, with a warning.
TEST(SnugHwCli, AMemoryLimitAboveTheCgroupIsClamped) {
  snug::testing::MemoryCgroup cgroup(1 * kGiB);
  if (!cgroup.ok()) GTEST_SKIP() << "cannot create a memory cgroup: " << cgroup.error();
  const std::string in_cgroup = "sh -c 'echo $$ > " + cgroup.procs_file() + " && exec " + Snug();
  Output out = RunCommand(in_cgroup + " hw --json --memory-limit 8GiB'");
  ASSERT_EQ(out.exit_code, 0) << out.text;
  nlohmann::json j = ParseJson(out);
  EXPECT_EQ(j["budget"]["source"], "cgroup") << j["budget"].dump(2);
  EXPECT_LE(j["budget"]["host_raw_bytes"].get<uint64_t>(), 1 * kGiB);
  EXPECT_NE(j["budget"]["detail"].get<std::string>().find("clamped"), std::string::npos);
  Output warned = RunCommand(in_cgroup + " hw --memory-limit 8GiB' 2>&1");
  EXPECT_NE(warned.text.find("above this container's memory limit"), std::string::npos)
      << warned.text;
  // Below the cgroup's limit the flag is taken as given.
  Output below = RunCommand(in_cgroup + " hw --json --memory-limit 512MiB'");
  EXPECT_EQ(ParseJson(below)["budget"]["source"], "override");
}

TEST(SnugHwCli, ThisMachineHasAPlausibleBudget) {
  Output out = RunCommand(Snug() + " hw --json");
  ASSERT_EQ(out.exit_code, 0) << out.text;
  nlohmann::json j = ParseJson(out);
  const std::string source = j["budget"]["source"];
  EXPECT_TRUE(source == "cgroup" || source == "meminfo") << source;
  const uint64_t total = j["host"]["memory"]["total_bytes"];
  const uint64_t raw = j["budget"]["host_raw_bytes"];
  EXPECT_GT(raw, 0u);
  EXPECT_LE(raw, total);
  EXPECT_GE(j["host"]["cpu"]["recommended_threads"].get<int>(), 1);
  for (const auto& device : j["budget"]["devices"])
    EXPECT_NE(device["backend"], "CPU");  // CPU devices are the host budget, not listed
}

TEST(SnugHwCli, ReadableTableNamesTheBudgetSource) {
  Output out = RunCommand(Snug() + " hw");
  ASSERT_EQ(out.exit_code, 0) << out.text;
  for (const char* label : {"host", "container", "cpu", "devices", "budget", "source: "})
    EXPECT_NE(out.text.find(label), std::string::npos) << label << "\n" << out.text;
}

TEST(SnugHwCli, MemoryLimitFlagAndEnvironmentOverride) {
  Output flag = RunCommand(Snug() + " hw --json --memory-limit 6GiB --headroom 512MiB");
  ASSERT_EQ(flag.exit_code, 0) << flag.text;
  nlohmann::json a = ParseJson(flag);
  EXPECT_EQ(a["budget"]["source"], "override");
  EXPECT_EQ(a["budget"]["host_raw_bytes"], 6 * kGiB);
  EXPECT_EQ(a["budget"]["host_bytes"], 6 * kGiB - 512 * kMiB);

  Output env = RunCommand("SNUG_MEMORY_LIMIT=3GiB " + std::string(SNUG_BINARY) + " hw --json");
  ASSERT_EQ(env.exit_code, 0) << env.text;
  nlohmann::json b = ParseJson(env);
  EXPECT_EQ(b["budget"]["source"], "override");
  EXPECT_EQ(b["budget"]["host_raw_bytes"], 3 * kGiB);
  EXPECT_NE(b["budget"]["detail"].get<std::string>().find("SNUG_MEMORY_LIMIT"), std::string::npos);

  Output bad = RunCommand(Snug() + " hw --memory-limit lots 2>&1");
  EXPECT_EQ(bad.exit_code, 2) << bad.text;
  EXPECT_NE(bad.text.find("--memory-limit"), std::string::npos) << bad.text;
}

TEST(SnugHwCli, ProfilesAreListedAndSelectable) {
  Output list = RunCommand(Snug() + " hw --profiles");
  ASSERT_EQ(list.exit_code, 0) << list.text;
  for (const char* name : {"mac-8gb", "mac-16gb", "laptop-16gb", "workstation-24gb-gpu",
                           "datacenter-80gb", "container-6gb"})
    EXPECT_NE(list.text.find(name), std::string::npos) << name;

  Output list_json = RunCommand(Snug() + " hw --profiles --json");
  ASSERT_EQ(list_json.exit_code, 0);
  EXPECT_GE(ParseJson(list_json).size(), 6u);

  Output mac = RunCommand(Snug() + " hw --hw mac-8gb --json");
  ASSERT_EQ(mac.exit_code, 0) << mac.text;
  nlohmann::json j = ParseJson(mac);
  EXPECT_EQ(j["budget"]["source"], "profile");
  ASSERT_EQ(j["budget"]["devices"].size(), 1u);
  EXPECT_EQ(j["budget"]["devices"][0]["unified"], true);
  EXPECT_LE(j["budget"]["devices"][0]["budget_bytes"].get<uint64_t>(),
            j["budget"]["host_bytes"].get<uint64_t>());
  EXPECT_EQ(j["profile"]["name"], "mac-8gb");

  Output unknown = RunCommand(Snug() + " hw --hw cray-1 2>&1");
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.text.find("mac-16gb"), std::string::npos) << unknown.text;
}

TEST(SnugHwCli, HostRootFixturesDriveDetection) {
  const std::string root = testing::FixtureRoot("v1-docker");
  Output out = RunCommand("SNUG_HOST_ROOT=" + root + " " + SNUG_BINARY + " hw --json");
  ASSERT_EQ(out.exit_code, 0) << out.text;
  nlohmann::json j = ParseJson(out);
  EXPECT_EQ(j["budget"]["source"], "cgroup");
  EXPECT_EQ(j["budget"]["host_raw_bytes"], 6 * kGiB - 758 * kMiB);
  EXPECT_TRUE(j["budget"]["devices"].empty());

  testing::TempTree broken("v1-docker");
  broken.Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "banana\n");
  Output bad = RunCommand("SNUG_HOST_ROOT=" + broken.root() + " " + SNUG_BINARY + " hw 2>&1");
  EXPECT_EQ(bad.exit_code, 1) << bad.text;
  EXPECT_NE(bad.text.find("banana"), std::string::npos) << bad.text;
  EXPECT_NE(bad.text.find("cpu"), std::string::npos) << "the rest is still shown: " << bad.text;
}

}  // namespace
}  // namespace snug::hw
