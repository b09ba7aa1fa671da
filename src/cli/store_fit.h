// Helpers shared by the store subcommands (pull, ls, show): the fit of a GGUF header on this
// machine, and the download progress display. The fit lives here, in the CLI, so the store module
// stays below the planner.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

#include "core/status.h"
#include "gguf/gguf.h"
#include "hw/budget.h"
#include "plan/fit.h"
#include "store/store.h"

namespace snug::cli {

// Budget flags of the store commands (a subset of FitFlags: they only ask "does it fit").
struct BudgetFlags {
  std::string memory_limit;
  std::string hw_profile;
  std::string headroom;
};
void AddBudgetFlags(CLI::App* app, BudgetFlags* flags);
Result<hw::Budget> ResolveBudgetFromFlags(const BudgetFlags& flags);

// The default plan (ctx auto, f16 KV, ngl auto) and the most permissive one (ctx auto, KV auto):
// a model "fits" when the permissive plan does.
struct FitSummary {
  plan::Plan default_plan;
  plan::Plan best_plan;  // KV auto
  bool fits() const { return best_plan.fits; }
  // "ctx 8192, f16 KV (4.1 GiB of 5.4 GiB)" or the reason it does not fit.
  std::string Describe() const;
};
Result<FitSummary> FitHere(const gguf::File& file, const hw::Budget& budget);

// Renders store download progress to stderr: a redrawn bar on a terminal, else a line every
// 10% (and at most one per 5 s).
class ProgressPrinter {
 public:
  ProgressPrinter();
  void Update(size_t index, size_t count, const store::RemoteFile& file,
              const store::DownloadProgress& progress);

 private:
  bool tty_;
  int last_decile_ = -1;
  double last_line_seconds_ = -100;
  size_t last_index_ = static_cast<size_t>(-1);
};

// `snug pull` and `snug import` (cmd_pull.cpp), registered by AddStoreCommands.
void AddPullCommands(CLI::App& root, int* exit_code);

}  // namespace snug::cli
