// Host probing and budget computation against fixture trees (fake /proc + /sys roots).
#include <gtest/gtest.h>

#include <cstdlib>

#include "core/size.h"
#include "fixture.h"
#include "hw/detect.h"
#include "hw/json.h"

namespace snug::hw {
namespace {

using testing::FixtureRoot;
using testing::TempTree;

bool Contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

bool AnyNoteContains(const HostInfo& host, const std::string& needle) {
  for (const std::string& note : host.notes)
    if (Contains(note, needle)) return true;
  return false;
}

Budget BudgetFor(const std::string& root) {
  Result<HostInfo> host = ProbeHost(root);
  EXPECT_TRUE(host.ok()) << host.status().ToString();
  if (!host.ok()) return {};
  Result<Budget> budget = ComputeBudget(*host, {}, std::nullopt);
  EXPECT_TRUE(budget.ok()) << budget.status().ToString();
  return budget.ok() ? *budget : Budget{};
}

TEST(ProbeHost, V1DockerContainerSeesItsLimitThroughTheMountRoot) {
  const std::string root = FixtureRoot("v1-docker");
  Result<HostInfo> host = ProbeHost(root);
  ASSERT_TRUE(host.ok()) << host.status().ToString();
  EXPECT_EQ(host->mem.total, 64 * kGiB);
  EXPECT_EQ(host->mem.available, 56 * kGiB);
  EXPECT_EQ(host->mem.swap_total, 8 * kGiB);
  EXPECT_EQ(host->self_rss, 10 * kMiB);
  const CgroupMemory& cg = host->cgroup;
  EXPECT_EQ(cg.version, 1);
  EXPECT_EQ(cg.dir, root + "/sys/fs/cgroup/memory");  // /docker/abc123 is the mount root
  ASSERT_EQ(cg.levels.size(), 1u);
  EXPECT_EQ(cg.levels[0].limit, 6 * kGiB);
  EXPECT_EQ(cg.levels[0].usage, 1 * kGiB);
  EXPECT_EQ(cg.levels[0].reclaimable, 256 * kMiB);
  EXPECT_EQ(cg.swap_limit, 12 * kGiB);
  EXPECT_EQ(cg.peak_usage, 2 * kGiB);
  EXPECT_TRUE(cg.error.empty());

  const CpuInfo& cpu = host->cpu;
  EXPECT_EQ(cpu.model, "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz");
  EXPECT_EQ(cpu.logical_cores, 8);
  EXPECT_EQ(cpu.physical_cores, 4);
  EXPECT_EQ(cpu.features, (std::vector<std::string>{"avx", "avx2", "fma", "f16c", "avx512f",
                                                    "avx512bw", "avx512vl", "avx512_vnni"}));
  EXPECT_EQ(cpu.cpuset, "0-3");
  EXPECT_EQ(cpu.usable_cpus, 4);
  ASSERT_TRUE(cpu.quota_cpus.has_value());
  EXPECT_DOUBLE_EQ(*cpu.quota_cpus, 1.5);
  EXPECT_EQ(cpu.quota_source, root + "/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us");
  EXPECT_EQ(cpu.recommended_threads, 2);  // ceil(1.5 cpus of quota)
}

TEST(ProbeHost, OwnMemoryOutsideThePageCacheIsAnonPlusShmem) {
  Result<HostInfo> v2 = ProbeHost(FixtureRoot("v2-nested"));
  ASSERT_TRUE(v2.ok()) << v2.status().ToString();
  EXPECT_EQ(v2->self_rss, 200 * kMiB);
  EXPECT_EQ(v2->self_unreclaimable, 160 * kMiB);  // RssAnon 150 + RssShmem 10; RssFile is cache
  Result<HostInfo> old = ProbeHost(FixtureRoot("old-kernel"));  // no split: all of VmRSS
  ASSERT_TRUE(old.ok()) << old.status().ToString();
  EXPECT_EQ(old->self_unreclaimable, old->self_rss);
}

// A served model's weights are mapped file pages: MemAvailable already counts them (as cache), so
// the budget must not add them again as memory snug holds, or it would grow with every load.
TEST(ComputeBudget, MappedWeightsAreNotCountedTwice) {
  HostInfo host;
  host.mem.total = 32 * kGiB;
  host.mem.available = 20 * kGiB;
  host.mem.source = "/proc/meminfo";
  host.self_rss = 5 * kGiB;            // 4 GiB of it a mapped model file
  host.self_unreclaimable = 1 * kGiB;  // KV cache, compute buffers
  Result<Budget> b = ComputeBudget(host, {}, std::nullopt);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->host_raw_bytes, 21 * kGiB);
}

TEST(ComputeBudget, V1DockerLimitMinusOthersUsageMinusHeadroom) {
  const std::string root = FixtureRoot("v1-docker");
  Budget b = BudgetFor(root);
  // others = usage 1 GiB - 256 MiB inactive page cache - 10 MiB our RSS = 758 MiB
  const uint64_t raw = 6 * kGiB - 758 * kMiB;
  EXPECT_EQ(b.source, "cgroup");
  EXPECT_EQ(b.host_raw_bytes, raw);
  EXPECT_EQ(b.headroom_bytes, raw / 10);
  EXPECT_EQ(b.host_bytes, raw - raw / 10);
  EXPECT_EQ(b.detail,
            "cgroup v1 limit 6.0 GiB (" + root +
                "/sys/fs/cgroup/memory/memory.limit_in_bytes), 5.3 GiB not used by others");
}

TEST(ComputeBudget, V1NestedLimitOnAParentBindsAndHybridV2IsIgnored) {
  const std::string root = FixtureRoot("v1-nested-hybrid");
  Result<HostInfo> host = ProbeHost(root);
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->cgroup.version, 1);  // the unified mount has no memory controller
  EXPECT_EQ(host->cgroup.dir, root + "/sys/fs/cgroup/memory/outer/inner");
  ASSERT_EQ(host->cgroup.levels.size(), 3u);
  EXPECT_FALSE(host->cgroup.levels[0].limit.has_value());  // inner: 9223372036854771712
  EXPECT_EQ(host->cgroup.levels[1].limit, 4 * kGiB);
  EXPECT_FALSE(host->cgroup.levels[2].limit.has_value());  // the root cgroup

