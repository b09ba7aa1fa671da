// Built-in what-if profiles.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "core/size.h"
#include "hw/detect.h"
#include "hw/profiles.h"

namespace snug::hw {
namespace {

TEST(Profiles, TheIssueListIsComplete) {
  std::set<std::string> names;
  for (const Profile& p : AllProfiles())
    names.insert(p.name);
  for (const char* required : {"mac-8gb", "mac-16gb", "laptop-16gb", "workstation-24gb-gpu",
                               "datacenter-80gb", "container-6gb"})
    EXPECT_EQ(names.count(required), 1u) << required;
}

TEST(Profiles, EveryProfileYieldsASaneBudget) {
  for (const Profile& p : AllProfiles()) {
    Budget b = ProfileBudget(p, std::nullopt);
    EXPECT_EQ(b.source, "profile") << p.name;
    EXPECT_GT(b.host_bytes, 0u) << p.name;
    EXPECT_LE(b.host_raw_bytes, p.ram_bytes) << p.name;
    EXPECT_EQ(b.host_bytes + b.headroom_bytes, b.host_raw_bytes) << p.name;
    EXPECT_NE(b.detail.find(p.name), std::string::npos) << p.name;
    for (const Device& d : b.devices) {
      EXPECT_LE(d.budget_bytes, d.free_bytes) << p.name;
      EXPECT_LE(d.free_bytes, d.total_bytes) << p.name;
      if (d.unified) {
        EXPECT_LE(d.budget_bytes, b.host_bytes) << p.name;
      }
    }
  }
}

TEST(Profiles, MacsAreUnifiedAndLimitedByTheMetalWorkingSet) {
  Result<Profile> mac8 = FindProfile("mac-8gb");
  ASSERT_TRUE(mac8.ok());
  Budget b = ProfileBudget(*mac8, std::nullopt);
  ASSERT_EQ(b.devices.size(), 1u);
  EXPECT_TRUE(b.devices[0].unified);
  // recommendedMaxWorkingSetSize on an 8 GB Mac: 5461.33 MiB (2/3 of RAM).
  EXPECT_NEAR(static_cast<double>(b.devices[0].total_bytes) / kMiB, 5461.33, 0.01);
  // One pool: the GPU may use the working set minus headroom, but never more than the host budget.
  EXPECT_EQ(
      b.devices[0].budget_bytes,
      std::min(b.devices[0].total_bytes - DeviceHeadroom(b.devices[0].total_bytes), b.host_bytes));

  Result<Profile> mac16 = FindProfile("mac-16gb");
  ASSERT_TRUE(mac16.ok());
  EXPECT_NEAR(static_cast<double>(mac16->devices[0].total_bytes) / kMiB, 10922.67, 0.01);
}

TEST(Profiles, ContainerAndGpuFigures) {
  Budget container = ProfileBudget(*FindProfile("container-6gb"), std::nullopt);
  EXPECT_EQ(container.host_raw_bytes, 6 * kGiB);
  EXPECT_TRUE(container.devices.empty());
  EXPECT_NE(container.detail.find("cgroup limit 6.0 GiB"), std::string::npos) << container.detail;

  Budget ws = ProfileBudget(*FindProfile("workstation-24gb-gpu"), 2 * kGiB);
  EXPECT_EQ(ws.headroom_bytes, 2 * kGiB);
  ASSERT_EQ(ws.devices.size(), 1u);
  EXPECT_EQ(ws.devices[0].total_bytes, 24 * kGiB);
  EXPECT_FALSE(ws.devices[0].unified);
  EXPECT_TRUE(FindProfile("laptop-16gb")->devices.empty());
}

TEST(Profiles, UnknownNameListsTheKnownOnes) {
  Result<Profile> p = FindProfile("pdp-11");
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), Code::kNotFound);
  EXPECT_NE(p.status().message().find("container-6gb"), std::string::npos);
}

TEST(VramLimit, CapsEveryDeviceBudgetAndNeverRaisesOne) {
  Budget b = ProfileBudget(*FindProfile("datacenter-80gb"), std::nullopt);
  ASSERT_EQ(b.devices.size(), 1u);
  const uint64_t uncapped = b.devices[0].budget_bytes;
  ASSERT_GT(uncapped, 4 * kGiB);
  CapDeviceBudgets(4 * kGiB, "--vram-limit", &b);
  EXPECT_EQ(b.devices[0].budget_bytes, 4 * kGiB);
  // Only the budget moves: the device still reports what the hardware has.
  EXPECT_EQ(b.devices[0].total_bytes, 80 * kGiB);
  EXPECT_NE(b.devices[0].source.find("capped at 4.0 GiB by --vram-limit"), std::string::npos)
      << b.devices[0].source;
  const std::string source = b.devices[0].source;
  CapDeviceBudgets(uncapped * 2, "--vram-limit", &b);  // above the budget: no change
  EXPECT_EQ(b.devices[0].budget_bytes, 4 * kGiB);
  EXPECT_EQ(b.devices[0].source, source);
}

TEST(VramLimit, FlagParsesAndResolveBudgetAppliesItToProfileDevices) {
  Result<BudgetOptions> options = BudgetOptionsFromFlags("", "", "workstation-24gb-gpu", "3GiB");
  ASSERT_TRUE(options.ok()) << options.status().message();
  ASSERT_TRUE(options->vram_limit.has_value());
  EXPECT_EQ(*options->vram_limit, 3 * kGiB);
  Result<Budget> b = ResolveBudget(*options);
  ASSERT_TRUE(b.ok()) << b.status().message();
  ASSERT_EQ(b->devices.size(), 1u);
  EXPECT_EQ(b->devices[0].budget_bytes, 3 * kGiB);
  // The host figure is the profile's, untouched by the device cap.
  EXPECT_EQ(b->host_bytes,
            ProfileBudget(*FindProfile("workstation-24gb-gpu"), std::nullopt).host_bytes);

  Result<BudgetOptions> bad = BudgetOptionsFromFlags("", "", "", "lots");
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("--vram-limit"), std::string::npos);
}

}  // namespace
}  // namespace snug::hw
