#include "hw/cpu.h"

#include <fmt/format.h>
#include <sched.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <utility>

#include "hw/cgroup.h"
#include "hw/sysfs.h"

namespace snug::hw {
namespace {

bool IsRealRoot(const std::string& root) {
  return root.empty() || root == "/";
}

// cpuinfo flag names -> the names we report (ARM "Features" use asimd* spellings).
const std::vector<std::pair<std::string, std::string>>& FeatureMap() {
  static const std::vector<std::pair<std::string, std::string>> kMap = {
      {"avx", "avx"},
      {"avx2", "avx2"},
      {"fma", "fma"},
      {"f16c", "f16c"},
      {"avx512f", "avx512f"},
      {"avx512bw", "avx512bw"},
      {"avx512vl", "avx512vl"},
      {"avx512_vnni", "avx512_vnni"},
      {"avx512_bf16", "avx512_bf16"},
      {"amx_tile", "amx_tile"},
      {"asimd", "neon"},
      {"asimddp", "dotprod"},
      {"i8mm", "i8mm"},
      {"sve", "sve"},
  };
  return kMap;
}

std::string ValueAfterColon(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return "";
  return std::string(sysfs::Trim(line.substr(colon + 1)));
}

std::string KeyBeforeColon(std::string_view line) {
  size_t colon = line.find(':');
  if (colon == std::string_view::npos) return "";
  return std::string(sysfs::Trim(line.substr(0, colon)));
}

void ParseCpuinfo(const std::string& text, CpuInfo* cpu) {
  std::set<std::pair<std::string, std::string>> cores;  // (physical id, core id)
  std::set<std::string> flags;
  int processors = 0;
  std::string physical_id;
  for (std::string_view line : sysfs::Split(text, '\n')) {
    std::string key = KeyBeforeColon(line);
    if (key.empty()) continue;
    std::string value = ValueAfterColon(line);
    if (key == "processor") {
      ++processors;
      physical_id.clear();
    } else if ((key == "model name" || key == "Model" || key == "cpu model") &&
               cpu->model.empty()) {
      cpu->model = value;
    } else if (key == "physical id") {
      physical_id = value;
    } else if (key == "core id") {
      cores.emplace(physical_id, value);
    } else if ((key == "flags" || key == "Features") && flags.empty()) {
      for (std::string_view f : sysfs::Split(value, ' '))
        if (!f.empty()) flags.emplace(f);
    }
  }
  cpu->logical_cores = processors;
  cpu->physical_cores = cores.empty() ? processors : static_cast<int>(cores.size());
  for (const auto& [flag, name] : FeatureMap())
    if (flags.count(flag) != 0) cpu->features.push_back(name);
}

void ProbeQuota(const std::string& root, CpuInfo* cpu, std::vector<std::string>* notes) {
  CgroupLocation loc = LocateCgroup(root, "cpu", notes);
  if (loc.version == 0) return;
  // The tightest quota from our cgroup up to the mount root applies.
  std::string dir = loc.dir;
  while (true) {
    std::optional<double> quota;
    std::string file;
    if (loc.version == 1) {
      file = dir + "/cpu.cfs_quota_us";
      sysfs::NumberFile q = sysfs::ReadNumberFile(file);
      sysfs::NumberFile p = sysfs::ReadNumberFile(dir + "/cpu.cfs_period_us");
      if (q.kind == sysfs::NumberFile::Kind::kValue && p.kind == sysfs::NumberFile::Kind::kValue &&
          p.value > 0)
        quota = static_cast<double>(q.value) / static_cast<double>(p.value);
      else if (q.kind == sysfs::NumberFile::Kind::kGarbage)
        notes->push_back(fmt::format("ignored {}: \"{}\" is not a quota", file, q.text));
    } else {
      file = dir + "/cpu.max";
      if (std::optional<std::string> text = sysfs::ReadFile(file)) {
        std::vector<std::string_view> parts = sysfs::Split(sysfs::Trim(*text), ' ');
        std::optional<uint64_t> q = parts.size() == 2 ? sysfs::ParseU64(parts[0]) : std::nullopt;
        std::optional<uint64_t> p = parts.size() == 2 ? sysfs::ParseU64(parts[1]) : std::nullopt;
        if (q && p && *p > 0)
          quota = static_cast<double>(*q) / static_cast<double>(*p);
        else if (parts.empty() || parts[0] != "max")
          notes->push_back(
              fmt::format("ignored {}: \"{}\" is not \"QUOTA PERIOD\"", file, sysfs::Trim(*text)));
      }
    }
    if (quota && (!cpu->quota_cpus || *quota < *cpu->quota_cpus)) {
      cpu->quota_cpus = quota;
      cpu->quota_source = file;
    }
    if (dir.size() <= loc.mount_dir.size()) break;
    size_t slash = dir.find_last_of('/');
    if (slash == std::string::npos || slash < loc.mount_dir.size()) break;
    dir = dir.substr(0, slash);
  }
}

void ProbeCpuset(const std::string& root, CpuInfo* cpu, std::vector<std::string>* notes) {
  CgroupLocation loc = LocateCgroup(root, "cpuset", notes);
  if (loc.version != 0) {
    const char* names[] = {"cpuset.effective_cpus", "cpuset.cpus.effective", "cpuset.cpus"};
    for (const char* name : names) {
      std::optional<std::string> text = sysfs::ReadFile(loc.dir + "/" + name);
      if (!text || sysfs::Trim(*text).empty()) continue;
      std::string list(sysfs::Trim(*text));
      if (std::optional<int> count = CountCpuList(list)) {
        cpu->cpuset = list;
        cpu->usable_cpus = *count;
      } else {
        notes->push_back(
            fmt::format("ignored {}/{}: \"{}\" is not a cpu list", loc.dir, name, list));
      }
      break;
    }
  }
  if (IsRealRoot(root)) {
    // The affinity mask is what the scheduler enforces (cpuset, taskset, numactl alike).
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      int count = CPU_COUNT(&set);
      if (count > 0 && (cpu->usable_cpus == 0 || count < cpu->usable_cpus)) {
        cpu->usable_cpus = count;
        if (cpu->cpuset.empty()) cpu->cpuset = fmt::format("{} cpus (affinity)", count);
      }
    }
  }
}

}  // namespace