  Budget b = BudgetFor(root);
  // outer: others = 3 GiB - 1 GiB inactive file - 100 MiB RSS = 1948 MiB
  EXPECT_EQ(b.source, "cgroup");
  EXPECT_EQ(b.host_raw_bytes, 4 * kGiB - 1948 * kMiB);
  EXPECT_TRUE(Contains(b.detail, "cgroup v1 limit 4.0 GiB (" + root +
                                     "/sys/fs/cgroup/memory/outer/memory.limit_in_bytes)"))
      << b.detail;

  EXPECT_EQ(host->cpu.recommended_threads, 2);
  EXPECT_FALSE(host->cpu.quota_cpus.has_value());  // cfs_quota_us = -1
  EXPECT_EQ(host->cpu.features,
            (std::vector<std::string>{"avx", "avx2", "fma", "f16c", "avx512f"}));
}

TEST(ComputeBudget, V2MemoryHighOnTheLeafBeatsMemoryMaxOnTheParent) {
  const std::string root = FixtureRoot("v2-nested");
  Result<HostInfo> host = ProbeHost(root);
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->cgroup.version, 2);
  ASSERT_EQ(host->cgroup.levels.size(), 3u);
  EXPECT_EQ(host->cgroup.levels[0].limit, 3 * kGiB);
  EXPECT_EQ(host->cgroup.levels[1].limit, 8 * kGiB);
  EXPECT_EQ(host->cgroup.levels[1].reclaimable, 512 * kMiB);
  EXPECT_FALSE(host->cgroup.levels[2].limit.has_value());
  EXPECT_EQ(host->cgroup.swap_limit, 0u);
  EXPECT_EQ(host->cgroup.peak_usage, 1536 * kMiB);

  Budget b = BudgetFor(root);
  // app.scope: 3 GiB high - (1 GiB usage - 200 MiB RSS) = 2248 MiB;
  // user.slice: 8 GiB - (2 GiB - 512 MiB - 200 MiB) = 6856 MiB.
  EXPECT_EQ(b.source, "cgroup");
  EXPECT_EQ(b.host_raw_bytes, 2248 * kMiB);
  EXPECT_EQ(b.detail, "cgroup v2 memory.high 3.0 GiB (" + root +
                          "/sys/fs/cgroup/user.slice/app.scope/memory.high), 2.2 GiB not used by "
                          "others");

  const CpuInfo& cpu = host->cpu;
  EXPECT_EQ(cpu.model, "Neoverse-N1");
  EXPECT_EQ(cpu.logical_cores, 4);
  EXPECT_EQ(cpu.physical_cores, 4);
  EXPECT_EQ(cpu.features, (std::vector<std::string>{"neon", "dotprod"}));
  EXPECT_EQ(cpu.cpuset, "0-1");
  EXPECT_DOUBLE_EQ(cpu.quota_cpus.value_or(0), 1.5);
  EXPECT_EQ(cpu.recommended_threads, 2);
}

