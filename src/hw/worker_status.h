// What `snug worker` says about itself at http://HOST:STATUSPORT/snug/worker: its budget, the
// devices it lends with their free memory, what it holds for clients and whether one is
// connected. The worker (engine::RpcWorker, cli) writes it and hw::ProbeWorkers reads it, so both
// sides share this one definition of the JSON.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace snug::hw {

// The status URL's path; the status port is the RPC port + 1 unless --status-port says otherwise
// (a probe only knows the RPC endpoint, so it asks port + 1).
inline constexpr const char* kWorkerStatusPath = "/snug/worker";
int WorkerStatusPort(int rpc_port);

struct WorkerDeviceStatus {
  uint32_t index = 0;       // the device's index in ggml-rpc requests
  std::string name;         // "CPU", "CUDA0"
  std::string description;  // "Intel(R) Xeon(R) ...", "NVIDIA GeForce RTX 4090"
  std::string backend;      // "CPU", "CUDA"
  // What the worker answers to ggml-rpc's GET_DEVICE_MEMORY: for the CPU its budget less what it
  // holds, for a GPU the driver's free memory less DeviceHeadroom.
  uint64_t free_bytes = 0;
  uint64_t total_bytes = 0;
};

struct WorkerStatus {
  std::string version;   // snug version, "0.1.0"
  std::string protocol;  // ggml-rpc protocol, "6.0.0"
  std::string endpoint;  // the RPC endpoint it serves, "127.0.0.1:50052"
  // The worker's host budget (hw::Budget's fields, devices aside).
  uint64_t host_bytes = 0;
  uint64_t host_raw_bytes = 0;
  uint64_t headroom_bytes = 0;
  std::string source;  // "cgroup", "meminfo", "override"
  std::string detail;
  std::vector<WorkerDeviceStatus> devices;
  uint64_t allocated_bytes = 0;  // buffers live for the client now (see engine/rpc_worker.h)
  bool busy = false;             // a client is connected (ggml-rpc serves one at a time)
};

// {"snug_worker": true, "version", "protocol", "endpoint",
//  "budget": {"host_bytes", "host_raw_bytes", "headroom_bytes", "source", "detail"},
//  "devices": [{"index", "name", "description", "backend", "free_bytes", "total_bytes"}],
//  "allocated_bytes", "busy"}
nlohmann::json WorkerStatusToJson(const WorkerStatus& status);

// Parses that JSON. Corrupt when it is not a snug worker's status (not JSON, no "snug_worker":
// true, a field missing or of the wrong type).
Result<WorkerStatus> ParseWorkerStatus(const std::string& body);

}  // namespace snug::hw
