// The object `snug plan --json` prints (SPEC.md contract), shared by `snug plan` and the server's
// POST /v1/fit (serve_plan.h), so the web page's "Will it fit?" answer is `snug plan`'s.
#pragma once

#include <nlohmann/json.hpp>

#include "cli/model_source.h"
#include "hw/budget.h"
#include "plan/fit.h"
#include "plan/shape.h"

namespace snug::cli {

// {model: {..., source, location}, budget, fit, memory, max_ctx}
nlohmann::json PlanReportJson(const ModelSource& src, const plan::ModelShape& shape,
                              const hw::Budget& budget, const plan::Plan& p);

}  // namespace snug::cli