TEST(ComputeBudget, V2NamespacedPathMissingFallsBackToTheMountRoot) {
  const std::string root = FixtureRoot("v2-namespaced");
  Result<HostInfo> host = ProbeHost(root);
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->cgroup.dir, root + "/sys/fs/cgroup");
  EXPECT_TRUE(AnyNoteContains(*host, "not found under /sys/fs/cgroup"));
  Budget b = BudgetFor(root);
  EXPECT_EQ(b.source, "cgroup");
  EXPECT_EQ(b.host_raw_bytes, 2 * kGiB - 50 * kMiB);  // usage 100 MiB, 50 MiB of it ours
  EXPECT_EQ(b.headroom_bytes, 256 * kMiB);            // 10% would be below the minimum
  EXPECT_EQ(host->cpu.recommended_threads, 1);        // cpu.max 50000/100000
}

TEST(ComputeBudget, MountRootOutsideOurPathIsUsedWithANote) {
  TempTree tree("v2-namespaced");
  tree.Write("proc/self/mountinfo",
             "700 600 0:130 /.. /sys/fs/cgroup ro,relatime - cgroup2 cgroup ro\n");
  tree.Write("proc/self/cgroup", "0::/kubepods/x\n");
  Result<HostInfo> host = ProbeHost(tree.root());
  ASSERT_TRUE(host.ok());
  EXPECT_TRUE(AnyNoteContains(*host, "outside the mounted part"));
  EXPECT_EQ(host->cgroup.dir, tree.Path("sys/fs/cgroup"));
  EXPECT_EQ(BudgetFor(tree.root()).host_raw_bytes, 2 * kGiB - 50 * kMiB);
}

TEST(ComputeBudget, OldKernelWithoutMemAvailableOrCgroupsUsesAnEstimate) {
  const std::string root = FixtureRoot("old-kernel");
  Result<HostInfo> host = ProbeHost(root);
  ASSERT_TRUE(host.ok());
  EXPECT_TRUE(host->mem.available_estimated);
  EXPECT_EQ(host->mem.available, 8 * kGiB);  // MemFree 2 + Buffers 1 + Cached 5
  EXPECT_EQ(host->cgroup.version, 0);
  EXPECT_TRUE(AnyNoteContains(*host, "no MemAvailable"));
  EXPECT_TRUE(AnyNoteContains(*host, "cpuinfo"));
  Budget b = BudgetFor(root);
  EXPECT_EQ(b.source, "meminfo");
  EXPECT_EQ(b.host_raw_bytes, 8 * kGiB + 8 * kMiB);
  EXPECT_TRUE(Contains(b.detail, "MemAvailable 8.0 GiB (estimated)")) << b.detail;
  EXPECT_EQ(b.headroom_bytes, b.host_raw_bytes / 10);
}

