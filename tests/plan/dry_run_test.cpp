// The analytic planner against llama.cpp's own accounting: for every preset x ctx {2048, 8192,
// 32768, 131072} (capped at the trained context) x KV {f16, q8_0}, plus the server's settings (4
// slots sharing one KV buffer; --batch-invariant's flash attention off with a KV stream per slot),
// the weights, KV cache and compute buffer snug predicts are within 3% of what llama.cpp's
// no-alloc dry run reports (common/fit.cpp's method). Model files are sparse zero-weight GGUFs in a
// temp dir.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "gguf/reader.h"
#include "plan/calibrate/dry_run.h"
#include "plan/estimate.h"
#include "plan/shape.h"
#include "synth/presets.h"
#include "synth/writer.h"

namespace snug::plan {
namespace {

constexpr double kTolerance = 0.03;

std::string ModelDir() {
  static const std::string dir = [] {
    auto d = std::filesystem::temp_directory_path() /
             ("snug-plan-dry-run-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d.string();
  }();
  return dir;
}

class DryRunTest : public ::testing::TestWithParam<std::string> {
 public:
  static void TearDownTestSuite() { std::filesystem::remove_all(ModelDir()); }
};

void ExpectClose(const char* what, uint64_t predicted, uint64_t actual, const std::string& where) {
  const double err = actual == 0 ? (predicted == 0 ? 0.0 : 1.0)
                                 : std::fabs(static_cast<double>(predicted) - actual) / actual;
  EXPECT_LE(err, kTolerance) << where << ": " << what << " predicted " << predicted
                             << " bytes, llama.cpp dry run " << actual << " bytes";
}

TEST_P(DryRunTest, EveryComponentWithin3Percent) {
  auto preset = synth::FindPreset(GetParam());
  ASSERT_TRUE(preset.ok()) << preset.status().message();
  const std::string path = ModelDir() + "/" + preset->name + ".gguf";
  synth::WriteOptions options;
  options.vocab_dir = std::string(SNUG_LLAMA_SRC) + "/models";
  Status written = synth::WriteModel(*preset, path, options);
  ASSERT_TRUE(written.ok()) << written.message();

  auto file = gguf::ReadFile(path);
  ASSERT_TRUE(file.ok()) << file.status().message();
  auto shape = ShapeFromGguf(*file);
  ASSERT_TRUE(shape.ok()) << shape.status().message();
  auto runner = calibrate::DryRunner::Open(path);
  ASSERT_TRUE(runner.ok()) << runner.status().message();

  int checked = 0;
  for (uint32_t ctx : {2048u, 8192u, 32768u, 131072u}) {
    if (ctx > shape->n_ctx_train && ctx != 2048u) continue;
    for (KvType kv : {KvType::kF16, KvType::kQ8_0}) {
      Settings s;
      s.n_ctx = std::min(ctx, shape->n_ctx_train);
      s.kv_type = kv;
      s.cpu = HostCpuRepack();
      auto dry = (*runner)->Run(s);
      ASSERT_TRUE(dry.ok()) << dry.status().message();
      const MemoryBreakdown m = Estimate(*shape, s);
      const std::string where =
          preset->name + " ctx " + std::to_string(s.n_ctx) + " " + KvTypeName(kv);
      ExpectClose("weights", m.weights_bytes, dry->model_bytes, where);
      ExpectClose("repacked weights", m.repack_bytes, dry->repack_bytes, where);
      ExpectClose("KV cache", m.kv_bytes, dry->context_bytes, where);
      ExpectClose("compute buffer", m.compute_bytes, dry->compute_bytes, where);
      ++checked;
    }
  }
  // The server's configurations: several slots in one shared KV buffer with flash attention
  // (the default), and --batch-invariant's flash attention off with one KV stream per slot.
  struct ServeConfig {
    uint32_t parallel;
    bool unified;
    bool flash_attn;
  };
  for (uint32_t ctx : {2048u, 8192u}) {
    for (ServeConfig c :
         {ServeConfig{4, true, true}, ServeConfig{1, false, false}, ServeConfig{4, false, false}}) {
      Settings s;
      s.n_ctx = std::min(ctx, shape->n_ctx_train);
      s.n_parallel = c.parallel;
      s.kv_unified = c.unified;
      s.flash_attn = c.flash_attn;
      s.cpu = HostCpuRepack();
      auto dry = (*runner)->Run(s);
      ASSERT_TRUE(dry.ok()) << dry.status().message();
      const MemoryBreakdown m = Estimate(*shape, s);
      const std::string where =
          fmt::format("{} ctx {} x{} {} KV, flash attention {}", preset->name, s.n_ctx, c.parallel,
                      c.unified ? "shared" : "per-slot", c.flash_attn ? "on" : "off");
      ExpectClose("KV cache", m.kv_bytes, dry->context_bytes, where);
      ExpectClose("compute buffer", m.compute_bytes, dry->compute_bytes, where);
      ++checked;
    }
  }
  EXPECT_GE(checked, 8);
  std::filesystem::remove(path);
}

std::vector<std::string> PresetNames() {
  std::vector<std::string> names;
  for (const auto& p : synth::AllPresets())
    names.push_back(p.name);
  return names;
}

INSTANTIATE_TEST_SUITE_P(Presets, DryRunTest, ::testing::ValuesIn(PresetNames()),
                         [](const auto& info) {
                           std::string n = info.param;
                           std::replace_if(
                               n.begin(), n.end(), [](char c) { return !std::isalnum(c); }, '_');
                           return n;
                         });

}  // namespace
}  // namespace snug::plan
