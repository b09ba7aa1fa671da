#include "server/generation.h"

#include <fmt/format.h>

#include <algorithm>

#include "server/prompt_budget.h"

namespace snug::server {

Generation::~Generation() {
  // A generation given up before its end (client gone, a HEAD request) frees its slot.
  if (job_) job_->Cancel();
}

const engine::Model& Generation::model() const {
  return lease_.scheduler().model();
}

const engine::ParsedChat& Generation::chat() const {
  static const engine::ParsedChat kEmpty;
  return reader_ ? reader_->message() : kEmpty;
}

Result<GenerationResult> Generation::Finish(const std::function<bool()>& client_gone) {
  Job::Update all = job_->TakeAll(client_gone);
  if (all.finish == engine::FinishReason::kError ||
      all.finish == engine::FinishReason::kCancelled) {
    return all.error.ok() ? Status::Internal("generation failed") : all.error;
  }
  GenerationResult result;
  result.text = std::move(all.text);
  if (reader_) {
    reader_->Append(result.text, /*final=*/true);
    result.chat = reader_->message();
  }
  result.finish = all.finish;
  result.stop = std::move(all.stop);
  result.first_token_at = all.first_token_at;
  result.logprobs = std::move(all.logprobs);
  result.prompt_tokens = all.prompt_tokens;
  result.cached_tokens = all.cached_tokens;
  result.completion_tokens = all.completion_tokens;
  return result;
}

bool Generation::Pump(StreamSink& sink, const StreamStep& step) {
  while (true) {
    Job::Update update;
    if (!job_->Take(&update, std::chrono::milliseconds(250))) {
      // Nothing new: make sure the client is still there.
      if (sink.ClientGone()) {
        job_->Cancel();
        return false;
      }
      continue;
    }
    std::vector<engine::ChatDelta> deltas;
    if (reader_) {
      const bool failed = update.done && (update.finish == engine::FinishReason::kError ||
                                          update.finish == engine::FinishReason::kCancelled);
      deltas = reader_->Append(update.text, update.done && !failed);
    }
    if (update.done && update.error.ok() &&
        (update.finish == engine::FinishReason::kError ||
         update.finish == engine::FinishReason::kCancelled)) {
      update.error = Status::Internal("generation failed");
    }
    if (!step(update, deltas)) {
      job_->Cancel();  // the client is gone: free the slot
      return false;
    }
    if (update.done) return true;
  }
}

Result<std::unique_ptr<Generation>> StartGeneration(const RouteContext& ctx, GenerationSpec spec,
                                                    const std::function<bool()>& client_gone) {
  if (*ctx.stopping) return Status::Unavailable("the server is shutting down");
  GenerationParams& params = spec.params;
  SNUG_RETURN_IF_ERROR(ResolveModelName(ctx, &params.model));
  SNUG_ASSIGN_OR_RETURN(ModelPool::Lease lease, ctx.pool->Acquire(params.model, spec.acquire));
  const engine::Model& model = lease.scheduler().model();
  ModelScheduler& scheduler = lease.scheduler();
  const uint32_t n_ctx = scheduler.n_ctx_seq();

  engine::SamplingParams sampling;
  std::shared_ptr<const engine::ChatParser> parser;
  Result<std::vector<engine::Token>> tokens = std::vector<engine::Token>{};
  const bool chat = !spec.raw_prompt.has_value();
  if (chat) {
    size_t user_bytes = 0;  // every template renders the users' messages whole
    for (const auto& message : spec.chat.messages)
      if (message.role == "user") user_bytes += message.content.size();
    SNUG_RETURN_IF_ERROR(CheckPromptBytes(model, n_ctx, user_bytes));
    SNUG_ASSIGN_OR_RETURN(engine::RenderedChat rendered, model.chat().Render(spec.chat));
    sampling.grammar = std::move(rendered.grammar);
    sampling.stop = std::move(rendered.stops);
    sampling.kept_special_tokens = std::move(rendered.preserved_tokens);
    parser = std::move(rendered.parser);
    tokens = TokenizeWithinLimits(*ctx.pool, model, n_ctx, rendered.prompt, PromptKind::kChat);
  } else {
    SNUG_ASSIGN_OR_RETURN(sampling.grammar,
                          engine::GrammarForCompletion(model, spec.json_schema, spec.grammar));
    tokens =
        TokenizeWithinLimits(*ctx.pool, model, n_ctx, *spec.raw_prompt, PromptKind::kCompletion);
  }
  if (!tokens.ok()) return tokens.status();

  const int64_t n_prompt = static_cast<int64_t>(tokens->size());
  sampling.temperature = params.temperature;
  sampling.top_p = params.top_p;
  sampling.frequency_penalty = params.frequency_penalty;
  sampling.presence_penalty = params.presence_penalty;
  if (spec.top_k) sampling.top_k = *spec.top_k;
  if (spec.min_p) sampling.min_p = *spec.min_p;
  if (spec.repeat_penalty) sampling.repeat_penalty = *spec.repeat_penalty;
  if (spec.repeat_last_n) sampling.repeat_last_n = *spec.repeat_last_n;
  for (const auto& [id, bias] : params.logit_bias) {
    if (id >= model.n_vocab()) {
      return Status::InvalidArgument(
          fmt::format("'logit_bias' names token {}, outside the vocabulary of model '{}' ({} "
                      "tokens)",
                      id, params.model, model.n_vocab()));
    }
    sampling.logit_bias.emplace_back(static_cast<engine::Token>(id), bias);
  }
  if (params.seed) sampling.seed = *params.seed;
  sampling.stop.insert(sampling.stop.end(), params.stop.begin(), params.stop.end());
  sampling.logprobs = params.logprobs;
  if (params.max_tokens) {
    sampling.max_tokens = *params.max_tokens;
  } else if (n_prompt < static_cast<int64_t>(n_ctx)) {
    // No limit asked: the slot's share of the context, or all that is left when the prompt
    // already exceeds that share (the request is then admitted alone).
    // (llama.cpp rounds the context up, so a share can exceed the sequence's own context.)
    const int64_t left = static_cast<int64_t>(n_ctx) - n_prompt;
    int64_t share = static_cast<int64_t>(scheduler.n_ctx() / scheduler.n_slots()) - n_prompt;
    sampling.max_tokens = static_cast<int>(share > 0 ? std::min(share, left) : left);
  } else {
    sampling.max_tokens = 1;  // Submit reports the prompt as too long
  }
  SNUG_ASSIGN_OR_RETURN(std::shared_ptr<Job> job, scheduler.Submit(std::move(*tokens), sampling));
  SNUG_RETURN_IF_ERROR(job->WaitAdmitted(client_gone));

  std::unique_ptr<Generation> g(new Generation());
  g->lease_ = std::move(lease);
  g->job_ = std::move(job);
  g->model_name_ = params.model;
  g->prompt_tokens_ = static_cast<int>(n_prompt);
  if (chat) g->reader_ = std::make_unique<engine::ChatReader>(std::move(parser));
  return g;
}

}  // namespace snug::server