TEST(ComputeBudget, UnlimitedCgroupLeavesMeminfoInCharge) {
  TempTree tree("v1-nested-hybrid");
  tree.Write("sys/fs/cgroup/memory/outer/memory.limit_in_bytes", "9223372036854771712\n");
  tree.Write("sys/fs/cgroup/memory/outer/inner/memory.stat",
             "total_inactive_file 0\nhierarchical_memory_limit 9223372036854771712\n");
  Budget b = BudgetFor(tree.root());
  EXPECT_EQ(b.source, "meminfo");
  EXPECT_EQ(b.host_raw_bytes, 20 * kGiB + 100 * kMiB);
  EXPECT_EQ(b.detail,
            "MemAvailable 20.0 GiB (" + tree.Path("proc/meminfo") + ") + 100.0 MiB held by snug");
}

TEST(ComputeBudget, ALooseCgroupLimitIsMentionedButMeminfoBinds) {
  TempTree tree("v1-docker");
  tree.Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "137438953472\n");  // 128 GiB
  tree.Write("sys/fs/cgroup/memory/memory.stat",
             "total_inactive_file 268435456\nhierarchical_memory_limit 137438953472\n");
  Budget b = BudgetFor(tree.root());
  EXPECT_EQ(b.source, "meminfo");
  EXPECT_TRUE(Contains(b.detail, "the cgroup v1 limit of 128.0 GiB is not lower")) << b.detail;
}

TEST(ComputeBudget, MissingV1LimitFileFallsBackToHierarchicalLimit) {
  TempTree tree("v1-docker");
  tree.Remove("sys/fs/cgroup/memory/memory.limit_in_bytes");
  Budget b = BudgetFor(tree.root());
  EXPECT_EQ(b.source, "cgroup");
  EXPECT_EQ(b.host_raw_bytes, 6 * kGiB - 758 * kMiB);
  EXPECT_TRUE(Contains(b.detail, "hierarchical_memory_limit")) << b.detail;
}

TEST(ComputeBudget, MissingMemoryStatCountsAllPageCacheAsUsed) {
  TempTree tree("v1-docker");
  tree.Remove("sys/fs/cgroup/memory/memory.stat");
  EXPECT_EQ(BudgetFor(tree.root()).host_raw_bytes, 6 * kGiB - (1 * kGiB - 10 * kMiB));
}

TEST(ComputeBudget, AFullCgroupGivesAZeroBudgetNotAnUnderflow) {
  TempTree tree("v1-docker");
  tree.Write("sys/fs/cgroup/memory/memory.usage_in_bytes", "8589934592\n");
  tree.Write("sys/fs/cgroup/memory/memory.stat", "total_inactive_file 0\n");
  Budget b = BudgetFor(tree.root());
  EXPECT_EQ(b.source, "cgroup");
  EXPECT_EQ(b.host_raw_bytes, 0u);
  EXPECT_EQ(b.host_bytes, 0u);
}

TEST(ComputeBudget, V1MountedWithoutProcCgroupEntryOrMountMeansNoCgroup) {
  TempTree tree("v1-docker");
  tree.Write("proc/self/mountinfo", "22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw\n");
  Result<HostInfo> host = ProbeHost(tree.root());
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->cgroup.version, 0);
  EXPECT_TRUE(AnyNoteContains(*host, "not mounted"));
  EXPECT_EQ(BudgetFor(tree.root()).source, "meminfo");
}

TEST(ComputeBudget, V2WithoutTheMemoryControllerMeansNoCgroup) {
  TempTree tree("v2-namespaced");
  tree.Write("sys/fs/cgroup/cgroup.controllers", "cpu pids\n");
  Result<HostInfo> host = ProbeHost(tree.root());
  ASSERT_TRUE(host.ok());
  EXPECT_EQ(host->cgroup.version, 0);
  EXPECT_EQ(BudgetFor(tree.root()).source, "meminfo");
}

