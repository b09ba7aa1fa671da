// The planner's per-device figures against llama.cpp on the accelerators of this machine, as
// markdown tables for bench/results/gpu-<date>.md (bench/gpu/run.sh):
//  1. no-alloc: snug's Estimate per device (weights, KV, compute) and for the host vs llama.cpp's
//     llama_get_memory_breakdown after a no_alloc load with the same offload (common/fit.cpp's
//     method), for every preset x ctx x KV type x offload (all layers + output, half the layers);
//  2. --real: a real load with a prompt and a short generation; the device memory it took
//     (cudaMemGetInfo through ggml_backend_dev_memory, before/after) vs the prediction and vs
//     llama.cpp's allocated buffers.
// Without an accelerator (CPU builds, the dry run of run.sh) the same code runs with no offload
// and says so, so every path but the device's own is exercised anywhere.
//
//   plan_gpu_table MODEL_DIR [--real CTX:KV,...] [--ctx N,...] [--kv f16,q8_0] PRESET...
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include "gguf/reader.h"
#include "hw/devices.h"
#include "plan/calibrate/dry_run.h"
#include "plan/estimate.h"
#include "plan/shape.h"
#include "synth/presets.h"
#include "synth/writer.h"

using namespace snug;

namespace {

double Err(uint64_t predicted, uint64_t actual) {
  if (actual == 0) return predicted == 0 ? 0.0 : 100.0;
  return 100.0 * (static_cast<double>(predicted) - static_cast<double>(actual)) / actual;
}

std::string MiB(uint64_t b) {
  return fmt::format("{:.1f}", b / 1048576.0);
}

std::vector<std::string> Split(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

Result<plan::KvType> ParseKv(const std::string& name) {
  for (plan::KvType t : {plan::KvType::kF16, plan::KvType::kQ8_0, plan::KvType::kQ4_0})
    if (name == plan::KvTypeName(t)) return t;
  return Status::InvalidArgument(fmt::format("unknown KV type '{}' (f16, q8_0, q4_0)", name));
}

// Worst error per component over the rows: largest |error| and most negative (under-prediction).
struct Worst {
  double abs[5] = {0, 0, 0, 0, 0};
  double under[5] = {0, 0, 0, 0, 0};
  void Add(int i, double e) {
    abs[i] = std::max(abs[i], std::fabs(e));
    under[i] = std::min(under[i], e);
  }
};

struct Offload {
  std::string label;
  int n_layers = 0;  // on the device
  bool output = false;
};

// All layers with the output layer (snug's --ngl auto on a big card), half the layers without it
// (a partial offload: host and device both run layers), and in dry runs none: llama.cpp still
// creates the CUDA backend with ngl 0 and offloads large-batch matmuls of host weights to it
// (op_offload), so the device may hold a compute buffer snug does not plan for.
std::vector<Offload> Offloads(const plan::ModelShape& shape, bool have_device, bool real) {
  if (!have_device) return {{"none (no accelerator)", 0, false}};
  std::vector<Offload> out = {{"all", static_cast<int>(shape.n_layer), true},
                              {"partial", static_cast<int>(shape.n_layer / 2), false}};
  if (!real) out.push_back({"none", 0, false});
  return out;
}

plan::Settings SettingsFor(const plan::ModelShape& shape, const hw::Device* dev, const Offload& off,
                           uint32_t ctx, plan::KvType kv) {
  plan::Settings s;
  s.n_ctx = std::min(ctx, std::max<uint32_t>(shape.n_ctx_train, 256));
  s.kv_type = kv;
  s.cpu = plan::HostCpuRepack();
  if (dev != nullptr && off.n_layers > 0) {
    s.devices.push_back({dev->name, dev->unified, static_cast<uint32_t>(off.n_layers)});
    s.output_on_device = off.output;
  }
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  std::string dir;
  std::vector<std::string> names, real_configs;
  std::vector<uint32_t> ctxs = {8192, 32768};
  std::vector<plan::KvType> kvs = {plan::KvType::kF16, plan::KvType::kQ8_0};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    const bool has_value = i + 1 < argc;
    if (a == "--real" && has_value) {
      real_configs = Split(argv[++i]);
    } else if (a == "--ctx" && has_value) {
      ctxs.clear();
      for (const auto& c : Split(argv[++i]))
        ctxs.push_back(static_cast<uint32_t>(std::stoul(c)));
    } else if (a == "--kv" && has_value) {
      kvs.clear();
      for (const auto& k : Split(argv[++i])) {
        auto t = ParseKv(k);
        if (!t.ok()) {
          fmt::print(stderr, "--kv: {}\n", t.status().message());
          return 2;
        }
        kvs.push_back(*t);
      }
    } else if (dir.empty()) {
      dir = a;
    } else {
      names.push_back(a);
    }
  }
  if (dir.empty() || names.empty()) {
    fmt::print(stderr,
               "usage: {} MODEL_DIR [--real CTX:KV,...] [--ctx N,...] [--kv T,...] PRESET...\n",
               argv[0]);
    return 2;
  }
  std::filesystem::create_directories(dir);

  std::vector<std::string> notes;
  const std::vector<hw::Device> devices = hw::ProbeDevices(&notes);
  // One device: llama.cpp splits layers over several by free memory, which the single-device
  // rows below do not model (run.sh sets CUDA_VISIBLE_DEVICES=0).
  const hw::Device* dev = devices.empty() ? nullptr : &devices.front();
  if (dev != nullptr) {
    fmt::print("Device: {} ({}), {} MiB free of {} MiB.\n\n", dev->name, dev->description,
               MiB(dev->free_bytes), MiB(dev->total_bytes));
  } else {
    fmt::print("No accelerator found by ggml: host-only rows (the CPU fallback).\n\n");
  }
  for (const auto& n : notes)
    fmt::print("Note: {}\n\n", n);

  struct Model {
    std::string name, path;
    plan::ModelShape shape;
  };
  std::vector<Model> models;
  for (const auto& name : names) {
    auto preset = synth::FindPreset(name);
    if (!preset.ok()) {
      fmt::print(stderr, "{}\n", preset.status().message());
      return 2;
    }
    const std::string path = dir + "/" + preset->name + ".gguf";
    if (!std::filesystem::exists(path)) {
      Status st = synth::WriteModel(*preset, path, {});
      if (!st.ok()) {
        fmt::print(stderr, "{}\n", st.message());
        return 1;
      }
    }
    auto file = gguf::ReadFile(path);
    if (!file.ok()) {
      fmt::print(stderr, "{}\n", file.status().message());
      return 1;
    }
    auto shape = plan::ShapeFromGguf(*file);
    if (!shape.ok()) {
      fmt::print(stderr, "{}\n", shape.status().message());
      return 1;
    }
    models.push_back({preset->name, path, *shape});
  }

  // 1. No-alloc dry runs.
  fmt::print("### Per-device prediction vs llama.cpp's no-alloc breakdown\n\n");
  fmt::print(
      "| model | ctx | KV | offload (ngl) | dev weights pred/dry MiB | err % | dev KV pred/dry | "
      "err % "
      "| dev compute pred/dry | err % | host compute pred/dry | err % | host weights pred/dry | "
      "err % |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n");
  Worst worst;
  for (const Model& m : models) {
    for (const Offload& off : Offloads(m.shape, dev != nullptr, false)) {
      const int ngl = off.n_layers + (off.output ? 1 : 0);
      auto runner = plan::calibrate::DryRunner::Open(m.path, false, ngl);
      if (!runner.ok()) {
        fmt::print(stderr, "{}\n", runner.status().message());
        return 1;
      }
      for (uint32_t ctx : ctxs) {
        for (plan::KvType kv : kvs) {
          const plan::Settings s = SettingsFor(m.shape, dev, off, ctx, kv);
          auto dry = (*runner)->Run(s);
          if (!dry.ok()) {
            fmt::print(stderr, "{}\n", dry.status().message());
            return 1;
          }
          const plan::MemoryBreakdown est = plan::Estimate(m.shape, s);
          plan::DeviceMemory pd;
          if (!est.per_device.empty()) pd = est.per_device.front();
          plan::calibrate::DeviceUsage dd;
          if (!dry->devices.empty()) dd = dry->devices.front();
          const double e[5] = {Err(pd.weights_bytes, dd.model_bytes),
                               Err(pd.kv_bytes, dd.context_bytes),
                               Err(pd.compute_bytes, dd.compute_bytes),
                               Err(est.host_compute_bytes, dry->compute_bytes),
                               Err(est.host_weights_bytes, dry->model_bytes)};
          // ngl 0 rows show what llama.cpp puts on an unused device; the targets are for placed
          // layers, so they stay out of the worst-case line.
          if (off.n_layers > 0 || dev == nullptr) {
            for (int i = 0; i < 5; ++i)
              worst.Add(i, e[i]);
          }
          fmt::print(
              "| {} | {} | {} | {} ({}) | {} / {} | {:+.2f} | {} / {} | {:+.2f} | {} / {} | "
              "{:+.2f} "
              "| {} / {} | {:+.2f} | {} / {} | {:+.2f} |\n",
              m.name, s.n_ctx, plan::KvTypeName(kv), off.label, ngl, MiB(pd.weights_bytes),
              MiB(dd.model_bytes), e[0], MiB(pd.kv_bytes), MiB(dd.context_bytes), e[1],
              MiB(pd.compute_bytes), MiB(dd.compute_bytes), e[2], MiB(est.host_compute_bytes),
              MiB(dry->compute_bytes), e[3], MiB(est.host_weights_bytes), MiB(dry->model_bytes),
              e[4]);
          std::fflush(stdout);
        }
      }
    }
  }
  fmt::print(
      "\nWorst |error| (most negative): device weights {:.2f}% ({:+.2f}), device KV {:.2f}% "
      "({:+.2f}), device compute {:.2f}% ({:+.2f}), host compute {:.2f}% ({:+.2f}), host weights "
      "{:.2f}% ({:+.2f}).\n\n",
      worst.abs[0], worst.under[0], worst.abs[1], worst.under[1], worst.abs[2], worst.under[2],
      worst.abs[3], worst.under[3], worst.abs[4], worst.under[4]);

  // 2. Real loads.
  if (real_configs.empty()) return 0;
  fmt::print("### Device memory taken by a real load (600-token prompt, 16 tokens generated)\n\n");
  fmt::print(
      "| model | ctx | KV | offload (ngl) | predicted device MiB | llama.cpp allocated MiB | err % "
      "| taken (cudaMemGetInfo) MiB | pred vs taken % | taken - allocated MiB | load s |\n"
      "|---|---|---|---|---|---|---|---|---|---|---|\n");
  Worst real;
  for (const Model& m : models) {
    for (const Offload& off : Offloads(m.shape, dev != nullptr, true)) {
      for (const std::string& cfg : real_configs) {
        const auto colon = cfg.find(':');
        auto kv = ParseKv(colon == std::string::npos ? "f16" : cfg.substr(colon + 1));
        if (!kv.ok()) {
          fmt::print(stderr, "--real {}: {}\n", cfg, kv.status().message());
          return 2;
        }
        const auto ctx = static_cast<uint32_t>(std::stoul(cfg.substr(0, colon)));
        const plan::Settings s = SettingsFor(m.shape, dev, off, ctx, *kv);
        auto measured = plan::calibrate::MeasureLoad(m.path, s, 600, 16);
        if (!measured.ok()) {
          fmt::print(stderr, "{}: {}\n", m.name, measured.status().message());
          return 1;
        }
        const plan::MemoryBreakdown est = plan::Estimate(m.shape, s);
        const uint64_t pred = est.per_device.empty() ? 0 : est.per_device.front().total_bytes;
        plan::calibrate::LoadMeasure::Device md;
        if (!measured->devices.empty()) md = measured->devices.front();
        const uint64_t allocated = md.model_bytes + md.context_bytes + md.compute_bytes;
        const double e_alloc = Err(pred, allocated), e_taken = Err(pred, md.taken_bytes);
        real.Add(0, e_alloc);
        real.Add(1, e_taken);
        fmt::print("| {} | {} | {} | {} ({}) | {} | {} | {:+.2f} | {} | {:+.2f} | {} | {:.1f} |\n",
                   m.name, s.n_ctx, plan::KvTypeName(*kv), off.label, s.NGpuLayers(), MiB(pred),
                   MiB(allocated), e_alloc, MiB(md.taken_bytes), e_taken,
                   fmt::format("{:+.1f}", (static_cast<double>(md.taken_bytes) -
                                           static_cast<double>(allocated)) /
                                              1048576.0),
                   measured->load_seconds);
        std::fflush(stdout);
      }
    }
  }
  fmt::print(
      "\nWorst |error| (most negative): predicted vs allocated {:.2f}% ({:+.2f}), predicted vs "
      "taken {:.2f}% ({:+.2f}).\n",
      real.abs[0], real.under[0], real.abs[1], real.under[1]);
  return 0;
}
