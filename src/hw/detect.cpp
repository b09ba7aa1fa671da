#include "hw/detect.h"

#include "core/log.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>

#include "config/env.h"
#include "core/size.h"
#include "hw/devices.h"
#include "hw/profiles.h"
#include "hw/sysfs.h"

#ifdef __APPLE__
#include <mach/mach.h>
#include <sys/sysctl.h>
#endif

namespace snug::hw {
namespace {

bool IsRealRoot(const std::string& root) {
  return root.empty() || root == "/";
}

uint64_t SaturatingSub(uint64_t a, uint64_t b) {
  return a > b ? a - b : 0;
}

#ifdef __APPLE__
// macOS has no /proc: memory comes from sysctl and the Mach VM statistics. "Available" is free +
// inactive + purgeable + speculative pages, what the kernel hands out without compressing or
// swapping (Activity Monitor's "memory pressure" green zone). Compiled on macOS only.
Status ProbeDarwinMemory(HostInfo* host) {
  uint64_t memsize = 0;
  size_t size = sizeof(memsize);
  if (sysctlbyname("hw.memsize", &memsize, &size, nullptr, 0) != 0)
    return Status::IoError("cannot read hw.memsize via sysctl");
  host->mem.total = memsize;
  host->mem.source = "sysctl hw.memsize + host_statistics64";
  vm_statistics64_data_t vm{};
  mach_msg_type_number_t count = HOST_VM_INFO64_COUNT;
  vm_size_t page = 0;
  host_page_size(mach_host_self(), &page);
  if (host_statistics64(mach_host_self(), HOST_VM_INFO64, reinterpret_cast<host_info64_t>(&vm),
                        &count) == KERN_SUCCESS) {
    host->mem.free = uint64_t{vm.free_count} * page;
    host->mem.available =
        uint64_t{vm.free_count + vm.inactive_count + vm.purgeable_count + vm.speculative_count} *
        page;
  } else {
    host->mem.available = memsize / 2;
    host->mem.available_estimated = true;
    host->notes.push_back("host_statistics64 failed: assuming half of RAM is available");
  }
  xsw_usage swap{};
  size = sizeof(swap);
  if (sysctlbyname("vm.swapusage", &swap, &size, nullptr, 0) == 0) {
    host->mem.swap_total = swap.xsu_total;
    host->mem.swap_free = swap.xsu_avail;
  }
  mach_task_basic_info_data_t info{};
  mach_msg_type_number_t info_count = MACH_TASK_BASIC_INFO_COUNT;
  if (task_info(mach_task_self(), MACH_TASK_BASIC_INFO, reinterpret_cast<task_info_t>(&info),
                &info_count) == KERN_SUCCESS)
    host->self_rss = host->self_unreclaimable = info.resident_size;
  char brand[256] = {};
  size = sizeof(brand);
  if (sysctlbyname("machdep.cpu.brand_string", brand, &size, nullptr, 0) == 0)
    host->cpu.model = brand;
  int cores = 0;
  size = sizeof(cores);
  if (sysctlbyname("hw.physicalcpu", &cores, &size, nullptr, 0) == 0)
    host->cpu.physical_cores = cores;
  size = sizeof(cores);
  if (sysctlbyname("hw.logicalcpu", &cores, &size, nullptr, 0) == 0)
    host->cpu.logical_cores = cores;
  int arm64 = 0;
  size = sizeof(arm64);
  if (sysctlbyname("hw.optional.arm64", &arm64, &size, nullptr, 0) == 0 && arm64 != 0)
    host->cpu.features = {"neon", "dotprod"};
  host->cpu.recommended_threads = std::max(host->cpu.physical_cores, 1);
  return Status::Ok();
}
#endif

Status ReadMeminfo(const std::string& root, MemInfo* mem, std::vector<std::string>* notes) {
  const std::string path = sysfs::Join(root, "/proc/meminfo");
  std::optional<std::string> text = sysfs::ReadFile(path);
  if (!text)
    return Status::IoError(fmt::format(
        "cannot read {}: host memory is unknown (pass --memory-limit SIZE to plan anyway)", path));
  mem->source = path;
  auto required = [&](const char* key, uint64_t* out) -> Status {
    std::optional<uint64_t> v = sysfs::KeyValue(*text, key);
    if (!v) {
      return Status::Corrupt(fmt::format(
          "{} has {} {}: host memory is unknown (pass --memory-limit SIZE to plan anyway)", path,
          sysfs::HasKey(*text, key) ? "an unreadable" : "no", key));
    }
    *out = *v;
    return Status::Ok();
  };
  SNUG_RETURN_IF_ERROR(required("MemTotal", &mem->total));
  SNUG_RETURN_IF_ERROR(required("MemFree", &mem->free));
  if (sysfs::HasKey(*text, "MemAvailable")) {
    SNUG_RETURN_IF_ERROR(required("MemAvailable", &mem->available));
  } else {
    // Kernels before 3.14 lack MemAvailable; free + buffers + page cache is the classic estimate
    // (optimistic: not all cache is reclaimable).
    mem->available = mem->free + sysfs::KeyValue(*text, "Buffers").value_or(0) +
                     sysfs::KeyValue(*text, "Cached").value_or(0);
    mem->available_estimated = true;
    notes->push_back(
        fmt::format("{} has no MemAvailable: estimated as MemFree + Buffers + Cached", path));
  }
  if (mem->available > mem->total) {
    notes->push_back(fmt::format("{}: MemAvailable exceeds MemTotal; capped at MemTotal", path));
    mem->available = mem->total;
  }
  mem->swap_total = sysfs::KeyValue(*text, "SwapTotal").value_or(0);
  mem->swap_free = sysfs::KeyValue(*text, "SwapFree").value_or(0);
  return Status::Ok();
}

void ReadSelfRss(const std::string& root, HostInfo* host) {
  const std::string path = sysfs::Join(root, "/proc/self/status");
  std::optional<std::string> text = sysfs::ReadFile(path);
  if (!text) {
    host->notes.push_back(fmt::format("cannot read {}: own RSS counted as 0", path));
    return;
  }
  std::optional<uint64_t> rss = sysfs::KeyValue(*text, "VmRSS");
  if (!rss) {
    host->notes.push_back(fmt::format("{} has no readable VmRSS: own RSS counted as 0", path));
    return;
  }
  host->self_rss = *rss;
  std::optional<uint64_t> anon = sysfs::KeyValue(*text, "RssAnon");
  std::optional<uint64_t> shmem = sysfs::KeyValue(*text, "RssShmem");
  host->self_unreclaimable = anon ? std::min(*rss, *anon + shmem.value_or(0)) : *rss;
}

std::string CgroupLimitLabel(int version, const CgroupLevel& level) {
  const std::string& file = level.limit_file;
  if (file.size() >= 11 && file.compare(file.size() - 11, 11, "memory.high") == 0)
    return fmt::format("cgroup v{} memory.high", version);
  return fmt::format("cgroup v{} limit", version);
}

// A unified device draws from the host pool: its budget is its own (free - headroom), never more
// than the host budget. Recomputed from free/total so that a later host override (profile +
// --memory-limit) can raise it again.
void CapUnifiedDevices(Budget* budget) {
  for (Device& d : budget->devices) {
    if (!d.unified) continue;
    d.budget_bytes =
        std::min(SaturatingSub(d.free_bytes, DeviceHeadroom(d.total_bytes)), budget->host_bytes);
  }
}

}  // namespace

Result<HostInfo> ProbeHost(const std::string& root) {
  HostInfo host;
  host.root = IsRealRoot(root) ? "" : root;
#ifdef __APPLE__
  if (IsRealRoot(root)) {
    SNUG_RETURN_IF_ERROR(ProbeDarwinMemory(&host));
    return host;
  }
#endif
  SNUG_RETURN_IF_ERROR(ReadMeminfo(root, &host.mem, &host.notes));
  ReadSelfRss(root, &host);
  host.cgroup = ProbeCgroupMemory(root, &host.notes);
  host.cpu = ProbeCpu(root, &host.notes);
  return host;
}

void ApplyHeadroom(uint64_t raw_bytes, std::optional<uint64_t> headroom, Budget* budget) {
  budget->host_raw_bytes = raw_bytes;
  budget->headroom_bytes = headroom.value_or(DefaultHeadroom(raw_bytes));
  budget->host_bytes = SaturatingSub(raw_bytes, budget->headroom_bytes);
}

Result<Budget> ComputeBudget(const HostInfo& host, std::vector<Device> devices,
                             std::optional<uint64_t> headroom) {
  if (!host.cgroup.error.empty()) {
    return Status::Corrupt(fmt::format(
        "cannot trust the container memory limit: {} (pass --memory-limit SIZE to plan anyway)",
        host.cgroup.error));
  }
  // Memory this process already holds is available to it (it is inside MemAvailable's complement
  // and inside the cgroup's usage), so it is added back on both sides.
  uint64_t raw = std::min(host.mem.available + host.self_unreclaimable, host.mem.total);
  std::string source = "meminfo";
  std::string detail =
      fmt::format("MemAvailable {}{} ({}) + {} held by snug", FormatSize(host.mem.available),
                  host.mem.available_estimated ? " (estimated)" : "", host.mem.source,
                  FormatSize(host.self_unreclaimable));
  const CgroupLevel* loosest_limited = nullptr;
  for (const CgroupLevel& level : host.cgroup.levels) {
    if (!level.limit) continue;
    // Page cache that is inactive is reclaimed before the OOM killer runs (see CgroupLevel);
    // our own RSS is in the usage too and is ours to keep using.
    const uint64_t usage = level.usage.value_or(0);
    const uint64_t others = SaturatingSub(SaturatingSub(usage, level.reclaimable), host.self_rss);
    const uint64_t avail = SaturatingSub(*level.limit, others);
    if (avail < raw) {
      raw = avail;
      source = "cgroup";
      detail = fmt::format("{} {} ({}), {} not used by others",
                           CgroupLimitLabel(host.cgroup.version, level), FormatSize(*level.limit),
                           level.limit_file, FormatSize(avail));
      if (!level.usage) detail += " (usage unreadable: assumed 0)";
    } else if (loosest_limited == nullptr) {
      loosest_limited = &level;
    }
  }
  if (source == "meminfo" && loosest_limited != nullptr) {
    detail += fmt::format("; the {} of {} is not lower",
                          CgroupLimitLabel(host.cgroup.version, *loosest_limited),
                          FormatSize(*loosest_limited->limit));
  }
  Budget budget;
  ApplyHeadroom(raw, headroom, &budget);
  budget.source = source;
  budget.detail = detail;
  budget.devices = std::move(devices);
  CapUnifiedDevices(&budget);
  return budget;
}

Result<BudgetOptions> BudgetOptionsFromFlags(const std::string& memory_limit,
                                             const std::string& headroom,
                                             const std::string& profile,
                                             const std::string& vram_limit) {
  BudgetOptions options;
  if (!memory_limit.empty()) {
    Result<uint64_t> bytes = ParseSize(memory_limit);
    if (!bytes.ok()) return Status::InvalidArgument("--memory-limit: " + bytes.status().message());
    options.memory_limit = *bytes;
  }
  if (!headroom.empty()) {
    Result<uint64_t> bytes = ParseSize(headroom);
    if (!bytes.ok()) return Status::InvalidArgument("--headroom: " + bytes.status().message());
    options.headroom = *bytes;
  }
  if (!profile.empty()) {
    Result<Profile> found = FindProfile(profile);
    if (!found.ok()) return Status::InvalidArgument("--hw: " + found.status().message());
    options.profile = profile;
  }
  if (!vram_limit.empty()) {
    Result<uint64_t> bytes = ParseSize(vram_limit);
    if (!bytes.ok()) return Status::InvalidArgument("--vram-limit: " + bytes.status().message());
    options.vram_limit = *bytes;
  }
  return options;
}

namespace {

Result<Budget> ResolveUncappedBudget(const BudgetOptions& options) {
  const std::string root = options.root.empty() ? env::HostRoot() : options.root;

  std::optional<uint64_t> override_bytes = options.memory_limit;
  std::string override_detail;
  if (override_bytes) {
    override_detail = fmt::format("--memory-limit {}", FormatSize(*override_bytes));
  } else if (std::optional<std::string> text = env::MemoryLimit()) {
    Result<uint64_t> bytes = ParseSize(*text);
    if (!bytes.ok())
      return Status::InvalidArgument("SNUG_MEMORY_LIMIT: " + bytes.status().message());
    override_bytes = *bytes;
    override_detail = fmt::format("SNUG_MEMORY_LIMIT={} ({})", *text, FormatSize(*bytes));
  }

  Budget budget;
  if (!options.profile.empty()) {
    SNUG_ASSIGN_OR_RETURN(Profile profile, FindProfile(options.profile));
    budget = ProfileBudget(profile, options.headroom);
  } else if (options.probe_devices && IsRealRoot(root)) {
    std::vector<std::string> ignored_notes;  // `snug hw` shows them; the budget needs none
    budget.devices = ProbeDevices(&ignored_notes);
  }

  if (override_bytes && options.profile.empty()) {
    // An explicit limit is a what-if below what the machine has, never a way past the container
    // this process runs in: above the cgroup's own limit it would thrash or be OOM-killed.
    if (auto host = ProbeHost(root); host.ok()) {
      auto detected = ComputeBudget(*host, budget.devices, options.headroom);
      if (detected.ok() && detected->source == "cgroup" &&
          detected->host_raw_bytes < *override_bytes) {
        static std::atomic<bool> warned{false};  // serve re-reads the budget before each load
        if (!warned.exchange(true)) {
          spdlog::warn("{} is above this container's memory limit; using the cgroup's figure ({})",
                       override_detail, FormatSize(detected->host_raw_bytes));
        }
        detected->detail = override_detail + " clamped to the container: " + detected->detail;
        return detected;
      }
    }
  }
  if (override_bytes) {
    ApplyHeadroom(*override_bytes, options.headroom, &budget);
    budget.source = "override";
    budget.detail =
        override_detail + (options.profile.empty() ? ", host memory detection skipped"
                                                   : ", devices from profile " + options.profile);
    CapUnifiedDevices(&budget);
    return budget;
  }
  if (!options.profile.empty()) return budget;

  SNUG_ASSIGN_OR_RETURN(HostInfo host, ProbeHost(root));
  return ComputeBudget(host, std::move(budget.devices), options.headroom);
}

}  // namespace

Result<Budget> ResolveBudget(const BudgetOptions& options) {
  SNUG_ASSIGN_OR_RETURN(Budget budget, ResolveUncappedBudget(options));
  if (options.vram_limit) CapDeviceBudgets(*options.vram_limit, "--vram-limit", &budget);
  return budget;
}

}  // namespace snug::hw
