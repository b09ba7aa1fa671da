// The fit policy (SPEC.md "Fit policy"): from a model shape, a memory budget and the user's
// request, the settings that fit — or, when nothing does, a numeric, actionable sentence.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"
#include "hw/budget.h"
#include "plan/estimate.h"
#include "plan/request.h"
#include "plan/shape.h"

namespace snug::plan {

// The largest context per KV type that fits the budget (0: not even 256 tokens fit).
struct MaxCtx {
  uint32_t f16 = 0;
  uint32_t q8_0 = 0;
  uint32_t q4_0 = 0;
  uint32_t For(KvType type) const;
};

struct Plan {
  bool fits = false;
  // The chosen settings when fits; otherwise the settings that were tried (the request), whose
  // memory shows what would be needed.
  Settings settings;
  MemoryBreakdown memory;
  // One sentence: why these settings ("ctx 8192 (min of the model's 131072 and the 8192
  // default), f16 KV, all 28 layers on the CPU: 4.1 GiB of 5.4 GiB"), or why nothing fits.
  std::string reason;
  // kDoesNotFit with the numbers and the largest settings that do fit; OK when fits.
  Status status;
  MaxCtx max_ctx;
  // Batched decoding equals solo decoding bit for bit under these settings: one slot, or
  // Request::batch_invariant.
  bool batch_invariant = false;
};

// Options the CPU (and tests) decide: which weights llama.cpp repacks on this CPU.
struct FitOptions {
  CpuRepack cpu = HostCpuRepack();
};

// Applies the policy. Returns an error only for requests that are invalid for this model
// (quantized KV with flash attention off, more GPU layers than devices can take when no device
// exists, batch-invariant serving of unquantized weights or on accelerators). A request that does
// not fit is a Plan with fits = false and status kDoesNotFit.
Result<Plan> Fit(const ModelShape& shape, const hw::Budget& budget, const Request& request,
                 const FitOptions& options = {});

}  // namespace snug::plan
