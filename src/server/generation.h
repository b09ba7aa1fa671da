// Generation as every API dialect needs it. A dialect translates its request into a
// GenerationSpec (snug's terms), StartGeneration runs the shared admission — model lease (loading
// and evicting as the pool decides), prompt checks, tokenization within the budget, the scheduler's
// queue — and the answer comes back whole (Finish) or as a stream of updates (Pump). The dialect
// then writes those in its own wire format. Nothing here knows any wire format.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/chat.h"
#include "engine/engine.h"
#include "server/http_types.h"
#include "server/model_pool.h"
#include "server/routes.h"
#include "server/wire.h"

namespace snug::server {

struct GenerationSpec {
  // model ("" = the server's default model), max_tokens, temperature, top_p, penalties,
  // logit_bias, seed, stop, logprobs. `stream` and `include_usage` are the dialect's business.
  GenerationParams params;
  // A chat, rendered with the model's template (tools, structured output, reasoning)...
  engine::ChatInput chat;
  // ...unless a raw prompt is given: then that text is tokenized as is (special tokens parsed,
  // BOS added), constrained by `json_schema` or `grammar` when set.
  std::optional<std::string> raw_prompt;
  std::string json_schema;
  std::string grammar;
  // Sampler settings OpenAI's API lacks (Ollama's options); unset = snug's defaults.
  std::optional<int> top_k;
  std::optional<float> min_p;
  std::optional<float> repeat_penalty;
  std::optional<int> repeat_last_n;
  // Context the request needs at least (Ollama's num_ctx) and the model's keep-alive from now.
  AcquireOptions acquire;
};

// The whole answer of a finished generation.
struct GenerationResult {
  std::string text;         // the model's text as generated
  engine::ParsedChat chat;  // chats: content, reasoning and tool calls read from `text`
  engine::FinishReason finish = engine::FinishReason::kNone;  // kStop or kLength
  std::string stop;  // the stop string that ended the answer ("" when none did)
  std::vector<engine::TokenLogprobs> logprobs;  // when params.logprobs >= 0
  int prompt_tokens = 0;
  int cached_tokens = 0;  // of the prompt, reused from the slot's earlier turn
  int completion_tokens = 0;
  // When the first token was sampled: the prompt's evaluation ends there (Ollama's timings).
  std::optional<std::chrono::steady_clock::time_point> first_token_at;
};

// An admitted generation. Destroying it before the end cancels the job and frees its slot.
class Generation {
 public:
  ~Generation();
  Generation(const Generation&) = delete;
  Generation& operator=(const Generation&) = delete;

  const std::string& model_name() const { return model_name_; }
  const engine::Model& model() const;
  bool is_chat() const { return reader_ != nullptr; }
  int prompt_tokens() const { return prompt_tokens_; }

  // Runs to the end and returns the whole answer; the job's error (Cancelled when `client_gone`
  // turned true, Runtime for a backend failure, ...) when it did not finish.
  Result<GenerationResult> Finish(const std::function<bool()>& client_gone);

  // One step of a stream: the update as the scheduler gave it and, for chats, the content /
  // reasoning / tool-call deltas read from its text (for raw prompts, `update.text` is the delta).
  // `update.done` marks the last one; its `finish` is kError/kCancelled with `update.error` set
  // when the generation failed (write the dialect's error event then).
  using StreamStep =
      std::function<bool(const Job::Update& update, const std::vector<engine::ChatDelta>& deltas)>;
  // Feeds every update to `step` until the last one, which it also gets. Returns true when the
  // generation ended (successfully or not) and false when the client left: `step` returned false
  // (a write failed) or the sink reported the client gone while waiting. Either way the job is
  // cancelled if still running.
  bool Pump(StreamSink& sink, const StreamStep& step);

  // The parsed chat so far (after Pump; tool calls announced, content).
  const engine::ParsedChat& chat() const;

  // For dialects with fields beyond these (OpenAI's logprobs formatting needs the model's pieces).
  ModelPool::Lease& lease() { return lease_; }
  Job& job() { return *job_; }

 private:
  friend Result<std::unique_ptr<Generation>> StartGeneration(const RouteContext&, GenerationSpec,
                                                             const std::function<bool()>&);
  Generation() = default;

  ModelPool::Lease lease_;
  std::shared_ptr<Job> job_;
  std::unique_ptr<engine::ChatReader> reader_;  // chats only
  std::string model_name_;
  int prompt_tokens_ = 0;
};

// Admission, shared by every dialect: resolves the model name (the default model when empty),
// acquires the model (loading it with spec.acquire), checks and tokenizes the prompt within the
// context and the budget, submits the job and waits until the scheduler runs it. The errors carry
// the codes the dialects map to HTTP: NotFound (unknown model), InvalidArgument, ContextExceeded
// (with the token numbers), DoesNotFit (with the memory numbers), Unavailable (queue full or
// timed out, shutting down), Corrupt (a malformed model file).
Result<std::unique_ptr<Generation>> StartGeneration(const RouteContext& ctx, GenerationSpec spec,
                                                    const std::function<bool()>& client_gone);

}  // namespace snug::server
