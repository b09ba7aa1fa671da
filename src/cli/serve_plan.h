// The web page's "Will it fit?" for `snug serve` (server::ServerOptions::plan_reference): any
// MODEL reference `snug plan` takes, plus hub refs (owner/repo[:quant], read from the remote
// header as `snug pull` checks them), planned with the server's fit flags against its live budget.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include "cli/command.h"
#include "cli/live_budget.h"
#include "server/http_server.h"

namespace snug::cli {

// `models_dir` "" = the default store.
decltype(server::ServerOptions::plan_reference) MakePlanReferenceHook(
    const std::string& models_dir, const FitFlags& fit, bool batch_invariant,
    std::shared_ptr<LiveBudget> live);

}  // namespace snug::cli
