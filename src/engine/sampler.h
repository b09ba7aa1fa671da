// Per-sequence token sampling (internal to the engine): the sampler chain for the request's
// settings and, when it has one, its grammar, applied the way llama.cpp's common sampler does
// (sample freely, check the grammar accepts the pick, else constrain the row and sample again),
// but with a dead end (no token allowed) reported as an error instead of an abort.
#pragma once

#include <memory>
#include <set>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"

struct llama_sampler;
struct llama_token_data;

namespace snug::engine {

class TokenSampler {
 public:
  // InvalidArgument when the grammar does not parse.
  static Result<std::unique_ptr<TokenSampler>> Create(const Model& model,
                                                      const SamplingParams& params);
  ~TokenSampler();
  TokenSampler(const TokenSampler&) = delete;
  TokenSampler& operator=(const TokenSampler&) = delete;

  // Picks the next token from row `row` of the context's logits (all finite; `argmax` is the
  // first largest). Runtime error when the grammar allows no token.
  Result<Token> Sample(llama_context* ctx, int row, const float* logits, Token argmax);
  // Whether the token's text is kept in the answer although it is a control token.
  bool KeepsSpecialText(Token token) const { return kept_special_.count(token) > 0; }

 private:
  TokenSampler(const Model& model, const SamplingParams& params);
  Status Accept(Token token);
  Token ConstrainedPick(const float* logits);

  const Model& model_;
  const SamplingParams params_;
  llama_sampler* chain_ = nullptr;
  llama_sampler* grammar_ = nullptr;
  bool plain_greedy_ = false;
  std::set<Token> kept_special_;
  std::vector<llama_token_data> candidates_;
};

}  // namespace snug::engine