TEST(ComputeBudget, GarbageLimitIsAClearErrorNotAGuess) {
  TempTree tree("v1-docker");
  tree.Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "banana\n");
  Result<HostInfo> host = ProbeHost(tree.root());
  ASSERT_TRUE(host.ok());  // the rest of the machine can still be shown
  EXPECT_TRUE(Contains(host->cgroup.error, "memory.limit_in_bytes holds \"banana\""));
  Result<Budget> b = ComputeBudget(*host, {}, std::nullopt);
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kCorrupt);
  EXPECT_TRUE(Contains(b.status().message(), "--memory-limit")) << b.status().message();
}

TEST(ComputeBudget, GarbageV2UsageIsAClearError) {
  TempTree tree("v2-nested");
  tree.Write("sys/fs/cgroup/user.slice/memory.current", "12 34\n");
  Result<HostInfo> host = ProbeHost(tree.root());
  ASSERT_TRUE(host.ok());
  Result<Budget> b = ComputeBudget(*host, {}, std::nullopt);
  ASSERT_FALSE(b.ok());
  EXPECT_TRUE(Contains(b.status().message(), "user.slice/memory.current")) << b.status().message();
}

TEST(ProbeHost, MissingOrGarbageMeminfoIsAnError) {
  TempTree missing("v1-docker");
  missing.Remove("proc/meminfo");
  Result<HostInfo> a = ProbeHost(missing.root());
  ASSERT_FALSE(a.ok());
  EXPECT_EQ(a.status().code(), Code::kIoError);
  EXPECT_TRUE(Contains(a.status().message(), "--memory-limit"));

  TempTree garbage("v1-docker");
  garbage.Write("proc/meminfo", "MemTotal: lots kB\nMemFree: 1 kB\nMemAvailable: 1 kB\n");
  Result<HostInfo> b = ProbeHost(garbage.root());
  ASSERT_FALSE(b.ok());
  EXPECT_EQ(b.status().code(), Code::kCorrupt);
  EXPECT_TRUE(Contains(b.status().message(), "unreadable MemTotal")) << b.status().message();

  TempTree bad_available("v1-docker");
  bad_available.Write("proc/meminfo", "MemTotal: 100 kB\nMemFree: 1 kB\nMemAvailable: x kB\n");
  EXPECT_FALSE(ProbeHost(bad_available.root()).ok());
}

TEST(ProbeHost, GarbageCpuFilesAreIgnoredWithAReason) {
  TempTree tree("v2-nested");
  tree.Write("sys/fs/cgroup/user.slice/app.scope/cpu.max", "lots\n");
  tree.Write("sys/fs/cgroup/user.slice/app.scope/cpuset.cpus.effective", "zero-one\n");
  tree.Remove("proc/self/status");
  Result<HostInfo> host = ProbeHost(tree.root());
  ASSERT_TRUE(host.ok());
  EXPECT_FALSE(host->cpu.quota_cpus.has_value());
  EXPECT_EQ(host->cpu.usable_cpus, 0);
  EXPECT_EQ(host->cpu.recommended_threads, 4);
  EXPECT_EQ(host->self_rss, 0u);
  EXPECT_TRUE(AnyNoteContains(*host, "cpu.max"));
  EXPECT_TRUE(AnyNoteContains(*host, "is not a cpu list"));
  EXPECT_TRUE(AnyNoteContains(*host, "own RSS counted as 0"));
}

