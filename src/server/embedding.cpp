#include "server/embedding.h"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

#include "engine/engine.h"
#include "server/prompt_budget.h"

namespace snug::server {

Result<EmbeddingResult> EmbedInputs(const RouteContext& ctx, std::string model_name,
                                    const std::vector<EmbeddingInput>& inputs, bool truncate,
                                    const AcquireOptions& acquire) {
  if (*ctx.stopping) return Status::Unavailable("the server is shutting down");
  SNUG_RETURN_IF_ERROR(ResolveModelName(ctx, &model_name));
  SNUG_ASSIGN_OR_RETURN(ModelPool::Lease lease, ctx.pool->Acquire(model_name, acquire));
  // The lease keeps the model loaded; the engine embeds on a short-lived context of its own,
  // which llama.cpp allows beside the scheduler thread's context.
  const engine::Model& model = lease.scheduler().model();
  // The planner sized this model's context; a longer input would need an embedding context (and
  // compute buffer) beyond what was planned to fit.
  const uint32_t n_ctx = lease.scheduler().n_ctx_seq();
  EmbeddingResult result;
  result.model = model_name;
  std::vector<std::vector<engine::Token>> tokenized;
  for (const auto& input : inputs) {
    std::vector<engine::Token> tokens;
    if (input.is_tokens) {
      for (int64_t id : input.tokens) {
        if (id < 0 || id >= model.n_vocab()) {
          return Status::InvalidArgument(
              fmt::format("token id {} is outside the vocabulary of model '{}' ({} tokens)", id,
                          model_name, model.n_vocab()));
        }
        tokens.push_back(static_cast<engine::Token>(id));
      }
    } else {
      // A text to be truncated is tokenized up to its context's worth of bytes only, so a
      // huge input costs no more than a fitting one.
      std::string_view text = input.text;
      if (truncate && n_ctx > 0 && model.longest_token_bytes() > 0) {
        const size_t cap = static_cast<size_t>(n_ctx) * model.longest_token_bytes();
        if (text.size() > cap) text = text.substr(0, cap);
      }
      SNUG_ASSIGN_OR_RETURN(
          tokens, TokenizeWithinLimits(*ctx.pool, model, n_ctx, text, PromptKind::kEmbedding));
    }
    if (n_ctx > 0 && tokens.size() > n_ctx) {
      if (!truncate) {
        return Status::ContextExceeded(engine::PromptTooLongMessage(tokens.size(), n_ctx));
      }
      tokens.resize(n_ctx);
    }
    result.prompt_tokens += static_cast<int>(tokens.size());
    tokenized.push_back(std::move(tokens));
  }
  // One embedding context at a time, measured by llama.cpp's dry run and held against the budget
  // beside the loaded models while it exists.
  static std::mutex embed_mu;
  std::lock_guard<std::mutex> lock(embed_mu);
  size_t longest = 0;
  for (const auto& tokens : tokenized)
    longest = std::max(longest, tokens.size());
  SNUG_ASSIGN_OR_RETURN(uint64_t bytes, engine::EmbedContextBytes(model, longest));
  SNUG_ASSIGN_OR_RETURN(
      auto reservation,
      ctx.pool->Reserve(bytes, fmt::format("an embedding context for {} tokens", longest)));
  SNUG_ASSIGN_OR_RETURN(result.vectors, engine::Embed(model, tokenized));
  ctx.metrics->CountTokens(result.prompt_tokens, 0);
  return result;
}

}  // namespace snug::server
