// Embeddings as every API dialect needs them: the model leased (loaded as the pool decides), each
// input tokenized within the context and the budget, and one embedding context at a time, counted
// against the budget while it exists.
#pragma once

#include <string>
#include <vector>

#include "core/status.h"
#include "server/model_pool.h"
#include "server/routes.h"
#include "server/wire.h"

namespace snug::server {

struct EmbeddingResult {
  std::string model;                        // the resolved name
  std::vector<std::vector<float>> vectors;  // L2-normalized, one per input
  int prompt_tokens = 0;
};

// `model` "" = the server's default model. `truncate`: an input longer than the model's context
// is cut to it (Ollama's default) instead of refused with ContextExceeded.
Result<EmbeddingResult> EmbedInputs(const RouteContext& ctx, std::string model,
                                    const std::vector<EmbeddingInput>& inputs, bool truncate,
                                    const AcquireOptions& acquire = {});

}  // namespace snug::server
