// Continuous batching over one context: prompt chunks and next tokens of all active sequences go
// into one llama_batch per Step (two on a batch-invariant context: the next tokens, then one
// prompt chunk alone); every decode status and every sampled row of logits is checked.
#include <fmt/format.h>
#include <llama.h>

#include <algorithm>
#include <cmath>

#include "core/log.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/text_stream.h"

namespace snug::engine {
namespace {

// Log-softmax of one row of logits at `token`, and the `top` most likely tokens.
TokenLogprobs LogprobsOf(const float* logits, int n_vocab, Token token, int top) {
  float max = logits[0];
  for (int i = 1; i < n_vocab; ++i)
    max = std::max(max, logits[i]);
  double sum = 0;
  for (int i = 0; i < n_vocab; ++i)
    sum += std::exp(static_cast<double>(logits[i]) - max);
  const double log_norm = max + std::log(sum);
  TokenLogprobs out;
  out.token = token;
  out.logprob = static_cast<float>(logits[token] - log_norm);
  if (top > 0) {
    std::vector<Token> ids(static_cast<size_t>(n_vocab));
    for (int i = 0; i < n_vocab; ++i)
      ids[i] = i;
    const int k = std::min(top, n_vocab);
    std::partial_sort(ids.begin(), ids.begin() + k, ids.end(), [&](Token a, Token b) {
      return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
    });
    for (int i = 0; i < k; ++i)
      out.top.emplace_back(ids[i], static_cast<float>(logits[ids[i]] - log_norm));
  }
  return out;
}

// One pass over a row of logits: whether all are finite, and the first largest one's index (what
// llama.cpp's greedy sampler picks). -1 when some value is not finite.
Token FiniteArgmax(const float* values, int n) {
  Token best = 0;
  for (int i = 0; i < n; ++i) {
    if (!std::isfinite(values[i])) return -1;
    if (values[i] > values[best]) best = i;
  }
  return best;
}

std::string DecodeFailureMessage(int code) {
  if (code == 2) return "generation was aborted by the backend";
  if (code == -1) return "llama_decode rejected the batch as invalid (an engine bug)";
  return fmt::format(
      "llama_decode failed with status {}: backend compute failed (out of memory?); the answer "
      "was stopped so no garbage is emitted",
      code);
}

}  // namespace

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kNone:
      return "none";
    case FinishReason::kStop:
      return "stop";
    case FinishReason::kLength:
      return "length";
    case FinishReason::kCancelled:
      return "cancelled";
    case FinishReason::kError:
      return "error";
  }
  return "none";
}

struct Runner::Sequence {
  SeqId id = 0;
  std::vector<Token> prompt;
  size_t prompt_fed = 0;  // prompt tokens already decoded
  int n_past = 0;         // positions held in the KV cache
  SamplingParams params;
  std::unique_ptr<TokenSampler> sampler;
  TextStream text;
  Token pending = -1;  // sampled but not yet decoded
  int generated = 0;
  // Per step: tokens placed in the batch and the batch row whose logits belong to this sequence.
  int in_batch = 0;
  int logits_row = -1;
  uint64_t order = 0;          // admission order: prompts are processed first come, first served
  std::vector<Token> decoded;  // the tokens whose KV cells this sequence holds, in order

  Sequence(SeqId seq, std::vector<Token> tokens, SamplingParams p, std::unique_ptr<TokenSampler> s)
      : id(seq),
        prompt(std::move(tokens)),
        params(std::move(p)),
        sampler(std::move(s)),
        text(params.stop) {}
  uint32_t ReservedCells() const {
    return static_cast<uint32_t>(std::max<size_t>(n_past, prompt.size()));
  }
};

Runner::Runner(Context* context)
    : context_(context),
      // Batch-invariant decoding cuts every prompt at the same places as a solo run; a reused
      // prefix would move the cut.
      keep_prefixes_(!(context->options().batch_invariant && context->n_seq_max() > 1)) {
  auto* batch = new llama_batch(llama_batch_init(static_cast<int32_t>(context->n_batch()), 0, 1));
  batch_ = batch;
}

