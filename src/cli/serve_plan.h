// The web page's "Will it fit?" for `snug serve` (server::ServerOptions::plan_reference): any
// MODEL reference `snug plan` takes, plus hub refs (owner/repo[:quant], read from the remote
// header as `snug pull` checks them), planned with the server's fit flags against its live budget.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/live_budget.h"
#include "plan/fit.h"
#include "server/http_server.h"

namespace snug::cli {

// What `snug serve` plans with: its fit flags (--ctx, --kv-type, --ngl, --parallel), with a
// request's ctx and KV type in their place when it gives them.
Result<plan::Request> ServePlanRequest(const FitFlags& fit, const server::PlanOverrides& overrides,
                                       bool batch_invariant);

// `models_dir` "" = the default store.
decltype(server::ServerOptions::plan_reference) MakePlanReferenceHook(
    const std::string& models_dir, const FitFlags& fit, bool batch_invariant,
    std::shared_ptr<LiveBudget> live);

}  // namespace snug::cli
