#include "cli/command.h"

#include <cmath>

#include <fmt/format.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>

namespace snug::cli {

int ExitCodeFor(const Status& status) {
  switch (status.code()) {
    case Code::kOk:
      return kExitOk;
    case Code::kInvalidArgument:
    case Code::kContextExceeded:
      return kExitUsage;
    case Code::kDoesNotFit:
      return kExitDoesNotFit;
    default:
      return kExitError;
  }
}

int Report(const Status& status) {
  if (!status.ok()) fmt::print(stderr, "snug: {}\n", status.message());
  return ExitCodeFor(status);
}

void AddFitFlags(CLI::App* app, FitFlags* flags) {
  app->add_option("--ctx", flags->ctx, "Context length: N, auto (default) or max");
  app->add_option("--kv-type", flags->kv_type, "KV cache type: f16 (default), q8_0, q4_0 or auto");
  app->add_option("--ngl", flags->ngl, "Layers to offload to accelerators: N or auto (default)");
  app->add_option("--parallel", flags->parallel, "Parallel sequences (slots)")
      ->check(CLI::Range(1, 256));
  app->add_option("--memory-limit", flags->memory_limit,
                  "Host memory budget override (e.g. 6GiB); also SNUG_MEMORY_LIMIT");
  app->add_option("--hw", flags->hw_profile,
                  "Plan for a built-in hardware profile (snug hw --profiles)");
  app->add_option("--headroom", flags->headroom,
                  "Memory kept free (default 10% of the budget, 256 MiB..1 GiB)");
  app->add_option("--vram-limit", flags->vram_limit,
                  "Cap on each accelerator's memory budget (e.g. 4GiB), for tests and what-ifs");
  app->add_option("--worker", flags->workers,
                  "A `snug worker` (or llama.cpp rpc-server) at HOST:PORT to place layers on when "
                  "the model does not fit here; repeatable; also SNUG_WORKERS=H:P,H:P");
}

}  // namespace snug::cli

namespace snug::cli {

CLI::Validator FiniteIn(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& text) -> std::string {
        double value = 0;
        size_t used = 0;
        try {
          value = std::stod(text, &used);
        } catch (...) {
          used = 0;
        }
        if (used != text.size() || !std::isfinite(value) || value < lo || value > hi) {
          return fmt::format("'{}' is not a number from {} to {}", text, lo, hi);
        }
        return "";
      },
      fmt::format("NUMBER in [{}, {}]", lo, hi));
}

Result<std::string> ReadFlagFile(const std::string& path, const char* what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec)) {
    return Status::InvalidArgument(fmt::format("{} {} is not a readable file", what, path));
  }
  const auto size = std::filesystem::file_size(path, ec);
  if (ec || size > (1u << 20)) {
    return Status::InvalidArgument(fmt::format("{} {} is larger than 1 MiB", what, path));
  }
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in && !in.eof())
    return Status::InvalidArgument(fmt::format("cannot read {} {}", what, path));
  return text;
}

}  // namespace snug::cli
