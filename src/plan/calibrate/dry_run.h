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

struct DryRun {
  std::vector<BufferUsage> buffers;
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

  // Loads `path` with no_alloc. Silences llama.cpp's log unless `verbose`.
  static Result<std::unique_ptr<DryRunner>> Open(const std::string& path, bool verbose = false);

  // Creates a context with the settings (CPU only: devices must be empty) and reports
  // llama.cpp's breakdown.
  Result<DryRun> Run(const Settings& settings);

 private:
  DryRunner() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace snug::plan::calibrate