Runner::~Runner() {
  while (!sequences_.empty())
    EndSequence(sequences_.begin()->first, /*keep_prefix=*/false);
  while (!cached_.empty())
    DropPrefix(cached_.begin()->first);
  auto* batch = static_cast<llama_batch*>(batch_);
  llama_batch_free(*batch);
  delete batch;
}

bool Runner::HasWork() const {
  return !sequences_.empty();
}
size_t Runner::ActiveSequences() const {
  return sequences_.size();
}
bool Runner::IsActive(SeqId seq_id) const {
  return sequences_.count(seq_id) > 0;
}

uint32_t Runner::UsedCells() const {
  uint32_t used = CachedCells();
  for (const auto& [id, seq] : sequences_)
    used += seq->ReservedCells();
  return used;
}

uint32_t Runner::CachedCells() const {
  // With a KV stream per sequence a kept prefix takes nothing from the others.
  if (!context_->options().kv_unified && context_->n_seq_max() > 1) return 0;
  size_t cells = 0;
  for (const auto& [id, prefix] : cached_)
    cells += prefix.tokens.size();
  return static_cast<uint32_t>(cells);
}

size_t Runner::CachedPrefixLength(SeqId seq_id, const std::vector<Token>& prompt) const {
  auto it = cached_.find(seq_id);
  if (it == cached_.end() || prompt.empty()) return 0;
  const auto& tokens = it->second.tokens;
  // At least the last prompt token is decoded again: its logits give the first new token.
  const size_t limit = std::min(tokens.size(), prompt.size() - 1);
  size_t n = 0;
  while (n < limit && tokens[n] == prompt[n])
    ++n;
  return n;
}

void Runner::DropPrefix(SeqId seq_id) {
  if (cached_.erase(seq_id) > 0) {
    llama_memory_seq_rm(llama_get_memory(context_->raw()), seq_id, -1, -1);
  }
}

void Runner::MakeRoom(uint32_t cells) {
  while (FreeCells() < cells && CachedCells() > 0) {
    auto oldest = cached_.begin();
    for (auto it = cached_.begin(); it != cached_.end(); ++it) {
      if (it->second.used_at < oldest->second.used_at) oldest = it;
    }
    DropPrefix(oldest->first);
  }
}

void Runner::EndSequence(SeqId seq_id, bool keep_prefix) {
  auto it = sequences_.find(seq_id);
  if (it == sequences_.end()) return;
  Sequence& seq = *it->second;
  if (keep_prefix && keep_prefixes_ && !seq.decoded.empty()) {
    // Its cells stay: the next request in this slot that starts the same way skips them.
    cached_[seq_id] = CachedPrefix{std::move(seq.decoded), ++clock_};
  } else {
    llama_memory_seq_rm(llama_get_memory(context_->raw()), seq_id, -1, -1);
  }
  sequences_.erase(it);
}

uint32_t Runner::FreeCells() const {
  const uint32_t n_ctx = context_->n_ctx();
  const uint32_t used = UsedCells();
  return used >= n_ctx ? 0 : n_ctx - used;
}

