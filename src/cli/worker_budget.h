// --worker HOST:PORT on plan, run and serve: the workers are probed and their devices added to
// the budget, where the planner places layers on them when the model does not fit here.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "hw/budget.h"
#include "plan/estimate.h"

namespace snug::cli {

enum class WorkerUse {
  kPlan,   // only asks: a worker busy with another client is listed as it is
  kLoad,   // will connect: a busy worker is an error (ggml-rpc serves one client at a time, so
           // loading would wait for the other client to leave)
  kServe,  // as kLoad, but busy with this process (another model's layers) is fine; a worker
           // this process lost is an error
};

// Probes the workers the flags name (or SNUG_WORKERS) and adds them to `budget`. Does nothing
// when there are none. Errors name the worker (unreachable, wrong protocol, busy when loading).
Status AddWorkers(const std::vector<std::string>& flags, WorkerUse use, hw::Budget* budget);

// " (worker X was lost ... restart snug serve ...)" when serve left a lost worker out; "" else.
std::string LostWorkersNote(const std::vector<std::string>& flags);

// The engine's device list for a placement across workers: each device's layers, the output
// position on the last. Empty when no worker is used (llama.cpp then splits n_gpu_layers over
// this machine's accelerators itself).
std::vector<engine::DeviceSlice> DeviceSlicesFor(const plan::Settings& settings);

// "5 here, 14 on 127.0.0.1:50052, 9 and the output on 127.0.0.1:50062"; "" without workers.
std::string HostSplitText(const plan::Settings& settings, uint32_t n_layer);

}  // namespace snug::cli
