// The `snug plan --json` object (SPEC.md contract) minus "budget", which hw::BudgetToJson writes.
#pragma once

#include <nlohmann/json.hpp>

#include "plan/fit.h"
#include "plan/hosts.h"
#include "plan/shape.h"

namespace snug::plan {

// {"arch", "name", "n_ctx_train", "n_layer", "n_embd", "n_vocab", "n_swa", "n_expert",
//  "file_bytes", "weights_bytes", "approximation"?}
nlohmann::json ModelToJson(const ModelShape& shape);
// {"ok", "n_ctx", "kv_type", "n_gpu_layers", "n_parallel", "flash_attn", "llama_n_ctx", "reason"}
nlohmann::json FitToJson(const Plan& plan);
// {"weights_bytes", "kv_bytes", "compute_bytes", "output_bytes", "overhead_bytes",
//  "peak_host_bytes", "host_required_bytes", ..., "per_device": [...]}
nlohmann::json MemoryToJson(const MemoryBreakdown& memory);
nlohmann::json MaxCtxToJson(const MaxCtx& max_ctx);
// [{"host", "worker", "n_layers", "output", "weights_bytes", "kv_bytes", "compute_bytes",
//   "other_bytes", "total_bytes", "budget_bytes", "source"}]: HostRows.
nlohmann::json HostsToJson(const std::vector<HostRow>& rows);

}  // namespace snug::plan