Status Runner::AddSequence(SeqId seq_id, std::vector<Token> prompt, SamplingParams params,
                           size_t* reused) {
  if (reused) *reused = 0;
  if (seq_id < 0 || static_cast<uint32_t>(seq_id) >= context_->n_seq_max()) {
    return Status::InvalidArgument(
        fmt::format("sequence id {} is outside [0, {})", seq_id, context_->n_seq_max()));
  }
  if (sequences_.count(seq_id)) {
    return Status::InvalidArgument(fmt::format("sequence {} is already active", seq_id));
  }
  if (prompt.empty()) return Status::InvalidArgument("the prompt is empty");
  // The prompt plus at least the first generated token must fit: no silent truncation.
  if (prompt.size() >= context_->n_ctx_seq()) {
    return Status::ContextExceeded(PromptTooLongMessage(prompt.size(), context_->n_ctx_seq()));
  }
  const int n_vocab = context_->model().n_vocab();
  for (Token t : prompt) {
    if (t < 0 || t >= n_vocab) {
      return Status::InvalidArgument(fmt::format("token id {} is outside the vocabulary", t));
    }
  }
  // What this slot kept from its last request and this prompt repeats (a chat's history) is not
  // decoded again; the rest of the slot's cells go.
  llama_memory_t memory = llama_get_memory(context_->raw());
  size_t keep = CachedPrefixLength(seq_id, prompt);
  if (cached_.erase(seq_id) > 0 && keep > 0 &&
      !llama_memory_seq_rm(memory, seq_id, static_cast<llama_pos>(keep), -1)) {
    keep = 0;  // this memory cannot drop a tail (e.g. recurrent state): start over
  }
  const int32_t n_swa = llama_model_n_swa(context_->model().raw());
  if (keep > 0 && n_swa > 0) {
    // Sliding-window layers keep only the last window of the old request: the first new token
    // needs the n_swa positions before it.
    const llama_pos oldest = llama_memory_seq_pos_min(memory, seq_id);
    if (oldest < 0 || oldest > std::max<llama_pos>(0, static_cast<llama_pos>(keep) - n_swa)) {
      keep = 0;
    }
  }
  if (keep == 0) llama_memory_seq_rm(memory, seq_id, -1, -1);  // also cells of a past Runner
  const uint32_t need = static_cast<uint32_t>(prompt.size() - keep) + 1;
  MakeRoom(need);
  if (need > FreeCells()) {
    if (keep > 0) llama_memory_seq_rm(memory, seq_id, -1, -1);
    return Status::Unavailable(fmt::format(
        "the KV cache has {} free cells but the prompt needs {}; retry when other requests end",
        FreeCells(), need));
  }
  auto sampler = TokenSampler::Create(context_->model(), params);
  if (!sampler.ok()) {
    if (keep > 0) llama_memory_seq_rm(memory, seq_id, -1, -1);
    return sampler.status();
  }
  auto seq =
      std::make_unique<Sequence>(seq_id, std::move(prompt), std::move(params), std::move(*sampler));
  seq->order = next_order_++;
  seq->prompt_fed = keep;
  seq->n_past = static_cast<int>(keep);
  seq->decoded.assign(seq->prompt.begin(), seq->prompt.begin() + static_cast<ptrdiff_t>(keep));
  sequences_[seq_id] = std::move(seq);
  if (reused) *reused = keep;
  return Status::Ok();
}

void Runner::RemoveSequence(SeqId seq_id) {
  EndSequence(seq_id, /*keep_prefix=*/true);
}

void Runner::AddRow(Sequence& seq, Token token, bool want_logits) {
  auto& batch = *static_cast<llama_batch*>(batch_);
  const int row = batch.n_tokens++;
  batch.token[row] = token;
  batch.pos[row] = seq.n_past + seq.in_batch;
  batch.n_seq_id[row] = 1;
  batch.seq_id[row][0] = seq.id;
  batch.logits[row] = want_logits;
  ++seq.in_batch;
  if (want_logits) seq.logits_row = row;
}

void Runner::AddPromptChunk(Sequence& seq, size_t max_tokens) {
  const size_t chunk = std::min(max_tokens, seq.prompt.size() - seq.prompt_fed);
  for (size_t i = 0; i < chunk; ++i) {
    const bool last = seq.prompt_fed + i + 1 == seq.prompt.size();
    AddRow(seq, seq.prompt[seq.prompt_fed + i], last);
  }
}

