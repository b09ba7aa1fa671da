// Parsers of kernel text formats: numbers, key/value files, mountinfo, /proc/self/cgroup, cpu
// lists.
#include <gtest/gtest.h>

#include "fixture.h"
#include "hw/cgroup.h"
#include "hw/cpu.h"
#include "hw/sysfs.h"

namespace snug::hw {
namespace {

using sysfs::NumberFile;
using testing::TempTree;

TEST(Sysfs, ParsesWholeNumbersOnly) {
  EXPECT_EQ(sysfs::ParseU64("6442450944\n"), 6442450944u);
  EXPECT_EQ(sysfs::ParseU64(" 0 "), 0u);
  EXPECT_EQ(sysfs::ParseU64("18446744073709551615"), UINT64_MAX);
  EXPECT_FALSE(sysfs::ParseU64("18446744073709551616"));  // overflow
  EXPECT_FALSE(sysfs::ParseU64(""));
  EXPECT_FALSE(sysfs::ParseU64("-1"));
  EXPECT_FALSE(sysfs::ParseU64("12abc"));
  EXPECT_FALSE(sysfs::ParseU64("1.5"));
}

TEST(Sysfs, NumberFilesKnowUnlimitedMissingAndGarbage) {
  TempTree tree("old-kernel");
  tree.Write("v1-unlimited", "9223372036854771712\n");
  tree.Write("v2-max", "max\n");
  tree.Write("quota", "-1\n");
  tree.Write("value", "6442450944\n");
  tree.Write("garbage", "banana\n");
  tree.Write("empty", "");
  EXPECT_EQ(sysfs::ReadNumberFile(tree.Path("v1-unlimited")).kind, NumberFile::Kind::kUnlimited);
  EXPECT_EQ(sysfs::ReadNumberFile(tree.Path("v2-max")).kind, NumberFile::Kind::kUnlimited);
  EXPECT_EQ(sysfs::ReadNumberFile(tree.Path("quota")).kind, NumberFile::Kind::kUnlimited);
  NumberFile value = sysfs::ReadNumberFile(tree.Path("value"));
  EXPECT_EQ(value.kind, NumberFile::Kind::kValue);
  EXPECT_EQ(value.value, 6442450944u);
  NumberFile garbage = sysfs::ReadNumberFile(tree.Path("garbage"));
  EXPECT_EQ(garbage.kind, NumberFile::Kind::kGarbage);
  EXPECT_EQ(garbage.text, "banana");
  EXPECT_EQ(sysfs::ReadNumberFile(tree.Path("empty")).kind, NumberFile::Kind::kGarbage);
  EXPECT_EQ(sysfs::ReadNumberFile(tree.Path("absent")).kind, NumberFile::Kind::kMissing);
}

TEST(Sysfs, KeyValueScalesKilobytesAndRejectsGarbage) {
  const std::string text =
      "MemTotal:       24684084 kB\nMemAvailable: oops kB\ntotal_inactive_file 4096\n"
      "MemTotalExtra: 5 kB\n";
  EXPECT_EQ(sysfs::KeyValue(text, "MemTotal"), uint64_t{24684084} * 1024);
  EXPECT_EQ(sysfs::KeyValue(text, "total_inactive_file"), 4096u);
  EXPECT_FALSE(sysfs::KeyValue(text, "MemAvailable"));
  EXPECT_TRUE(sysfs::HasKey(text, "MemAvailable"));
  EXPECT_FALSE(sysfs::KeyValue(text, "SwapTotal"));
  EXPECT_FALSE(sysfs::HasKey(text, "SwapTotal"));
  EXPECT_FALSE(sysfs::KeyValue(text, "inactive_file"));  // a prefix of another key is not a key
}

TEST(Sysfs, JoinPrefixesOnlyFakeRoots) {
  EXPECT_EQ(sysfs::Join("", "/proc/meminfo"), "/proc/meminfo");
  EXPECT_EQ(sysfs::Join("/", "/proc/meminfo"), "/proc/meminfo");
  EXPECT_EQ(sysfs::Join("/tmp/x/", "/proc/meminfo"), "/tmp/x/proc/meminfo");
}

TEST(MountInfo, FindsV1AndV2HierarchiesWithOptionalFields) {
  const std::string text =
      "600 500 0:120 / / rw,relatime master:300 - overlay overlay rw,lowerdir=/l\n"
      "603 602 0:30 /docker/abc /sys/fs/cgroup/memory ro,relatime master:12 shared:3 - cgroup "
      "cgroup rw,memory\n"
      "604 602 0:29 / /sys/fs/cgroup/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n"
      "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
      "42 31 0:39 / /mnt/with\\040space rw - cgroup2 none rw\n"
      "garbage line\n"
      "1 2 3 4 5 6 7 8\n"
      "\n";
  std::vector<CgroupMount> mounts = ParseCgroupMounts(text);
  ASSERT_EQ(mounts.size(), 4u);
  EXPECT_EQ(mounts[0].version, 1);
  EXPECT_EQ(mounts[0].mount_root, "/docker/abc");
  EXPECT_EQ(mounts[0].mountpoint, "/sys/fs/cgroup/memory");
  EXPECT_EQ(mounts[0].controllers, (std::vector<std::string>{"rw", "memory"}));
  EXPECT_EQ(mounts[1].controllers, (std::vector<std::string>{"rw", "cpu", "cpuacct"}));
  EXPECT_EQ(mounts[2].version, 2);
  EXPECT_EQ(mounts[3].mountpoint, "/mnt/with space");
}

TEST(ProcCgroup, ParsesV1ControllerListsAndTheV2Line) {
  std::vector<CgroupMembership> m = ParseProcCgroup(
      "12:memory:/docker/abc\n5:cpu,cpuacct:/\n1:name=systemd:/x\n0::/user.slice/a b\nbad\n");
  ASSERT_EQ(m.size(), 4u);
  EXPECT_EQ(m[0].version, 1);
  EXPECT_EQ(m[0].controllers, (std::vector<std::string>{"memory"}));
  EXPECT_EQ(m[0].path, "/docker/abc");
  EXPECT_EQ(m[1].controllers, (std::vector<std::string>{"cpu", "cpuacct"}));
  EXPECT_EQ(m[3].version, 2);
  EXPECT_EQ(m[3].path, "/user.slice/a b");
}

TEST(CpuList, CountsRangesAndRejectsGarbage) {
  EXPECT_EQ(CountCpuList("0-3,8,10-11"), 7);
  EXPECT_EQ(CountCpuList("5\n"), 1);
  EXPECT_FALSE(CountCpuList(""));
  EXPECT_FALSE(CountCpuList("3-1"));
  EXPECT_FALSE(CountCpuList("a-b"));
  EXPECT_FALSE(CountCpuList("0,,1"));
}

}  // namespace
}  // namespace snug::hw
