#include "server/prompt_budget.h"

#include <fmt/format.h>

#include <optional>

#include "core/size.h"

namespace snug::server {

Status CheckPromptBytes(const engine::Model& model, uint32_t n_ctx, size_t bytes) {
  const size_t longest = model.longest_token_bytes();
  // A few tokens of slack: BOS, and the space SentencePiece puts before the text.
  if (longest > 0 && n_ctx > 0 && bytes > (static_cast<size_t>(n_ctx) + 4) * longest) {
    return Status::ContextExceeded(fmt::format(
        "prompt is {} bytes, so at least {} tokens (no token of this model is longer than {} "
        "bytes), but the context holds {}; raise --ctx or shorten the prompt",
        bytes, bytes / longest, longest, n_ctx));
  }
  return Status::Ok();
}

Result<std::vector<engine::Token>> TokenizeWithinLimits(ModelPool& pool, const engine::Model& model,
                                                        uint32_t n_ctx, std::string_view text,
                                                        PromptKind kind) {
  SNUG_RETURN_IF_ERROR(CheckPromptBytes(model, n_ctx, text.size()));
  std::optional<ModelPool::Reservation> reservation;
  if (text.size() >= kReservedTokenizingFrom) {
    const uint64_t bytes = text.size() * kTokenizerBytesPerInputByte;
    auto reserved =
        pool.Reserve(bytes, fmt::format("tokenizing a {} prompt", FormatSize(text.size())));
    if (!reserved.ok()) return reserved.status();
    reservation.emplace(std::move(reserved).value());
  }
  switch (kind) {
    case PromptKind::kChat:
      return model.TokenizeChat(text);
    case PromptKind::kCompletion:
      return model.Tokenize(text, /*add_special=*/true, /*parse_special=*/true);
    case PromptKind::kEmbedding:
      break;
  }
  return model.Tokenize(text, /*add_special=*/true, /*parse_special=*/false);
}

}  // namespace snug::server