Status Runner::Step(std::vector<StepEvent>* events) {
  auto& batch = *static_cast<llama_batch*>(batch_);
  const auto n_batch = static_cast<int32_t>(context_->n_batch());
  const uint32_t n_ctx = context_->n_ctx();
  const uint32_t n_ctx_seq = context_->n_ctx_seq();
  batch.n_tokens = 0;
  for (auto& [id, seq] : sequences_) {
    seq->in_batch = 0;
    seq->logits_row = -1;
  }

  // Generating sequences first (one token each, in seq id order, which llama.cpp's per-slot KV
  // streams need to keep them in one ubatch): they keep latency low while prompts stream in.
  std::vector<SeqId> full;
  uint32_t used = UsedCells();
  for (auto& [id, seq] : sequences_) {
    if (seq->pending < 0) continue;
    if (batch.n_tokens >= n_batch) break;
    if (static_cast<uint32_t>(seq->n_past) + 1 > n_ctx_seq || used + 1 > n_ctx) {
      events->push_back(FinishEvent(*seq, FinishReason::kLength, seq->text.Flush(), Status::Ok()));
      full.push_back(id);
      continue;
    }
    AddRow(*seq, seq->pending, true);
    ++used;
  }
  for (SeqId id : full)
    EndSequence(id, /*keep_prefix=*/true);
  MakeRoom(static_cast<uint32_t>(batch.n_tokens));

  if (context_->batch_invariant()) {
    // A prompt chunk never shares a decode with other sequences and always starts at a multiple of
    // n_batch, so every row is computed in the same shape as when the sequence runs alone.
    Status decoded = DecodeBatch(events);
    Sequence* next = nullptr;
    for (auto& [id, seq] : sequences_) {
      if (seq->prompt_fed >= seq->prompt.size()) continue;
      if (!next || seq->order < next->order) next = seq.get();
    }
    if (next == nullptr) return decoded;
    batch.n_tokens = 0;
    for (auto& [id, seq] : sequences_) {
      seq->in_batch = 0;
      seq->logits_row = -1;
    }
    AddPromptChunk(*next, static_cast<size_t>(n_batch));
    Status prompt = DecodeBatch(events);
    return decoded.ok() ? prompt : decoded;
  }
  // Then prompt chunks, as much as the batch holds (cells were reserved at AddSequence).
  for (auto& [id, seq] : sequences_) {
    if (seq->prompt_fed >= seq->prompt.size()) continue;
    const size_t room = static_cast<size_t>(n_batch - batch.n_tokens);
    if (room == 0) break;
    AddPromptChunk(*seq, room);
  }
  return DecodeBatch(events);
}

StepEvent Runner::FinishEvent(const Sequence& seq, FinishReason reason, std::string text,
                              Status error) const {
  StepEvent ev;
  ev.seq_id = seq.id;
  ev.text = std::move(text);
  ev.finish = reason;
  ev.error = std::move(error);
  ev.prompt_tokens = static_cast<int>(seq.prompt.size());
  ev.generated_tokens = seq.generated;
  return ev;
}

