#include "cli/store_fit.h"

#include <fmt/format.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cstdio>

#include "core/size.h"
#include "hw/detect.h"
#include "plan/request.h"
#include "plan/shape.h"

namespace snug::cli {

void AddBudgetFlags(CLI::App* app, BudgetFlags* flags) {
  app->add_option("--memory-limit", flags->memory_limit,
                  "Host memory budget override (e.g. 6GiB); also SNUG_MEMORY_LIMIT");
  app->add_option("--hw", flags->hw_profile, "Check the fit for a built-in hardware profile");
  app->add_option("--headroom", flags->headroom, "Memory kept free (default 10%, 256 MiB..1 GiB)");
}

Result<hw::Budget> ResolveBudgetFromFlags(const BudgetFlags& flags) {
  SNUG_ASSIGN_OR_RETURN(
      hw::BudgetOptions options,
      hw::BudgetOptionsFromFlags(flags.memory_limit, flags.headroom, flags.hw_profile));
  return hw::ResolveBudget(options);
}

Result<FitSummary> FitHere(const gguf::File& file, const hw::Budget& budget) {
  SNUG_ASSIGN_OR_RETURN(plan::ModelShape shape, plan::ShapeFromGguf(file));
  SNUG_ASSIGN_OR_RETURN(plan::Request default_request,
                        plan::ParseRequest("auto", "f16", "auto", 1));
  SNUG_ASSIGN_OR_RETURN(plan::Request best_request, plan::ParseRequest("auto", "auto", "auto", 1));
  FitSummary summary;
  SNUG_ASSIGN_OR_RETURN(summary.default_plan, plan::Fit(shape, budget, default_request));
  SNUG_ASSIGN_OR_RETURN(summary.best_plan, plan::Fit(shape, budget, best_request));
  return summary;
}

std::string FitSummary::Describe() const {
  const plan::Plan& p = default_plan.fits ? default_plan : best_plan;
  if (!p.fits) return p.status.message();
  return fmt::format("ctx {}, {} KV: {}", p.settings.n_ctx, plan::KvTypeName(p.settings.kv_type),
                     p.reason);
}

ProgressPrinter::ProgressPrinter() : tty_(isatty(fileno(stderr)) != 0) {}

namespace {
std::string Eta(double seconds) {
  if (seconds < 0 || seconds > 99 * 3600) return "--";
  int s = static_cast<int>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60);
  if (s >= 60) return fmt::format("{}m{:02d}s", s / 60, s % 60);
  return fmt::format("{}s", s);
}
}  // namespace

void ProgressPrinter::Update(size_t index, size_t count, const store::RemoteFile& file,
                             const store::DownloadProgress& p) {
  if (index != last_index_) {
    last_index_ = index;
    last_decile_ = -1;
    last_line_seconds_ = -100;
  }
  uint64_t fresh = p.done - p.resumed_from;
  double rate = p.seconds > 0 ? static_cast<double>(fresh) / p.seconds : 0;
  double eta = (p.total > p.done && rate > 0) ? static_cast<double>(p.total - p.done) / rate : -1;
  int percent =
      p.total ? static_cast<int>(100.0 * static_cast<double>(p.done) / static_cast<double>(p.total))
              : 0;
  std::string part = count > 1 ? fmt::format(" [{}/{}]", index + 1, count) : "";
  std::string figures =
      fmt::format("{} / {}  {}/s  ETA {}", FormatSize(p.done), p.total ? FormatSize(p.total) : "?",
                  FormatSize(static_cast<uint64_t>(rate)), p.finished ? "0s" : Eta(eta));
  if (tty_) {
    constexpr int kWidth = 30;
    int filled = p.total ? percent * kWidth / 100 : 0;
    fmt::print(stderr, "\r\033[Kpulling{} [{}{}] {:3d}%  {}", part, std::string(filled, '#'),
               std::string(kWidth - filled, '.'), percent, figures);
    if (p.finished) fmt::print(stderr, "\n");
    std::fflush(stderr);
    return;
  }
  int decile = percent / 10;
  if (p.finished || (decile > last_decile_ && p.seconds - last_line_seconds_ >= 5) ||
      last_decile_ < 0) {
    last_decile_ = decile;
    last_line_seconds_ = p.seconds;
    fmt::print(stderr, "pulling {}{}: {}%  {}{}\n", file.filename, part, percent, figures,
               p.resumed_from ? fmt::format(" (resumed at {})", FormatSize(p.resumed_from)) : "");
  }
}

}  // namespace snug::cli
