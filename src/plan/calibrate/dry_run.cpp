#include "plan/calibrate/dry_run.h"

#include <fmt/format.h>
#include <ggml-backend.h>
#include <llama-ext.h>
#include <llama.h>

#include <mutex>

namespace snug::plan::calibrate {
namespace {

void QuietLog(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) fmt::print(stderr, "llama.cpp: {}", text);
}

void InitBackendOnce() {
  static std::once_flag once;
  std::call_once(once, [] { llama_backend_init(); });
}

}  // namespace

struct DryRunner::Impl {
  llama_model* model = nullptr;
};

DryRunner::~DryRunner() {
  if (impl_ && impl_->model) llama_model_free(impl_->model);
}

Result<std::unique_ptr<DryRunner>> DryRunner::Open(const std::string& path, bool verbose) {
  InitBackendOnce();
  if (!verbose) llama_log_set(QuietLog, nullptr);
  llama_model_params mp = llama_model_default_params();
  mp.no_alloc = true;
  // common/fit.cpp: no weights are read, so no mapping either.
  mp.load_mode = LLAMA_LOAD_MODE_NONE;
  mp.n_gpu_layers = 0;
  llama_model* model = llama_model_load_from_file(path.c_str(), mp);
  if (model == nullptr) {
    return Status::IoError(fmt::format("llama.cpp could not load {} (dry run)", path));
  }
  std::unique_ptr<DryRunner> runner(new DryRunner());
  runner->impl_ = std::make_unique<Impl>();
  runner->impl_->model = model;
  return runner;
}

Result<DryRun> DryRunner::Run(const Settings& s) {
  if (!s.devices.empty()) {
    return Status::InvalidArgument("the dry run is CPU only: settings must not place layers");
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = s.LlamaNCtx();
  cp.n_seq_max = s.n_parallel;
  cp.n_batch = s.n_batch;
  cp.n_ubatch = s.n_ubatch;
  cp.type_k = static_cast<ggml_type>(KvGgmlType(s.kv_type));
  cp.type_v = static_cast<ggml_type>(KvGgmlType(s.kv_type));
  cp.flash_attn_type =
      s.flash_attn ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
  cp.kv_unified = s.kv_unified;
  cp.swa_full = s.swa_full;
  cp.n_threads = 1;
  cp.n_threads_batch = 1;

  llama_context* ctx = llama_init_from_model(impl_->model, cp);
  if (ctx == nullptr) {
    return Status::Internal(
        fmt::format("llama.cpp refused a context with n_ctx {} (dry run)", cp.n_ctx));
  }
  DryRun out;
  out.n_ctx = llama_n_ctx(ctx);
  for (const auto& [buft, mb] : llama_get_memory_breakdown(ctx)) {
    BufferUsage u;
    u.buffer_type = ggml_backend_buft_name(buft);
    // CPU_REPACK reports is_host = false (its layout is not plain), but it is host memory: count
    // every buffer type of the CPU device as host.
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    u.host = ggml_backend_buft_is_host(buft) ||
             (dev != nullptr && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU);
    u.model_bytes = mb.model;
    u.context_bytes = mb.context;
    u.compute_bytes = mb.compute;
    if (u.host) {
      out.model_bytes += mb.model;
      out.context_bytes += mb.context;
      out.compute_bytes += mb.compute;
    }
    if (u.buffer_type == "CPU_REPACK") out.repack_bytes += mb.model;
    out.buffers.push_back(std::move(u));
  }
  llama_free(ctx);
  return out;
}

}  // namespace snug::plan::calibrate
