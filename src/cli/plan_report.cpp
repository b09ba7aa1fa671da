#include "cli/plan_report.h"

#include "hw/json.h"
#include "plan/json.h"

namespace snug::cli {

nlohmann::json PlanReportJson(const ModelSource& src, const plan::ModelShape& shape,
                              const hw::Budget& budget, const plan::Plan& p) {
  nlohmann::json j;
  j["model"] = plan::ModelToJson(shape);
  j["model"]["source"] = src.kind;
  j["model"]["location"] = src.location;
  j["budget"] = hw::BudgetToJson(budget);
  j["fit"] = plan::FitToJson(p);
  j["memory"] = plan::MemoryToJson(p.memory);
  j["max_ctx"] = plan::MaxCtxToJson(p.max_ctx);
  if (!budget.workers.empty()) j["hosts"] = plan::HostsToJson(plan::HostRows(shape, p, budget));
  return j;
}

}  // namespace snug::cli
