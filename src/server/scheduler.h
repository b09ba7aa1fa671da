// One scheduler thread per loaded model: continuous batching over the engine's Runner. Requests
// (Jobs) wait in a bounded FIFO queue until their prompt plus max_tokens fits the KV cells not yet
// reserved by running jobs and a slot is free; admitted jobs join the running batch between Steps,
// so every active stream advances one token per Step (fair interleaving). A job that waits longer
// than the queue timeout, or finds the queue full, fails with Unavailable (HTTP 503).
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"

namespace snug::server {

// One generation request as the scheduler and the HTTP handler share it. The handler waits for
// admission, then takes text as it arrives; the scheduler thread fills it.
class Job {
 public:
  Job(std::vector<engine::Token> prompt, engine::SamplingParams params, int reserved_cells);

  // Blocks until the job runs (OK) or is rejected (queue timeout, shutdown, invalid, or cancelled
  // because `client_gone`, polled while waiting, returned true).
  Status WaitAdmitted(const std::function<bool()>& client_gone = nullptr);

  struct Update {
    std::string text;                             // new safe-to-show text since the last Take
    std::vector<engine::TokenLogprobs> logprobs;  // per sampled token since then, when asked
    bool done = false;
    engine::FinishReason finish = engine::FinishReason::kNone;
    std::string stop;  // the stop string that ended the answer, if one did (with done)
    Status error;      // set when the job ended with an error
    int prompt_tokens = 0;
    int cached_tokens = 0;  // of the prompt, found in the slot's kept cells (not decoded again)
    int completion_tokens = 0;
    // When the first token was sampled (the prompt's evaluation ended); unset before.
    std::optional<std::chrono::steady_clock::time_point> first_token_at;
  };
  // Waits up to `timeout` for new text or the end, then moves what arrived into *update.
  // Returns false on timeout with nothing new.
  bool Take(Update* update, std::chrono::milliseconds timeout);
  // Runs the job to its end and returns everything (non-streaming requests). `client_gone`, polled
  // while waiting, cancels the job when it returns true.
  Update TakeAll(const std::function<bool()>& client_gone = nullptr);

  // Client gone: the scheduler removes the sequence at the next Step and frees its cells.
  void Cancel();
  bool cancelled() const { return cancelled_.load(); }

 private:
  friend class ModelScheduler;
  enum class State { kQueued, kRunning, kDone };
  void MarkRunning(int cached_tokens);
  void Append(const engine::StepEvent& event);
  void Finish(engine::FinishReason finish, Status error);

  const std::vector<engine::Token> prompt_;
  const engine::SamplingParams params_;
  const int reserved_cells_;  // prompt + max_tokens: KV cells this job may come to hold
  std::chrono::steady_clock::time_point deadline_;
  engine::SeqId seq_id_ = -1;
  std::atomic<bool> cancelled_{false};

  std::mutex mu_;
  std::condition_variable cv_;
  State state_ = State::kQueued;
  std::string pending_text_;
  std::vector<engine::TokenLogprobs> pending_logprobs_;
  engine::FinishReason finish_ = engine::FinishReason::kNone;
  std::string stop_;
  Status error_;
  int prompt_tokens_ = 0;
  int cached_tokens_ = 0;
  int completion_tokens_ = 0;
  std::optional<std::chrono::steady_clock::time_point> first_token_at_;
};

struct SchedulerOptions {
  size_t queue_limit = 64;  // jobs waiting for admission beyond the running ones
  std::chrono::milliseconds queue_timeout{30000};
  // Most tokens (prompt + output) one request may use; 0 = what the context allows. The pool
  // sets the plan's per-sequence context: with a unified KV cache llama.cpp would allow more
  // positions than the model was trained for.
  uint32_t max_sequence_tokens = 0;
};

struct SchedulerStats {
  size_t active = 0;
  size_t queued = 0;
  uint32_t kv_cells_used = 0;
  uint32_t kv_cells_reserved = 0;
  uint32_t kv_cells_total = 0;
  uint32_t slots = 0;
  uint64_t prompt_tokens_total = 0;
  uint64_t prompt_tokens_reused_total = 0;  // found in a slot's kept cells, not decoded again
  uint64_t completion_tokens_total = 0;
  uint64_t rejected_total = 0;  // queue full or timed out
};

class ModelScheduler {
 public:
  // Takes ownership of the loaded model + context and starts the scheduler thread.
  ModelScheduler(std::string name, engine::Loaded loaded, SchedulerOptions options);
  ~ModelScheduler();  // Shutdown + join
  ModelScheduler(const ModelScheduler&) = delete;
  ModelScheduler& operator=(const ModelScheduler&) = delete;

  // Enqueues a generation. InvalidArgument when the prompt plus max_tokens cannot fit the
  // context even alone (the caller answers 400); Unavailable when the queue is full or the
  // scheduler is shutting down. max_tokens in params must be set (> 0).
  Result<std::shared_ptr<Job>> Submit(std::vector<engine::Token> prompt,
                                      engine::SamplingParams params);

  // Ends every queued and running job with `reason` (streams get a final error event), stops
  // the thread. Idempotent.
  void Shutdown(const Status& reason);
  // For a model whose scheduler thread will never return (a worker holding its layers was lost,
  // engine/workers.h): ends every queued and running job with `reason` from the calling thread
  // and refuses new ones. The scheduler must then never be destroyed (its thread cannot be
  // joined): the pool keeps it.
  void Abandon(const Status& reason);

  const std::string& name() const { return name_; }
  const engine::Model& model() const { return *loaded_.model; }
  uint32_t n_ctx() const { return n_ctx_; }          // KV cells shared by all slots
  uint32_t n_ctx_seq() const { return n_ctx_seq_; }  // most positions one request may use
  uint32_t n_slots() const { return n_slots_; }
  SchedulerStats Stats() const;
  // True when no job is queued or running.
  bool Idle() const;
  std::chrono::steady_clock::time_point last_used() const;
  // What llama.cpp allocated for this model (weights + KV + compute).
  uint64_t AllocatedBytes() const { return allocated_bytes_; }

 private:
  void Loop();
  void AdmitLocked();
  void ExpireQueuedLocked(std::chrono::steady_clock::time_point now);
  void ReleaseLocked(const std::shared_ptr<Job>& job);

  const std::string name_;
  engine::Loaded loaded_;
  const SchedulerOptions options_;
  uint32_t n_ctx_ = 0;
  uint32_t n_ctx_seq_ = 0;
  uint32_t n_slots_ = 0;
  uint64_t allocated_bytes_ = 0;
  std::unique_ptr<engine::Runner> runner_;  // used by the scheduler thread only

  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::shared_ptr<Job>> queue_;
  std::vector<std::shared_ptr<Job>> running_;  // indexed by seq id; null = free slot
  uint32_t reserved_cells_ = 0;
  std::atomic<uint32_t> used_cells_{0};
  bool stopping_ = false;
  Status stop_reason_;
  std::chrono::steady_clock::time_point last_used_;
  uint64_t prompt_tokens_total_ = 0;
  uint64_t prompt_tokens_reused_total_ = 0;
  uint64_t completion_tokens_total_ = 0;
  uint64_t rejected_total_ = 0;
  std::thread thread_;
};

}  // namespace snug::server