std::optional<int> CountCpuList(const std::string& list) {
  int count = 0;
  std::string_view trimmed = sysfs::Trim(list);
  if (trimmed.empty()) return std::nullopt;
  for (std::string_view part : sysfs::Split(trimmed, ',')) {
    size_t dash = part.find('-');
    if (dash == std::string_view::npos) {
      if (!sysfs::ParseU64(part)) return std::nullopt;
      ++count;
      continue;
    }
    std::optional<uint64_t> lo = sysfs::ParseU64(part.substr(0, dash));
    std::optional<uint64_t> hi = sysfs::ParseU64(part.substr(dash + 1));
    if (!lo || !hi || *hi < *lo || *hi - *lo > 65536) return std::nullopt;
    count += static_cast<int>(*hi - *lo + 1);
  }
  return count;
}

CpuInfo ProbeCpu(const std::string& root, std::vector<std::string>* notes) {
  CpuInfo cpu;
  const std::string path = sysfs::Join(root, "/proc/cpuinfo");
  if (std::optional<std::string> text = sysfs::ReadFile(path)) {
    ParseCpuinfo(*text, &cpu);
  } else {
    notes->push_back(fmt::format("cannot read {}: CPU model and features unknown", path));
  }
  ProbeCpuset(root, &cpu, notes);
  ProbeQuota(root, &cpu, notes);

  int threads = cpu.physical_cores > 0 ? cpu.physical_cores : 1;
  if (cpu.usable_cpus > 0) threads = std::min(threads, cpu.usable_cpus);
  if (cpu.quota_cpus)
    threads = std::min(threads, static_cast<int>(std::ceil(*cpu.quota_cpus - 1e-9)));
  cpu.recommended_threads = std::max(threads, 1);
  return cpu;
}

}  // namespace snug::hw
