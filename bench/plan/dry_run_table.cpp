// Prints the planner's breakdown next to llama.cpp's no-alloc dry run for every preset x ctx x KV
// type (CPU), as a markdown table: bench/results/plan-dryrun.md. Usage:
//   plan_dry_run_table MODEL_DIR [preset ...]
// Model files are written (sparse, zero weights) into MODEL_DIR when missing.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "gguf/reader.h"
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

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fmt::print(stderr, "usage: {} MODEL_DIR [preset ...]\n", argv[0]);
    return 2;
  }
  const std::string dir = argv[1];
  std::filesystem::create_directories(dir);
  std::vector<synth::Preset> presets;
  if (argc > 2) {
    for (int i = 2; i < argc; ++i) {
      auto p = synth::FindPreset(argv[i]);
      if (!p.ok()) {
        fmt::print(stderr, "{}\n", p.status().message());
        return 2;
      }
      presets.push_back(*p);
    }
  } else {
    presets = synth::AllPresets();
  }
  fmt::print(
      "| model | ctx | KV | weights pred/dry MiB | err % | KV pred/dry MiB | err % | compute "
      "pred/dry MiB | err % |\n|---|---|---|---|---|---|---|---|---|\n");
  double max_err[3] = {0, 0, 0};
  for (const auto& preset : presets) {
    const std::string path = dir + "/" + preset.name + ".gguf";
    if (!std::filesystem::exists(path)) {
      Status st = synth::WriteModel(preset, path, {});
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
    auto runner = plan::calibrate::DryRunner::Open(path);
    if (!runner.ok()) {
      fmt::print(stderr, "{}\n", runner.status().message());
      return 1;
    }
    for (uint32_t ctx : {2048u, 8192u, 32768u, 131072u}) {
      if (ctx > shape->n_ctx_train && ctx != 2048) continue;
      for (plan::KvType kv : {plan::KvType::kF16, plan::KvType::kQ8_0}) {
        plan::Settings s;
        s.n_ctx = std::min(ctx, std::max<uint32_t>(shape->n_ctx_train, 256));
        s.kv_type = kv;
        s.cpu = plan::HostCpuRepack();
        auto dry = (*runner)->Run(s);
        if (!dry.ok()) {
          fmt::print(stderr, "{}\n", dry.status().message());
          return 1;
        }
        const auto m = plan::Estimate(*shape, s);
        const double e[3] = {Err(m.weights_bytes, dry->model_bytes),
                             Err(m.kv_bytes, dry->context_bytes),
                             Err(m.compute_bytes, dry->compute_bytes)};
        for (int i = 0; i < 3; ++i)
          max_err[i] = std::max(max_err[i], std::fabs(e[i]));
        fmt::print("| {} | {} | {} | {} / {} | {:+.2f} | {} / {} | {:+.2f} | {} / {} | {:+.2f} |\n",
                   preset.name, s.n_ctx, plan::KvTypeName(kv), MiB(m.weights_bytes),
                   MiB(dry->model_bytes), e[0], MiB(m.kv_bytes), MiB(dry->context_bytes), e[1],
                   MiB(m.compute_bytes), MiB(dry->compute_bytes), e[2]);
        std::fflush(stdout);
      }
    }
  }
  fmt::print("\nmax |error|: weights {:.2f}%, KV {:.2f}%, compute {:.2f}%\n", max_err[0],
             max_err[1], max_err[2]);
  return 0;
}