TEST(ComputeBudget, UnifiedDevicesAreCappedAtTheHostPoolAndHeadroomCanBeOverridden) {
  Result<HostInfo> host = ProbeHost(FixtureRoot("v2-namespaced"));
  ASSERT_TRUE(host.ok());
  Device igpu;
  igpu.name = "Vulkan0";
  igpu.unified = true;
  igpu.total_bytes = 16 * kGiB;
  igpu.free_bytes = 16 * kGiB;
  igpu.budget_bytes = 15 * kGiB;
  Device dgpu = igpu;
  dgpu.name = "CUDA0";
  dgpu.unified = false;
  Result<Budget> b = ComputeBudget(*host, {igpu, dgpu}, 100 * kMiB);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->headroom_bytes, 100 * kMiB);
  EXPECT_EQ(b->host_bytes, 2 * kGiB - 150 * kMiB);
  EXPECT_EQ(b->devices[0].budget_bytes, b->host_bytes);  // one pool: never more than the host
  EXPECT_EQ(b->devices[1].budget_bytes, 15 * kGiB);      // discrete: its own memory
}

TEST(ApplyHeadroom, SaturatesAtZero) {
  Budget b;
  ApplyHeadroom(1 * kGiB, 2 * kGiB, &b);
  EXPECT_EQ(b.host_bytes, 0u);
  EXPECT_EQ(b.host_raw_bytes, 1 * kGiB);
  ApplyHeadroom(100 * kMiB, std::nullopt, &b);  // default headroom never exceeds the raw figure
  EXPECT_EQ(b.headroom_bytes, 100 * kMiB);
  EXPECT_EQ(b.host_bytes, 0u);
}

TEST(DeviceHeadroom, FivePercentBetween256MiBAnd1GiB) {
  EXPECT_EQ(DeviceHeadroom(4 * kGiB), 256 * kMiB);
  EXPECT_EQ(DeviceHeadroom(10 * kGiB), 512 * kMiB);
  EXPECT_EQ(DeviceHeadroom(80 * kGiB), 1 * kGiB);
}

class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) { ::setenv(name, value, 1); }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

TEST(ResolveBudget, DetectsFromAFakeRootWithoutDevices) {
  BudgetOptions options;
  options.root = FixtureRoot("v1-docker");
  Result<Budget> b = ResolveBudget(options);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->source, "cgroup");
  EXPECT_EQ(b->host_raw_bytes, 6 * kGiB - 758 * kMiB);
  EXPECT_TRUE(b->devices.empty());
}

TEST(ResolveBudget, MemoryLimitFlagOverridesEvenBrokenDetection) {
  TempTree tree("v1-docker");
  tree.Write("sys/fs/cgroup/memory/memory.limit_in_bytes", "banana\n");
  BudgetOptions options;
  options.root = tree.root();
  EXPECT_FALSE(ResolveBudget(options).ok());
  options.memory_limit = 3 * kGiB;
  Result<Budget> b = ResolveBudget(options);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  EXPECT_EQ(b->source, "override");
  EXPECT_EQ(b->host_raw_bytes, 3 * kGiB);
  EXPECT_EQ(b->host_bytes, 3 * kGiB - 3 * kGiB / 10);
  EXPECT_TRUE(Contains(b->detail, "--memory-limit 3.0 GiB")) << b->detail;
}

TEST(ResolveBudget, EnvironmentOverrideAndItsErrors) {
  BudgetOptions options;
  options.root = FixtureRoot("v2-nested");
  {
    // Below the fixture's cgroup budget (2248 MiB) the override is taken as given.
    ScopedEnv env("SNUG_MEMORY_LIMIT", "2GiB");
    Result<Budget> b = ResolveBudget(options);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->source, "override");
    EXPECT_EQ(b->host_raw_bytes, 2 * kGiB);
    EXPECT_TRUE(Contains(b->detail, "SNUG_MEMORY_LIMIT=2GiB")) << b->detail;
    options.memory_limit = 1 * kGiB;  // the flag beats the environment
    EXPECT_EQ(ResolveBudget(options)->host_raw_bytes, 1 * kGiB);
    options.memory_limit.reset();
  }
  {
    // Above it, the container's own figure wins: a limit is a what-if, not a way past it.
    ScopedEnv env("SNUG_MEMORY_LIMIT", "5GiB");
    Result<Budget> b = ResolveBudget(options);
    ASSERT_TRUE(b.ok());
    EXPECT_EQ(b->source, "cgroup");
    EXPECT_EQ(b->host_raw_bytes, 2248 * kMiB);
    EXPECT_TRUE(Contains(b->detail, "SNUG_MEMORY_LIMIT=5GiB")) << b->detail;
    EXPECT_TRUE(Contains(b->detail, "clamped to the container")) << b->detail;
  }
  {
    ScopedEnv env("SNUG_MEMORY_LIMIT", "lots");
    Result<Budget> b = ResolveBudget(options);
    ASSERT_FALSE(b.ok());
    EXPECT_EQ(b.status().code(), Code::kInvalidArgument);
    EXPECT_TRUE(Contains(b.status().message(), "SNUG_MEMORY_LIMIT"));
  }
}

