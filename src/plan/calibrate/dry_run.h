// llama.cpp's own account of what it would allocate: the model is loaded with no_alloc (no
// weights read, no buffers allocated) and contexts are created on it, exactly as
// common/fit.cpp does for `--fit`; llama_get_memory_breakdown then reports model / context /
// compute bytes per buffer type. The ground truth the analytic planner is calibrated against.
// The only planner code that links libllama (the library snug_plan_calibrate).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/status.h"
#include "plan/estimate.h"

namespace snug::plan::calibrate {

struct BufferUsage {
  std::string buffer_type;  // "CPU", "CPU_REPACK", "CPU_Mapped", "CUDA0", ...
  bool host = false;
  uint64_t model_bytes = 0;
  uint64_t context_bytes = 0;  // KV cache (and recurrent state)
  uint64_t compute_bytes = 0;  // graph scheduler buffer
};

// One accelerator's share, summed over its buffer types as common/fit.cpp does (every non-host
// buffer type of that ggml device). Host buffers (CPU, CPU_REPACK, CUDA_Host pinned memory) are
// in DryRun's host totals instead.
struct DeviceUsage {
  std::string name;  // ggml device name: "CUDA0"
  uint64_t model_bytes = 0;
  uint64_t context_bytes = 0;
  uint64_t compute_bytes = 0;
};

struct DryRun {
  std::vector<BufferUsage> buffers;
  std::vector<DeviceUsage> devices;  // accelerators llama.cpp placed something on
  // Host totals, as common/fit.cpp sums them (every host buffer type together).
  uint64_t model_bytes = 0;
  uint64_t context_bytes = 0;
  uint64_t compute_bytes = 0;
  uint64_t repack_bytes = 0;  // model bytes in CPU_REPACK
  uint32_t n_ctx = 0;         // llama_n_ctx after llama.cpp's padding
};

// One model loaded without weights; contexts are created and freed per Run.
class DryRunner {
 public:
  ~DryRunner();
  DryRunner(const DryRunner&) = delete;
  DryRunner& operator=(const DryRunner&) = delete;

  // Loads `path` with no_alloc and `n_gpu_layers` offloaded (layer placement is a model
  // parameter, so one runner serves one offload). Silences llama.cpp's log unless `verbose`.
  static Result<std::unique_ptr<DryRunner>> Open(const std::string& path, bool verbose = false,
                                                 int n_gpu_layers = 0);

  // Creates a context with the settings and reports llama.cpp's breakdown. The settings' offload
  // (Settings::NGpuLayers) must be the runner's.
  Result<DryRun> Run(const Settings& settings);

 private:
  DryRunner() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// A real load, for what the device really gives up: weights read, buffers allocated, a prompt of
// `n_prompt` tokens decoded then `n_gen` single tokens (the graphs a generation runs).
struct LoadMeasure {
  struct Device {
    std::string name;
    uint64_t total_bytes = 0;
    uint64_t free_before = 0;  // after backend init (CUDA context up), before the model
    uint64_t free_after = 0;   // after the generation, model and context still loaded
    uint64_t taken_bytes = 0;  // free_before - free_after: buffers + pools + cuBLAS + kernels
    // llama.cpp's own breakdown of the allocated buffers (as DryRun, allocated for real).
    uint64_t model_bytes = 0;
    uint64_t context_bytes = 0;
    uint64_t compute_bytes = 0;
  };
  std::vector<Device> devices;  // every non-CPU ggml device, placed on or not
  double load_seconds = 0;
};

// Loads `path` with the settings' offload and context, decodes, measures, frees everything.
Result<LoadMeasure> MeasureLoad(const std::string& path, const Settings& settings, int n_prompt,
                                int n_gen, bool verbose = false);

}  // namespace snug::plan::calibrate
