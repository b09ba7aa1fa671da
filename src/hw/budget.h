// The memory budget snug plans against: what this machine (or a what-if profile) can really give,
// each figure with where it came from. Produced by hw::DetectBudget / hw::ProfileBudget, consumed
// by the planner. Plain data: no I/O here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace snug::hw {

// One accelerator (or the CPU "device" when listed). Bytes are physical memory.
struct Device {
  std::string name;         // "CUDA0", "Metal", "Vulkan0"
  std::string description;  // "NVIDIA GeForce RTX 4090", "Apple M2"
  std::string backend;      // "CUDA", "Metal", "Vulkan", "CPU"
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0;
  // Shares memory with the host (Apple Silicon, integrated GPUs): its memory and the host budget
  // are one pool and must never be counted twice.
  bool unified = false;
  uint64_t budget_bytes = 0;  // usable by snug after headroom
  std::string source;         // "ggml backend (free memory)", "Metal working set limit", "profile"
};

struct Budget {
  // Usable host memory after headroom: what the planner may fill.
  uint64_t host_bytes = 0;
  // The same before headroom, and the headroom itself (host_bytes = host_raw_bytes - headroom).
  uint64_t host_raw_bytes = 0;
  uint64_t headroom_bytes = 0;
  // One of "cgroup", "meminfo", "override", "profile" (the JSON contract in SPEC.md).
  std::string source;
  // A sentence naming the figure: "cgroup v1 limit 6.0 GiB (/sys/fs/cgroup/memory/x), 5.7 GiB
  // free".
  std::string detail;
  std::vector<Device> devices;
};

// Headroom policy (SPEC.md "Budget"): 10% of the raw budget, at least 256 MiB, at most 1 GiB;
// never more than the raw budget itself.
uint64_t DefaultHeadroom(uint64_t raw_bytes);

}  // namespace snug::hw
