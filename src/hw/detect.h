// Detecting how much memory snug may really use here: host RAM, the container (cgroup v1/v2)
// limit, CPU limits and accelerators, resolved into a hw::Budget with sources (SPEC.md "Budget").
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "hw/budget.h"
#include "hw/cgroup.h"
#include "hw/cpu.h"

namespace snug::hw {

// /proc/meminfo, in bytes.
struct MemInfo {
  uint64_t total = 0;
  uint64_t available = 0;  // MemAvailable: what can be allocated without swapping
  uint64_t free = 0;
  uint64_t swap_total = 0;
  uint64_t swap_free = 0;
  // MemAvailable was missing (kernels < 3.14) and estimated as MemFree + Buffers + Cached.
  bool available_estimated = false;
  std::string source;  // the file read ("/proc/meminfo"), or "sysctl" on macOS
};

struct HostInfo {
  std::string root;  // "" = the real machine
  MemInfo mem;
  uint64_t self_rss = 0;  // VmRSS of this process: memory snug already holds counts as available
  // Of that, what MemAvailable does not already count: anonymous and shared memory (RssAnon +
  // RssShmem). Mapped model files are page cache, which MemAvailable includes; adding all of VmRSS
  // would count a loaded model's weights twice. VmRSS where the kernel lacks the split.
  uint64_t self_unreclaimable = 0;
  CgroupMemory cgroup;
  CpuInfo cpu;
  // Things ignored or estimated, each with its reason ("ignored <file>: ...").
  std::vector<std::string> notes;
};

// Reads meminfo, swap, this process's RSS, its memory cgroup (v1/v2, walked up to the mount
// root) and CPU facts under `root` ("" = the real machine, else a fake tree holding proc/ and
// sys/). Fails only when host memory itself is unknowable (no /proc/meminfo or no MemTotal) or
// holds garbage; cgroup garbage is recorded in cgroup.error and turned into an error by
// ComputeBudget, so `snug hw` can still show everything else.
Result<HostInfo> ProbeHost(const std::string& root);

struct BudgetOptions {
  // --memory-limit; when unset ResolveBudget consults SNUG_MEMORY_LIMIT.
  std::optional<uint64_t> memory_limit;
  std::optional<uint64_t> headroom;  // --headroom; default hw::DefaultHeadroom
  // --vram-limit: a cap on each accelerator's budget (real or profile devices), for tests and
  // what-ifs on a GPU larger than the case at hand.
  std::optional<uint64_t> vram_limit;
  std::string profile;  // --hw PROFILE; empty = this machine
  std::string root;     // fake root for /proc and /sys; "" = SNUG_HOST_ROOT or the real machine
  // Ask ggml for accelerators (real machine only: a fake root describes no devices).
  bool probe_devices = true;
};

// Parses the text of the shared fit flags (--memory-limit, --headroom, --hw, --vram-limit) into
// options. Empty strings mean "not given". Errors are InvalidArgument sentences naming the flag.
Result<BudgetOptions> BudgetOptionsFromFlags(const std::string& memory_limit,
                                             const std::string& headroom,
                                             const std::string& profile,
                                             const std::string& vram_limit = "");

// The effective budget per SPEC.md. Precedence for the host figure: --memory-limit, then
// SNUG_MEMORY_LIMIT (source "override"), then --hw PROFILE ("profile"), then detection ("cgroup"
// or "meminfo"). Devices come from the profile when one is given, else from ggml; --vram-limit
// then caps each device's budget.
Result<Budget> ResolveBudget(const BudgetOptions& options);

// Pure part of detection: host = min(MemAvailable + self RSS, for every cgroup level with a
// limit: limit - (usage - reclaimable - self RSS)), minus headroom. Source "cgroup" when a cgroup
// level is the minimum, else "meminfo". Unified devices are capped at the host budget.
// Fails (kCorrupt) when the cgroup files held garbage: a guess could promise memory the container
// does not have.
Result<Budget> ComputeBudget(const HostInfo& host, std::vector<Device> devices,
                             std::optional<uint64_t> headroom);

// Applies the headroom to a raw host figure: fills host_raw_bytes, headroom_bytes, host_bytes.
void ApplyHeadroom(uint64_t raw_bytes, std::optional<uint64_t> headroom, Budget* budget);

}  // namespace snug::hw
