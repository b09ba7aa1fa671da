// Tokenizing a request's text inside the server's limits. llama.cpp's tokenizer holds about 30 to
// 90 bytes per input byte while it works (measured on llama-bpe: 56 MiB for 2 MiB of words, 182 MiB
// for 2 MiB of punctuation), so two 7 MiB prompts could take a 1 GiB container down before any
// context check ran. Here a text that cannot fit the context is refused from its length alone,
// and a large one is counted against the budget while it is tokenized.
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"
#include "server/model_pool.h"

namespace snug::server {

enum class PromptKind {
  kChat,        // a rendered chat prompt: special tokens parsed, BOS as the vocabulary asks
  kCompletion,  // raw text for /v1/completions: special tokens parsed, BOS added
  kEmbedding,   // text to embed: BOS added, special tokens kept as text
};

// Bytes the tokenizer may hold per input byte: above the worst measured (91, punctuation on
// llama-bpe; words 28, digits 42, CJK 76, "a a a" 65), so the reservation does not under-count.
inline constexpr uint64_t kTokenizerBytesPerInputByte = 96;
// Texts below this are tokenized without a reservation: their few MiB fit in the headroom the
// budget already keeps.
inline constexpr size_t kReservedTokenizingFrom = 256u << 10;

// ContextExceeded when a text of `bytes` is surely more than `n_ctx` tokens of this model. For a
// chat, called with the users' messages before the template renders them (rendering copies the
// text several times: +84 MiB peak for a 6 MiB message, measured).
Status CheckPromptBytes(const engine::Model& model, uint32_t n_ctx, size_t bytes);

// ContextExceeded when `text` is surely more than `n_ctx` tokens (CheckPromptBytes),
// DoesNotFit with the numbers when a large text's tokenizer memory does not fit beside the loaded
// models, else the tokens.
Result<std::vector<engine::Token>> TokenizeWithinLimits(ModelPool& pool, const engine::Model& model,
                                                        uint32_t n_ctx, std::string_view text,
                                                        PromptKind kind);

}  // namespace snug::server
