// Finding this process's cgroup and reading its memory limits (v1 and v2).
//
// How the cgroup is found: /proc/self/cgroup names the path inside each hierarchy; the mount
// table (/proc/self/mountinfo) says where that hierarchy is mounted and which part of it
// (field 4, the mount root: "/" normally, "/docker/<id>" in a v1 container without cgroupns).
// The directory is mountpoint + (path - mount root). Inside a container with a cgroup namespace
// the path may not exist under the mount; then the mount root itself is our cgroup.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace snug::hw {

// One line of /proc/self/mountinfo that mounts a cgroup hierarchy.
struct CgroupMount {
  int version = 0;                       // 1 or 2
  std::string mount_root;                // field 4: the hierarchy path mounted here
  std::string mountpoint;                // field 5, octal escapes (\040) decoded
  std::vector<std::string> controllers;  // v1: from the super options ("memory", "cpu", ...)
};
std::vector<CgroupMount> ParseCgroupMounts(std::string_view mountinfo);

// One line of /proc/self/cgroup: "4:memory:/a/b" (v1) or "0::/a/b" (v2, no controllers).
struct CgroupMembership {
  int version = 0;
  std::vector<std::string> controllers;
  std::string path;
};
std::vector<CgroupMembership> ParseProcCgroup(std::string_view text);

// Where this process's cgroup for a controller lives on disk.
struct CgroupLocation {
  int version = 0;        // 0 = the controller is not mounted / not enabled
  std::string dir;        // our cgroup directory (under the probing root)
  std::string mount_dir;  // the mountpoint (under the probing root): walks stop here
};

// Locates the cgroup of `controller` ("memory", "cpu", "cpuset"): a v1 hierarchy carrying it
// wins; else the v2 unified hierarchy if the controller is enabled there. Reasons for fallbacks
// are appended to `notes`.
CgroupLocation LocateCgroup(const std::string& root, const std::string& controller,
                            std::vector<std::string>* notes);

// One cgroup on the way from ours up to the mount root.
struct CgroupLevel {
  std::string dir;
  std::optional<uint64_t> limit;  // nullopt = unlimited
  std::string limit_file;         // the file the limit came from (memory.max or memory.high)
  std::optional<uint64_t> usage;  // memory.usage_in_bytes / memory.current
  // Inactive file pages in `usage` (memory.stat total_inactive_file (v1) / inactive_file (v2)):
  // page cache the kernel reclaims before it OOM-kills, so it does not count as used by others.
  // This is the working-set definition Docker (`docker stats`) and Kubernetes use. Active file
  // pages stay counted as used: they may be another process's hot mmap'd weights.
  uint64_t reclaimable = 0;
};

struct CgroupMemory {
  int version = 0;  // 0 = no memory controller found: no container limit applies
  std::string dir;
  std::string mount_dir;
  std::vector<CgroupLevel> levels;  // ours first, then each ancestor up to the mount root
  // v1: memory.memsw.limit_in_bytes (memory + swap); v2: memory.swap.max. Reported, not used for
  // the budget: planning into swap is planning to thrash.
  std::optional<uint64_t> swap_limit;
  // v1 memory.max_usage_in_bytes / v2 memory.peak of our cgroup, when readable.
  std::optional<uint64_t> peak_usage;
  // Non-empty when a limit or usage file held garbage: the budget cannot be trusted.
  std::string error;
};

// Reads the memory controller's files for our cgroup and its ancestors.
CgroupMemory ProbeCgroupMemory(const std::string& root, std::vector<std::string>* notes);

}  // namespace snug::hw
