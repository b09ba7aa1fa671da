// CPU facts that decide thread counts and kernel choice: model, cores, SIMD features, and the
// limits a container puts on CPU use (cpuset, CFS quota).
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace snug::hw {

struct CpuInfo {
  std::string model;       // "AMD EPYC", "Apple M2"; empty when unknown
  int logical_cores = 0;   // processors the kernel lists
  int physical_cores = 0;  // distinct (package, core) pairs; = logical when not reported
  // SIMD features llama.cpp's CPU kernels care about, in a fixed order: "avx", "avx2", "fma",
  // "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16", "amx_tile", "neon",
  // "dotprod", "i8mm", "sve".
  std::vector<std::string> features;
  std::string cpuset;   // "0-3,8" from the cpuset cgroup (or affinity), empty when unknown
  int usable_cpus = 0;  // CPUs this process may run on (cpuset / affinity), 0 = unknown
  std::optional<double> quota_cpus;  // CFS quota / period, e.g. 1.5; nullopt = unlimited
  std::string quota_source;          // the file the quota came from
  // min(physical cores, usable cpus, ceil(quota)), at least 1. llama.cpp's default is the
  // physical core count: hyper-threads share the FMA units decode is bound by, and threads beyond
  // a quota or cpuset only queue.
  int recommended_threads = 1;
};

// Probes /proc/cpuinfo and the cpu/cpuset cgroups under `root`. When `root` is the real machine
// the scheduler affinity mask (sched_getaffinity) is used as the cpuset too.
CpuInfo ProbeCpu(const std::string& root, std::vector<std::string>* notes);

// Counts the CPUs in a kernel cpu list ("0-3,8,10-11" -> 7); nullopt when malformed.
std::optional<int> CountCpuList(const std::string& list);

}  // namespace snug::hw
