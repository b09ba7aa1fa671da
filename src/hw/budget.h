// The memory budget snug plans against: what this machine (or a what-if profile) can really give,
// each figure with where it came from. Produced by hw::ResolveBudget (hw/detect.h) or a profile
// (hw/profiles.h), consumed by the planner. Plain data: no I/O here.
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
  //
  // How consumers treat a unified device: `budget_bytes` is only a CAP on what may be placed on
  // the device (e.g. the Metal working set limit), never extra memory. Every byte placed on it is
  // also a host byte: a plan fits when
  //   device_bytes <= device.budget_bytes  AND  host_bytes_used + device_bytes <= Budget.host_bytes
  // For a discrete device (unified = false) the two pools are separate:
  //   device_bytes <= device.budget_bytes  AND  host_bytes_used <= Budget.host_bytes.
  bool unified = false;
  // Usable by snug: free - DeviceHeadroom(total). For a unified device also at most the host
  // budget (it cannot be bigger than the pool it draws from).
  uint64_t budget_bytes = 0;
  std::string source;  // "ggml backend (free memory)", "Metal working set limit", "profile"
  // A device of a remote worker (`snug worker` or llama.cpp's rpc-server, reached over ggml-rpc):
  // its "HOST:PORT" and its index on that worker; "" for this machine's devices. Backend "RPC".
  // Its bytes are the worker's memory: never this host's.
  std::string host;
  uint32_t remote_index = 0;
};

// A worker host lending its memory and compute over ggml-rpc (--worker HOST:PORT). Its devices
// are in Budget::devices with Device::host == endpoint.
struct WorkerHost {
  std::string endpoint;  // "HOST:PORT" as given
  std::string protocol;  // ggml-rpc protocol version it speaks, "6.0.0"
  std::string version;   // snug version of a `snug worker`; "" for a plain rpc-server
  // Where its budget came from: "cgroup", "meminfo", "override" (a snug worker's own detection)
  // or "rpc-server" (a plain rpc-server reports the host's free memory, blind to containers).
  std::string source;
  std::string detail;            // the worker's sentence for that figure
  uint64_t allocated_bytes = 0;  // buffers it holds for clients now (snug workers)
  bool busy = false;             // serving another client (ggml-rpc serves one at a time)
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
  std::vector<WorkerHost> workers;  // empty: this machine alone
};

// Headroom policy (SPEC.md "Budget"): 10% of the raw budget, at least 256 MiB, at most 1 GiB;
// never more than the raw budget itself.
uint64_t DefaultHeadroom(uint64_t raw_bytes);

// Device headroom: 5% of the device's total memory, at least 256 MiB, at most 1 GiB (llama.cpp's
// own fit keeps 1 GiB free per device by default, common/fit.cpp --fit-target). Covers driver
// allocations made after probing (CUDA context, cuBLAS workspace, Metal command buffers).
uint64_t DeviceHeadroom(uint64_t total_bytes);

// --vram-limit: caps every accelerator's budget_bytes at `cap` (never raises one), so a test can
// make a model larger than the device on any GPU. A capped device's source says so; `how` names
// the flag in that sentence.
void CapDeviceBudgets(uint64_t cap, const std::string& how, Budget* budget);

}  // namespace snug::hw