Status Runner::DecodeBatch(std::vector<StepEvent>* events) {
  auto& batch = *static_cast<llama_batch*>(batch_);
  if (batch.n_tokens == 0) return Status::Ok();
  std::vector<SeqId> finished;
  const int rc = context_->Decode(&batch);
  if (rc != 0) {
    Status first_error;
    for (auto& [id, seq] : sequences_) {
      if (seq->in_batch == 0) continue;
      if (rc == 1 && seq->pending >= 0) {
        // No KV slot for the next token: the context is full for this sequence.
        events->push_back(
            FinishEvent(*seq, FinishReason::kLength, seq->text.Flush(), Status::Ok()));
      } else if (rc == 1) {
        events->push_back(FinishEvent(
            *seq, FinishReason::kError, "",
            Status::Unavailable("the KV cache is full; retry when other requests end")));
      } else {
        Status error = Status::Runtime(DecodeFailureMessage(rc));
        if (first_error.ok()) first_error = error;
        events->push_back(FinishEvent(*seq, FinishReason::kError, "", error));
      }
      finished.push_back(id);
    }
    for (SeqId id : finished)
      EndSequence(id, /*keep_prefix=*/false);
    if (!first_error.ok()) spdlog::debug("decode failed: {}", first_error.message());
    return first_error;
  }

  Status first_error;
  std::vector<SeqId> failed;
  const Model& model = context_->model();
  const int n_vocab = model.n_vocab();
  for (auto& [id, seq] : sequences_) {
    if (seq->in_batch == 0) continue;
    seq->n_past += seq->in_batch;
    if (seq->pending >= 0) {
      seq->decoded.push_back(seq->pending);
      seq->pending = -1;
    } else {
      const auto from = seq->prompt.begin() + static_cast<ptrdiff_t>(seq->prompt_fed);
      seq->decoded.insert(seq->decoded.end(), from, from + seq->in_batch);
      seq->prompt_fed += seq->in_batch;
    }
    seq->in_batch = 0;
    if (seq->logits_row < 0) continue;  // mid-prompt: nothing to sample yet
    const int row = seq->logits_row;
    seq->logits_row = -1;

    float* logits = llama_get_logits_ith(context_->raw(), row);
    if (logits != nullptr && context_->nan_injected_) {
      for (int i = 0; i < n_vocab; ++i)
        logits[i] = std::nanf("");
    }
    const Token argmax = logits == nullptr ? -1 : FiniteArgmax(logits, n_vocab);
    if (argmax < 0) {
      // Never sample from these: a backend that ran out of memory (Metal, CUDA) or broke
      // produces NaN/Inf rows, and sampling them yields garbage text.
      Status error = Status::Runtime(
          "the backend produced non-finite logits (NaN/Inf); it probably ran out of memory or "
          "computed invalid output, so the answer was stopped");
      if (first_error.ok()) first_error = error;
      events->push_back(FinishEvent(*seq, FinishReason::kError, "", error));
      failed.push_back(id);
      continue;
    }

    if (observer_) observer_(id, logits, n_vocab);
    Result<Token> sampled = seq->sampler->Sample(context_->raw(), row, logits, argmax);
    if (!sampled.ok()) {
      // A grammar that dead-ends: stop this answer with the reason, never loop or emit garbage.
      if (first_error.ok()) first_error = sampled.status();
      events->push_back(
          FinishEvent(*seq, FinishReason::kError, seq->text.Flush(), sampled.status()));
      failed.push_back(id);
      continue;
    }
    const Token token = *sampled;
    ++seq->generated;
    StepEvent ev;
    ev.seq_id = id;
    ev.token = token;
    if (seq->params.logprobs >= 0) {
      ev.logprobs = LogprobsOf(logits, n_vocab, token, std::min(seq->params.logprobs, 20));
    }
    ev.prompt_tokens = static_cast<int>(seq->prompt.size());
    ev.generated_tokens = seq->generated;
    if (!seq->params.ignore_eos && model.IsEndOfGeneration(token)) {
      ev.text = seq->text.Flush();
      ev.finish = FinishReason::kStop;
    } else {
      ev.text = seq->text.Append(seq->sampler->KeepsSpecialText(token) ? model.TokenText(token)
                                                                       : model.TokenPiece(token));
      if (seq->text.stopped()) {
        ev.finish = FinishReason::kStop;
        ev.stop = seq->text.matched_stop();
      } else if (seq->params.max_tokens >= 0 && seq->generated >= seq->params.max_tokens) {
        ev.text += seq->text.Flush();
        ev.finish = FinishReason::kLength;
      } else {
        seq->pending = token;
      }
    }
    if (ev.finish != FinishReason::kNone) finished.push_back(id);
    events->push_back(std::move(ev));
  }
  for (SeqId id : finished)
    EndSequence(id, /*keep_prefix=*/true);
  for (SeqId id : failed)
    EndSequence(id, /*keep_prefix=*/false);
  batch.n_tokens = 0;
  return first_error;
}

// ---------------------------------------------------------------------------------------------

Result<Generation> Generate(Context* context, const std::vector<Token>& prompt,
                            const SamplingParams& params,
                            const std::function<bool(std::string_view)>& on_text) {
  Runner runner(context);
  return Generate(&runner, prompt, params, on_text);
}

Result<Generation> Generate(Runner* runner_ptr, const std::vector<Token>& prompt,
                            const SamplingParams& params,
                            const std::function<bool(std::string_view)>& on_text) {
  Runner& runner = *runner_ptr;
  SNUG_RETURN_IF_ERROR(runner.AddSequence(0, prompt, params));
  Generation gen;
  gen.prompt_tokens = static_cast<int>(prompt.size());
  std::vector<StepEvent> events;
  while (runner.HasWork()) {
    events.clear();
    Status status = runner.Step(&events);
    for (auto& ev : events) {
      if (ev.finish == FinishReason::kError) return ev.error;
      if (ev.token >= 0) gen.tokens.push_back(ev.token);
      gen.text += ev.text;
      if (on_text && !ev.text.empty() && !on_text(ev.text)) {
        runner.RemoveSequence(0);
        gen.finish = FinishReason::kCancelled;
        return gen;
      }
      if (ev.finish != FinishReason::kNone) gen.finish = ev.finish;
    }
    SNUG_RETURN_IF_ERROR(status);
  }
  return gen;
}

}  // namespace snug::engine
