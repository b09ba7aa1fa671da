#include "engine/sampler.h"

#include <fmt/format.h>
#include <llama.h>

#include <cctype>
#include <cmath>
#include <exception>

#include "core/log.h"

namespace snug::engine {
namespace {

bool HasPenalties(const SamplingParams& p) {
  return p.repeat_last_n != 0 &&
         (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f);
}

llama_sampler* MakeChain(const Model& model, const SamplingParams& p) {
  llama_sampler_chain_params chain_params = llama_sampler_chain_default_params();
  chain_params.no_perf = true;
  llama_sampler* chain = llama_sampler_chain_init(chain_params);
  if (p.ignore_eos) {
    // As llama.cpp's tools do for --ignore-eos: end-of-generation tokens can never be sampled, so
    // a benchmark or comparison run produces exactly max_tokens tokens.
    std::vector<llama_logit_bias> biases;
    for (Token t = 0; t < model.n_vocab(); ++t) {
      if (model.IsEndOfGeneration(t)) biases.push_back({t, -INFINITY});
    }
    llama_sampler_chain_add(
        chain, llama_sampler_init_logit_bias(model.n_vocab(), static_cast<int32_t>(biases.size()),
                                             biases.data()));
  }
  if (!p.logit_bias.empty()) {
    std::vector<llama_logit_bias> biases;
    for (const auto& [token, bias] : p.logit_bias)
      biases.push_back({token, bias});
    llama_sampler_chain_add(
        chain, llama_sampler_init_logit_bias(model.n_vocab(), static_cast<int32_t>(biases.size()),
                                             biases.data()));
  }
  if (HasPenalties(p)) {
    llama_sampler_chain_add(
        chain, llama_sampler_init_penalties(model.n_vocab(), p.repeat_last_n, p.repeat_penalty,
                                            p.frequency_penalty, p.presence_penalty));
  }
  if (p.temperature <= 0.0f) {
    llama_sampler_chain_add(chain, llama_sampler_init_greedy());
    return chain;
  }
  if (p.top_k > 0) llama_sampler_chain_add(chain, llama_sampler_init_top_k(p.top_k));
  if (p.top_p < 1.0f) llama_sampler_chain_add(chain, llama_sampler_init_top_p(p.top_p, 1));
  if (p.min_p > 0.0f) llama_sampler_chain_add(chain, llama_sampler_init_min_p(p.min_p, 1));
  llama_sampler_chain_add(chain, llama_sampler_init_temp(p.temperature));
  llama_sampler_chain_add(chain, llama_sampler_init_dist(p.seed));
  return chain;
}

// Plain greedy (no penalties): the argmax needs no sampler chain, which would copy the whole
// vocabulary into a candidate array for every token.
bool PlainGreedy(const SamplingParams& p) {
  return p.temperature <= 0.0f && !HasPenalties(p) && p.logit_bias.empty();
}

// The greedy pick when end-of-generation tokens are banned (ignore_eos): the largest other one.
Token ArgmaxExcept(const float* values, int n, const Model& model) {
  Token best = -1;
  for (int i = 0; i < n; ++i) {
    if (model.IsEndOfGeneration(i)) continue;
    if (best < 0 || values[i] > values[best]) best = i;
  }
  return best;
}

// A trigger word is matched literally by the lazy grammar's regular expressions.
std::string RegexEscape(const std::string& word) {
  std::string out;
  for (char c : word) {
    if (std::string_view("\\^$.|?*+()[]{}").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

}  // namespace

TokenSampler::TokenSampler(const Model& model, const SamplingParams& params)
    : model_(model), params_(params) {}

TokenSampler::~TokenSampler() {
  if (chain_) llama_sampler_free(chain_);
  if (grammar_) llama_sampler_free(grammar_);
}

Result<std::unique_ptr<TokenSampler>> TokenSampler::Create(const Model& model,
                                                           const SamplingParams& params) {
  std::unique_ptr<TokenSampler> s(new TokenSampler(model, params));
  s->chain_ = MakeChain(model, params);
  s->plain_greedy_ = PlainGreedy(params);
  for (const auto& text : params.kept_special_tokens) {
    if (auto token = model.SingleToken(text)) s->kept_special_.insert(*token);
  }
  const Grammar& g = params.grammar;
  if (g.empty()) return s;

  const llama_vocab* vocab = llama_model_get_vocab(model.raw());
  if (g.lazy) {
    std::vector<std::string> patterns;
    std::vector<llama_token> tokens;
    for (const auto& t : g.triggers) {
      switch (t.kind) {
        case GrammarTrigger::Kind::kWord:
          patterns.push_back(RegexEscape(t.value));
          break;
        case GrammarTrigger::Kind::kPattern:
          patterns.push_back(t.value);
          break;
        case GrammarTrigger::Kind::kPatternFull: {
          std::string anchored = t.value;
          if (anchored.empty() || anchored.front() != '^') anchored.insert(0, "^");
          if (anchored.back() != '$') anchored += '$';
          patterns.push_back(anchored);
          break;
        }
        case GrammarTrigger::Kind::kToken:
          tokens.push_back(t.token);
          s->kept_special_.insert(t.token);
          break;
      }
    }
    std::vector<const char*> pattern_ptrs;
    for (const auto& p : patterns)
      pattern_ptrs.push_back(p.c_str());
    s->grammar_ =
        llama_sampler_init_grammar_lazy_patterns(vocab, g.gbnf.c_str(), "root", pattern_ptrs.data(),
                                                 pattern_ptrs.size(), tokens.data(), tokens.size());
  } else {
    s->grammar_ = llama_sampler_init_grammar(vocab, g.gbnf.c_str(), "root");
  }
  if (s->grammar_ == nullptr) {
    return Status::InvalidArgument("the grammar does not parse as GBNF; check its rules");
  }
  if (g.prefill && !g.lazy && !g.generation_prompt.empty()) {
    // The template already wrote the start of the answer (e.g. "<think>\n"): move the grammar
    // past it, skipping a leading space some tokenizers add before a special token.
    SNUG_ASSIGN_OR_RETURN(auto prefill, model.Tokenize(g.generation_prompt, false, true));
    for (size_t i = 0; i < prefill.size(); ++i) {
      const std::string piece = model.TokenText(prefill[i]);
      if (i == 0 && !piece.empty() && std::isspace(static_cast<unsigned char>(piece[0])) &&
          !std::isspace(static_cast<unsigned char>(g.generation_prompt[0]))) {
        continue;
      }
      SNUG_RETURN_IF_ERROR(s->Accept(prefill[i]));
    }
  }
  return s;
}

Status TokenSampler::Accept(Token token) {
  // llama.cpp's grammar aborts on an end-of-generation token it does not expect; the sequence
  // ends on such a token anyway, so it is never fed to the grammar.
  if (model_.IsEndOfGeneration(token)) return Status::Ok();
  try {
    llama_sampler_accept(grammar_, token);
  } catch (const std::exception& e) {
    return Status::Runtime(
        fmt::format("the answer's grammar cannot accept the next token: {}", e.what()));
  }
  return Status::Ok();
}

Token TokenSampler::ConstrainedPick(const float* logits) {
  const int n_vocab = model_.n_vocab();
  candidates_.resize(static_cast<size_t>(n_vocab));
  for (int i = 0; i < n_vocab; ++i)
    candidates_[i] = {i, logits[i], 0.0f};
  llama_token_data_array cur = {candidates_.data(), candidates_.size(), -1, false};
  llama_sampler_apply(grammar_, &cur);
  bool any = false;
  for (size_t i = 0; i < cur.size && !any; ++i)
    any = std::isfinite(cur.data[i].logit);
  if (!any) return -1;
  llama_sampler_apply(chain_, &cur);
  if (cur.selected < 0 || !std::isfinite(cur.data[cur.selected].logit)) return -1;
  return cur.data[cur.selected].id;
}

Result<Token> TokenSampler::Sample(llama_context* ctx, int row, const float* logits, Token argmax) {
  if (grammar_ == nullptr) {
    if (!plain_greedy_) return llama_sampler_sample(chain_, ctx, row);
    return params_.ignore_eos && model_.IsEndOfGeneration(argmax)
               ? ArgmaxExcept(logits, model_.n_vocab(), model_)
               : argmax;
  }
  // Sample freely first (cheap), then ask the grammar whether it accepts the pick; only when it
  // does not is the whole row constrained and sampled again, as llama.cpp's common sampler does.
  Token token = argmax;
  if (!plain_greedy_) {
    const int n_vocab = model_.n_vocab();
    candidates_.resize(static_cast<size_t>(n_vocab));
    for (int i = 0; i < n_vocab; ++i)
      candidates_[i] = {i, logits[i], 0.0f};
    llama_token_data_array cur = {candidates_.data(), candidates_.size(), -1, false};
    llama_sampler_apply(chain_, &cur);
    token = cur.selected >= 0 ? cur.data[cur.selected].id : -1;
  }
  bool allowed = false;
  if (token >= 0) {
    llama_token_data single = {token, 1.0f, 0.0f};
    llama_token_data_array one = {&single, 1, -1, false};
    llama_sampler_apply(grammar_, &one);
    allowed = std::isfinite(one.data[0].logit);
  }
  if (!allowed) token = ConstrainedPick(logits);
  if (token < 0) {
    return Status::Runtime(
        "the answer's grammar allows no next token (the constraint cannot be completed), so the "
        "answer was stopped");
  }
  llama_sampler_accept(chain_, token);
  SNUG_RETURN_IF_ERROR(Accept(token));
  return token;
}

}  // namespace snug::engine
