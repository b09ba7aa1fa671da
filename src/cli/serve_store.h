// The local store as `snug serve` offers it to Ollama's model routes (server::StoreHooks): list,
// remove, and pull with the same checks as `snug pull` (the fit from the remote header against
// the server's live budget, and the disk) before any byte is downloaded.
#pragma once

#include <memory>
#include <string>

#include "cli/live_budget.h"
#include "server/http_server.h"

namespace snug::cli {

// `models_dir` "" = the default store (env::DataDir()).
server::StoreHooks MakeStoreHooks(const std::string& models_dir, std::shared_ptr<LiveBudget> live);

}  // namespace snug::cli
