// The memory model: bytes a llama.cpp process needs for a model at given settings, per device.
// Pure arithmetic over a ModelShape; calibrated against llama.cpp's own no-alloc dry run
// (src/plan/calibrate, tests/plan/dry_run_test.cpp) and measured peaks (bench/plan).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "plan/request.h"
#include "plan/shape.h"

namespace snug::plan {

// One accelerator (or a worker's device) that receives layers. Layers are offloaded from the end
// of the model, as llama.cpp does (llama-model.cpp: i_gpu_start = n_layer + 1 - n_gpu_layers),
// split over the devices in order.
struct DevicePlacement {
  std::string name;
  bool unified = false;  // its memory is the host's (counted in the host total, never twice)
  uint32_t n_layers = 0;
  // A worker's device reached over ggml-rpc ("HOST:PORT" and its index there); "" = local.
  std::string host;
  uint32_t remote_index = 0;
};

// Concrete settings: what the engine passes to llama.cpp.
struct Settings {
  uint32_t n_ctx = 4096;  // per sequence; llama.cpp's n_ctx is n_ctx * n_parallel (LlamaNCtx)
  KvType kv_type = KvType::kF16;
  uint32_t n_parallel = 1;
  uint32_t n_batch = 2048;
  uint32_t n_ubatch = 512;
  bool flash_attn = true;
  // llama_context_params.kv_unified (one KV buffer for all sequences) and swa_full (sliding
  // window layers keep the full context). The fit shares one buffer among several slots except
  // for serve --batch-invariant (a stream per slot); swa_full = false — NOTE
  // llama_context_default_params() says swa_full = true, the engine must set it to false for the
  // window to save memory.
  bool kv_unified = false;
  bool swa_full = false;
  bool constrained_decoding = true;      // plan the grammar sampler's memory (Request's)
  std::vector<DevicePlacement> devices;  // empty: CPU only
  // The output layer on the last device. llama.cpp counts it as the last offloadable layer, so
  // it is offloaded whenever any layer is (n_gpu_layers >= 1).
  bool output_on_device = false;
  CpuRepack cpu;

  // llama_context_params.n_ctx for these settings.
  uint32_t LlamaNCtx() const { return n_ctx * n_parallel; }
  // llama_model_params.n_gpu_layers for these settings.
  int NGpuLayers() const;
};

struct DeviceMemory {
  std::string name;
  bool unified = false;
  std::string host;  // a worker's "HOST:PORT"; "" = this machine
  uint32_t n_layers = 0;
  bool output = false;  // holds the output layer
  uint64_t weights_bytes = 0;
  uint64_t kv_bytes = 0;
  uint64_t compute_bytes = 0;
  // A worker receives each tensor whole in one message before copying it into place
  // (ggml-rpc.cpp, RPC_CMD_SET_TENSOR): its largest tensor is held twice while loading.
  uint64_t transfer_bytes = 0;
  uint64_t total_bytes = 0;
};

struct MemoryBreakdown {
  // Totals over all devices (host included).
  uint64_t weights_bytes = 0;  // model buffers: mapped + repacked + device copies
  uint64_t kv_bytes = 0;
  uint64_t compute_bytes = 0;   // graph scheduler buffers
  uint64_t output_bytes = 0;    // logits buffer (host)
  uint64_t overhead_bytes = 0;  // process: code, ggml contexts, vocab, threads (host)
  // The host side.
  uint64_t host_weights_bytes = 0;  // resident on the host (mapped + repacked)
  uint64_t repack_bytes = 0;        // of which anonymous CPU_REPACK copies
  uint64_t host_kv_bytes = 0;
  uint64_t host_compute_bytes = 0;
  // Of the host graph buffer, the pages generation writes (the rest stays uncommitted).
  uint64_t host_compute_touched_bytes = 0;
  // Page cache of file pages read only to be repacked or uploaded to a device: charged to a
  // cgroup during load, clean and reclaimable afterwards.
  uint64_t file_cache_bytes = 0;
  // What must stay resident on the host (including unified devices' memory): the fit checks it.
  uint64_t host_required_bytes = 0;
  // The peak a memory cgroup records without pressure: required + reclaimable file cache.
  uint64_t peak_host_bytes = 0;
  std::vector<DeviceMemory> per_device;  // accelerators only, in placement order
};

// The number of KV cells llama.cpp allocates per layer kind for these settings
// (llama-context.cpp pads n_ctx to 256; llama-kv-cache-iswa.cpp sizes the window cache).
uint64_t KvCellsFull(const Settings& s);
uint64_t KvCellsSwa(const ModelShape& shape, const Settings& s);

// KV cache bytes of one layer.
uint64_t LayerKvBytes(const ModelShape& shape, const LayerShape& layer, const Settings& s);

// Compute (graph) buffer bytes of the device running the layers, from the worst-case graph
// llama.cpp reserves (n_ubatch tokens, full KV, n_ubatch outputs).
uint64_t ComputeBytes(const ModelShape& shape, const Settings& s);

// Of those, what processing prompts and generating writes: the logits of one output per
// sequence instead of n_ubatch outputs.
uint64_t ComputeTouchedBytes(const ModelShape& shape, const Settings& s);

// Output buffer bytes (llama-context.cpp output_reserve: logits of n_seq_max outputs).
uint64_t OutputBytes(const ModelShape& shape, const Settings& s);

// Fixed per-process bytes not covered above (measured, see bench/results/plan-accuracy.md).
uint64_t OverheadBytes(const ModelShape& shape, const Settings& s);

MemoryBreakdown Estimate(const ModelShape& shape, const Settings& settings);

// One device's part of Estimate: layers [first_layer, first_layer + n_layers), plus the output
// layer when `output`. `remote`: a worker's device (counts transfer_bytes).
DeviceMemory EstimateDevice(const ModelShape& shape, const Settings& settings, uint32_t first_layer,
                            uint32_t n_layers, bool output, bool remote);

}  // namespace snug::plan