TEST(ResolveBudget, ProfileReplacesDetection) {
  BudgetOptions options;
  options.root = FixtureRoot("v1-docker");
  options.profile = "datacenter-80gb";
  Result<Budget> b = ResolveBudget(options);
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->source, "profile");
  ASSERT_EQ(b->devices.size(), 1u);
  EXPECT_EQ(b->devices[0].total_bytes, 80 * kGiB);
  options.memory_limit = 32 * kGiB;  // host override on top of the profile's devices
  Result<Budget> c = ResolveBudget(options);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->source, "override");
  EXPECT_EQ(c->host_raw_bytes, 32 * kGiB);
  EXPECT_EQ(c->devices.size(), 1u);
}

TEST(BudgetOptionsFromFlags, ParsesAndNamesTheBadFlag) {
  Result<BudgetOptions> ok = BudgetOptionsFromFlags("6GiB", "512MiB", "mac-8gb");
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(ok->memory_limit, 6 * kGiB);
  EXPECT_EQ(ok->headroom, 512 * kMiB);
  EXPECT_EQ(ok->profile, "mac-8gb");
  Result<BudgetOptions> none = BudgetOptionsFromFlags("", "", "");
  ASSERT_TRUE(none.ok());
  EXPECT_FALSE(none->memory_limit.has_value());

  Result<BudgetOptions> bad_limit = BudgetOptionsFromFlags("six", "", "");
  ASSERT_FALSE(bad_limit.ok());
  EXPECT_EQ(bad_limit.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(bad_limit.status().message(), "--memory-limit"));
  EXPECT_TRUE(Contains(BudgetOptionsFromFlags("", "x", "").status().message(), "--headroom"));
  Result<BudgetOptions> bad_profile = BudgetOptionsFromFlags("", "", "cray-1");
  ASSERT_FALSE(bad_profile.ok());
  EXPECT_EQ(bad_profile.status().code(), Code::kInvalidArgument);
  EXPECT_TRUE(Contains(bad_profile.status().message(), "mac-16gb"));
}

TEST(BudgetToJson, HasTheContractFields) {
  Budget b;
  b.host_bytes = 1;
  b.host_raw_bytes = 2;
  b.headroom_bytes = 1;
  b.source = "cgroup";
  b.detail = "d";
  Device d;
  d.name = "CUDA0";
  d.unified = true;
  d.budget_bytes = 5;
  b.devices.push_back(d);
  nlohmann::json j = BudgetToJson(b);
  EXPECT_EQ(j["host_bytes"], 1);
  EXPECT_EQ(j["host_raw_bytes"], 2);
  EXPECT_EQ(j["headroom_bytes"], 1);
  EXPECT_EQ(j["source"], "cgroup");
  EXPECT_EQ(j["detail"], "d");
  ASSERT_EQ(j["devices"].size(), 1u);
  for (const char* key : {"name", "description", "backend", "total_bytes", "free_bytes", "unified",
                          "budget_bytes", "source"})
    EXPECT_TRUE(j["devices"][0].contains(key)) << key;
  EXPECT_EQ(j["devices"][0]["unified"], true);
}

}  // namespace
}  // namespace snug::hw
