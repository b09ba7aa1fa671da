// `snug worker`: lends this host's memory and compute to another snug over ggml-rpc (llama.cpp's
// RPC backend), serving ggml_backend_rpc_start_server with the devices llama.cpp's rpc-server
// would lend. What it reports through ggml-rpc's device memory query is snug's budget, not the
// host's free RAM: for the CPU, free = the budget (cgroup limit, MemAvailable, --memory-limit, less
// headroom; re-read at most every 100 ms) less what this worker holds, total = the budget before
// headroom; for a GPU, the driver's free memory less hw::DeviceHeadroom.
//
// ggml-rpc has no authentication or encryption: whoever reaches the port can read and write the
// worker's buffers and run compute on it. Callers keep it on loopback unless told otherwise.
#pragma once

#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/status.h"
#include "hw/budget.h"
#include "hw/detect.h"
#include "hw/worker_status.h"

namespace snug::engine {

class LentDevice;

struct RpcWorkerOptions {
  std::string host = "127.0.0.1";  // IPv4 address (ggml-rpc's server binds IPv4 only)
  int port = 50052;
  // --memory-limit, --headroom, a fake root for tests. Devices are never probed through it: the
  // lent devices report their own memory.
  hw::BudgetOptions budget;
  int threads = 0;        // compute threads; 0 = hw::ProbeHost's recommended_threads
  std::string cache_dir;  // ggml-rpc's tensor cache (rpc-server --cache); "" = none
  std::string version;    // snug's version, for the status
};

class RpcWorker {
 public:
  // Picks the devices to lend as llama.cpp's rpc-server does (every GPU, else the CPU), reads the
  // budget once and checks that host:port can be listened on. InvalidArgument for a host that is
  // not an IPv4 address, Unavailable when the port is taken, the budget's error when it cannot be
  // read.
  static Result<std::unique_ptr<RpcWorker>> Create(const RpcWorkerOptions& options);
  ~RpcWorker();
  RpcWorker(const RpcWorker&) = delete;
  RpcWorker& operator=(const RpcWorker&) = delete;

  // Serves ggml-rpc clients, one connection at a time, until the process ends. Returns only when
  // ggml-rpc could not start serving (Unavailable).
  Status Serve();

  // Whether Serve's socket is listening yet.
  bool Listening() const;

  // What the status endpoint shows now. Thread-safe. allocated_bytes counts the CPU device's live
  // buffers exactly (its buffer type is wrapped); GPU buffers are not counted (their backends
  // recognise buffers by their interface, which a wrapper would change), and show in the GPU's
  // free memory instead. busy: a client connection is being served now.
  hw::WorkerStatus Snapshot() const;

  const std::string& endpoint() const { return endpoint_; }
  int threads() const { return threads_; }

 private:
  struct BudgetNow {
    Status status;
    hw::Budget budget;
    uint64_t resident = 0;  // this process's anonymous memory (RssAnon + RssShmem)
    std::chrono::steady_clock::time_point at;
  };

  explicit RpcWorker(const RpcWorkerOptions& options);
  // The budget as of at most 100 ms ago (the memory query is asked per client request).
  BudgetNow CurrentBudget() const;
  BudgetNow ReadBudget() const;
  // What this worker holds: the larger of its anonymous memory and its start-up baseline plus
  // the live client buffers (counted now, not cached).
  uint64_t Held(const BudgetNow& now) const;
  void CpuMemory(size_t* free, size_t* total) const;
  uint64_t AllocatedBytes() const;

  RpcWorkerOptions options_;
  std::string endpoint_;
  int threads_ = 1;
  uint64_t baseline_bytes_ = 0;  // anonymous memory at start-up, before any client
  std::vector<std::unique_ptr<LentDevice>> devices_;
  mutable std::mutex budget_mutex_;
  mutable BudgetNow cached_;
};

}  // namespace snug::engine
