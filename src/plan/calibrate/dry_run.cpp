#include "plan/calibrate/dry_run.h"

#include <fmt/format.h>
#include <ggml-backend.h>
#include <llama-ext.h>
#include <llama.h>

#include <algorithm>
#include <chrono>
#include <map>
#include <mutex>
#include <vector>

namespace snug::plan::calibrate {
namespace {

void QuietLog(ggml_log_level level, const char* text, void*) {
  if (level == GGML_LOG_LEVEL_ERROR) fmt::print(stderr, "llama.cpp: {}", text);
}

void InitBackendOnce() {
  static std::once_flag once;
  std::call_once(once, [] { llama_backend_init(); });
}

llama_context_params ContextParams(const Settings& s) {
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
  return cp;
}

// CPU_REPACK reports is_host = false (its layout is not plain), but it is host memory: every
// buffer type of the CPU device counts as host. Pinned host buffers (CUDA_Host) are host too.
bool IsHostBuffer(ggml_backend_buffer_type_t buft) {
  ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
  return ggml_backend_buft_is_host(buft) ||
         (dev != nullptr && ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU);
}

// Per accelerator, in registry order, as common/fit.cpp groups them.
std::vector<DeviceUsage> ByDevice(const llama_memory_breakdown& breakdown) {
  std::map<ggml_backend_dev_t, DeviceUsage> by_dev;
  for (const auto& [buft, mb] : breakdown) {
    if (IsHostBuffer(buft)) continue;
    ggml_backend_dev_t dev = ggml_backend_buft_get_device(buft);
    if (dev == nullptr) continue;
    DeviceUsage& u = by_dev[dev];
    u.name = ggml_backend_dev_name(dev);
    u.model_bytes += mb.model;
    u.context_bytes += mb.context;
    u.compute_bytes += mb.compute;
  }
  std::vector<DeviceUsage> out;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    auto it = by_dev.find(ggml_backend_dev_get(i));
    if (it != by_dev.end()) out.push_back(it->second);
  }
  return out;
}

}  // namespace

struct DryRunner::Impl {
  llama_model* model = nullptr;
  int n_gpu_layers = 0;
};

DryRunner::~DryRunner() {
  if (impl_ && impl_->model) llama_model_free(impl_->model);
}

Result<std::unique_ptr<DryRunner>> DryRunner::Open(const std::string& path, bool verbose,
                                                   int n_gpu_layers) {
  InitBackendOnce();
  if (!verbose) llama_log_set(QuietLog, nullptr);
  llama_model_params mp = llama_model_default_params();
  mp.no_alloc = true;
  // common/fit.cpp: no weights are read, so no mapping either.
  mp.load_mode = LLAMA_LOAD_MODE_NONE;
  mp.n_gpu_layers = n_gpu_layers;
  llama_model* model = llama_model_load_from_file(path.c_str(), mp);
  if (model == nullptr) {
    return Status::IoError(fmt::format("llama.cpp could not load {} (dry run)", path));
  }
  std::unique_ptr<DryRunner> runner(new DryRunner());
  runner->impl_ = std::make_unique<Impl>();
  runner->impl_->model = model;
  runner->impl_->n_gpu_layers = n_gpu_layers;
  return runner;
}

Result<DryRun> DryRunner::Run(const Settings& s) {
  if (s.NGpuLayers() != impl_->n_gpu_layers) {
    return Status::InvalidArgument(
        fmt::format("the dry run was opened with {} GPU layers, the settings place {}",
                    impl_->n_gpu_layers, s.NGpuLayers()));
  }
  llama_context_params cp = ContextParams(s);
  cp.n_threads = 1;
  cp.n_threads_batch = 1;

  llama_context* ctx = llama_init_from_model(impl_->model, cp);
  if (ctx == nullptr) {
    return Status::Internal(
        fmt::format("llama.cpp refused a context with n_ctx {} (dry run)", cp.n_ctx));
  }
  DryRun out;
  out.n_ctx = llama_n_ctx(ctx);
  const llama_memory_breakdown breakdown = llama_get_memory_breakdown(ctx);
  for (const auto& [buft, mb] : breakdown) {
    BufferUsage u;
    u.buffer_type = ggml_backend_buft_name(buft);
    u.host = IsHostBuffer(buft);
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
  out.devices = ByDevice(breakdown);
  llama_free(ctx);
  return out;
}

Result<LoadMeasure> MeasureLoad(const std::string& path, const Settings& s, int n_prompt, int n_gen,
                                bool verbose) {
  InitBackendOnce();
  if (!verbose) llama_log_set(QuietLog, nullptr);
  LoadMeasure out;
  std::vector<ggml_backend_dev_t> devs;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) continue;
    LoadMeasure::Device d;
    d.name = ggml_backend_dev_name(dev);
    size_t free = 0, total = 0;
    // ggml-cuda: cudaSetDevice + cudaMemGetInfo; the context this creates is in "before".
    ggml_backend_dev_memory(dev, &free, &total);
    d.total_bytes = total;
    d.free_before = free;
    devs.push_back(dev);
    out.devices.push_back(d);
  }

  const auto t0 = std::chrono::steady_clock::now();
  llama_model_params mp = llama_model_default_params();
  mp.n_gpu_layers = s.NGpuLayers();
  mp.load_mode = LLAMA_LOAD_MODE_MMAP;
  llama_model* model = llama_model_load_from_file(path.c_str(), mp);
  if (model == nullptr) return Status::IoError(fmt::format("llama.cpp could not load {}", path));
  llama_context_params cp = ContextParams(s);
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr) {
    llama_model_free(model);
    return Status::Internal(fmt::format("llama.cpp refused a context with n_ctx {}", cp.n_ctx));
  }
  out.load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  // Token ids only (no tokenizer): any id below n_vocab runs the same graphs.
  const int n_vocab = llama_vocab_n_tokens(llama_model_get_vocab(model));
  std::vector<llama_token> prompt(std::max(1, n_prompt));
  for (size_t i = 0; i < prompt.size(); ++i)
    prompt[i] = static_cast<llama_token>((i * 7919 + 13) % n_vocab);
  Status status;
  for (size_t at = 0; at < prompt.size() && status.ok(); at += s.n_batch) {
    const int n = static_cast<int>(std::min<size_t>(s.n_batch, prompt.size() - at));
    if (llama_decode(ctx, llama_batch_get_one(prompt.data() + at, n)) != 0)
      status = Status::Internal("llama_decode failed on the prompt");
  }
  for (int i = 0; i < n_gen && status.ok(); ++i) {
    llama_token t = static_cast<llama_token>((i * 31 + 7) % n_vocab);
    if (llama_decode(ctx, llama_batch_get_one(&t, 1)) != 0)
      status = Status::Internal("llama_decode failed while generating");
  }
  llama_synchronize(ctx);
  if (status.ok()) {
    for (size_t i = 0; i < devs.size(); ++i) {
      size_t free = 0, total = 0;
      ggml_backend_dev_memory(devs[i], &free, &total);
      out.devices[i].free_after = free;
      out.devices[i].taken_bytes =
          out.devices[i].free_before > free ? out.devices[i].free_before - free : 0;
    }
    for (const DeviceUsage& u : ByDevice(llama_get_memory_breakdown(ctx))) {
      for (auto& d : out.devices) {
        if (d.name != u.name) continue;
        d.model_bytes = u.model_bytes;
        d.context_bytes = u.context_bytes;
        d.compute_bytes = u.compute_bytes;
      }
    }
  }
  llama_free(ctx);
  llama_model_free(model);
  if (!status.ok()) return status;
  return out;
}

}  // namespace snug::plan::calibrate
