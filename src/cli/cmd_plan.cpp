// snug plan MODEL [fit flags] [--json]: what the model needs here and the settings that fit,
// from the GGUF header alone.
#include <fmt/format.h>

#include <cstdio>
#include <memory>

#include "cli/command.h"
#include "cli/model_source.h"
#include "cli/plan_report.h"
#include "cli/worker_budget.h"
#include "core/size.h"
#include "hw/detect.h"
#include "hw/json.h"
#include "plan/fit.h"
#include "plan/hosts.h"
#include "plan/json.h"
#include "plan/shape.h"

namespace snug::cli {
namespace {

struct PlanArgs {
  std::string model;
  FitFlags fit;
  bool json = false;
};

// One row per host: what it holds against its budget. "other" is this host's logits buffer and
// process overhead, or the tensor a worker holds twice while receiving it.
void PrintHosts(const std::vector<plan::HostRow>& rows) {
  fmt::print("hosts    {:<22} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}\n", "host",
             "layers", "weights", "KV", "compute", "other", "total", "budget", "budget source");
  for (const auto& r : rows) {
    const std::string layers = fmt::format("{}{}", r.n_layers, r.output ? "+out" : "");
    fmt::print("         {:<22} {:>7} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}  {}{}\n", r.host,
               layers, FormatSize(r.weights_bytes), FormatSize(r.kv_bytes),
               FormatSize(r.compute_bytes), FormatSize(r.other_bytes), FormatSize(r.total_bytes),
               FormatSize(r.budget_bytes), r.source,
               r.total_bytes > r.budget_bytes ? "  OVER BUDGET" : "");
  }
}

void PrintTable(const ModelSource& src, const plan::ModelShape& shape, const hw::Budget& budget,
                const plan::Plan& p) {
  const auto& m = p.memory;
  const auto& s = p.settings;
  fmt::print("model    {} ({}, {} layers, trained ctx {}, {} file, from {})\n", src.name,
             shape.arch, shape.n_layer, shape.n_ctx_train, FormatSize(shape.file_bytes), src.kind);
  fmt::print("budget   {} host ({}{})\n", FormatSize(budget.host_bytes),
             budget.detail.empty() ? budget.source : budget.detail,
             budget.headroom_bytes
                 ? fmt::format(", minus {} headroom", FormatSize(budget.headroom_bytes))
                 : "");
  for (const auto& d : budget.devices) {
    if (d.backend == "CPU" || !d.host.empty()) continue;
    fmt::print("         {} {}: {} usable{}\n", d.name, d.description, FormatSize(d.budget_bytes),
               d.unified ? " (unified with host memory)" : "");
  }
  fmt::print("{}  ctx {}, {} KV, {} GPU layers, {} sequence{}\n", p.fits ? "fit    " : "NO FIT ",
             s.n_ctx, plan::KvTypeName(s.kv_type), s.NGpuLayers(), s.n_parallel,
             s.n_parallel == 1 ? "" : "s");
  fmt::print("memory   weights {}{} | KV {} | compute {} | output {} | overhead {}\n",
             FormatSize(m.weights_bytes),
             m.repack_bytes ? fmt::format(" ({} repacked)", FormatSize(m.repack_bytes)) : "",
             FormatSize(m.kv_bytes), FormatSize(m.compute_bytes), FormatSize(m.output_bytes),
             FormatSize(m.overhead_bytes));
  fmt::print("         host needs {} resident, peaks at {} while loading\n",
             FormatSize(m.host_required_bytes), FormatSize(m.peak_host_bytes));
  if (budget.workers.empty()) {
    for (const auto& d : m.per_device) {
      fmt::print("         {}: {} layers, {} (weights {}, KV {}, compute {})\n", d.name, d.n_layers,
                 FormatSize(d.total_bytes), FormatSize(d.weights_bytes), FormatSize(d.kv_bytes),
                 FormatSize(d.compute_bytes));
    }
  } else {
    PrintHosts(plan::HostRows(shape, p, budget));
  }
  fmt::print("max ctx  f16 {} | q8_0 {} | q4_0 {}\n", p.max_ctx.f16, p.max_ctx.q8_0,
             p.max_ctx.q4_0);
  if (p.fits) fmt::print("reason   {}\n", p.reason);
  for (const auto& w : budget.workers) {
    if (w.busy) fmt::print("note     worker {} is serving another client now\n", w.endpoint);
  }
}

Status RunPlan(const PlanArgs& args) {
  SNUG_ASSIGN_OR_RETURN(plan::Request request, plan::ParseRequest(args.fit.ctx, args.fit.kv_type,
                                                                  args.fit.ngl, args.fit.parallel));
  SNUG_ASSIGN_OR_RETURN(hw::BudgetOptions options,
                        hw::BudgetOptionsFromFlags(args.fit.memory_limit, args.fit.headroom,
                                                   args.fit.hw_profile, args.fit.vram_limit));
  SNUG_ASSIGN_OR_RETURN(ModelSource src, ResolveModel(args.model));
  SNUG_ASSIGN_OR_RETURN(plan::ModelShape shape, plan::ShapeFromGguf(src.file));
  // Messages name the model as the user gave it (file stem, preset or store name), not the
  // header's general.name.
  shape.name = src.name;
  SNUG_ASSIGN_OR_RETURN(hw::Budget budget, hw::ResolveBudget(options));
  SNUG_RETURN_IF_ERROR(AddWorkers(args.fit.workers, WorkerUse::kPlan, &budget));
  SNUG_ASSIGN_OR_RETURN(plan::Plan p, plan::Fit(shape, budget, request));

  if (args.json) {
    fmt::print("{}\n", PlanReportJson(src, shape, budget, p).dump(2));
  } else {
    PrintTable(src, shape, budget, p);
  }
  return p.status;
}

}  // namespace

void AddPlanCommand(CLI::App& root, int* exit_code) {
  auto args = std::make_shared<PlanArgs>();
  auto* cmd = root.add_subcommand(
      "plan", "Predict memory and pick settings that fit, without loading weights");
  cmd->add_option("MODEL", args->model,
                  "A .gguf path, an https:// URL, preset:NAME or a stored model name")
      ->required();
  AddFitFlags(cmd, &args->fit);
  cmd->add_flag("--json", args->json, "Print one JSON object (SPEC.md contract)");
  cmd->callback([args, exit_code] { *exit_code = Report(RunPlan(*args)); });
}

}  // namespace snug::cli
