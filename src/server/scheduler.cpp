#include "server/scheduler.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>

namespace snug::server {

using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------------------------------------
// Job

Job::Job(std::vector<engine::Token> prompt, engine::SamplingParams params, int reserved_cells)
    : prompt_(std::move(prompt)), params_(std::move(params)), reserved_cells_(reserved_cells) {
  prompt_tokens_ = static_cast<int>(prompt_.size());
}

Status Job::WaitAdmitted(const std::function<bool()>& client_gone) {
  std::unique_lock lock(mu_);
  // A client that leaves while queued is cancelled; the scheduler drops the job from the queue.
  while (!cv_.wait_for(lock, std::chrono::milliseconds(100),
                       [&] { return state_ != State::kQueued; })) {
    if (client_gone && !cancelled() && client_gone()) Cancel();
  }
  if (state_ == State::kDone && !error_.ok() && completion_tokens_ == 0) return error_;
  return Status::Ok();
}

bool Job::Take(Update* update, std::chrono::milliseconds timeout) {
  std::unique_lock lock(mu_);
  bool ready = cv_.wait_for(lock, timeout, [&] {
    return !pending_text_.empty() || !pending_logprobs_.empty() || state_ == State::kDone;
  });
  if (!ready) return false;
  update->text = std::move(pending_text_);
  pending_text_.clear();
  update->logprobs = std::move(pending_logprobs_);
  pending_logprobs_.clear();
  update->done = state_ == State::kDone;
  update->finish = finish_;
  update->stop = stop_;
  update->first_token_at = first_token_at_;
  update->error = error_;
  update->prompt_tokens = prompt_tokens_;
  update->cached_tokens = cached_tokens_;
  update->completion_tokens = completion_tokens_;
  return true;
}

Job::Update Job::TakeAll(const std::function<bool()>& client_gone) {
  Update all;
  std::unique_lock lock(mu_);
  // Look at the connection now and then: a client that hung up cancels the job, which frees its
  // slot at the scheduler's next step instead of running on to max_tokens.
  while (
      !cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return state_ == State::kDone; })) {
    if (client_gone && !cancelled() && client_gone()) Cancel();
  }
  all.text = std::move(pending_text_);
  pending_text_.clear();
  all.logprobs = std::move(pending_logprobs_);
  pending_logprobs_.clear();
  all.done = true;
  all.finish = finish_;
  all.stop = stop_;
  all.first_token_at = first_token_at_;
  all.error = error_;
  all.prompt_tokens = prompt_tokens_;
  all.cached_tokens = cached_tokens_;
  all.completion_tokens = completion_tokens_;
  return all;
}

void Job::Cancel() {
  cancelled_.store(true);
}

void Job::MarkRunning(int cached_tokens) {
  std::lock_guard lock(mu_);
  state_ = State::kRunning;
  cached_tokens_ = cached_tokens;
  cv_.notify_all();
}

void Job::Append(const engine::StepEvent& event) {
  std::lock_guard lock(mu_);
  pending_text_ += event.text;
  if (event.logprobs) pending_logprobs_.push_back(*event.logprobs);
  if (event.prompt_tokens > 0) prompt_tokens_ = event.prompt_tokens;
  if (!event.stop.empty()) stop_ = event.stop;
  completion_tokens_ = std::max(completion_tokens_, event.generated_tokens);
  if (!first_token_at_ && event.token >= 0) first_token_at_ = std::chrono::steady_clock::now();
  if (!event.text.empty() || event.logprobs) cv_.notify_all();
}

void Job::Finish(engine::FinishReason finish, Status error) {
  std::lock_guard lock(mu_);
  if (state_ == State::kDone) return;
  state_ = State::kDone;
  finish_ = finish;
  error_ = std::move(error);
  cv_.notify_all();
}

// ---------------------------------------------------------------------------------------------
// ModelScheduler

ModelScheduler::ModelScheduler(std::string name, engine::Loaded loaded, SchedulerOptions options)
    : name_(std::move(name)), loaded_(std::move(loaded)), options_(options) {
  n_ctx_ = loaded_.context->n_ctx();
  n_ctx_seq_ = std::min(n_ctx_, loaded_.context->n_ctx_seq());
  if (options_.max_sequence_tokens > 0)
    n_ctx_seq_ = std::min(n_ctx_seq_, options_.max_sequence_tokens);
  n_slots_ = std::max<uint32_t>(1, loaded_.context->n_seq_max());
  allocated_bytes_ = loaded_.context->Memory().TotalBytes();
  runner_ = std::make_unique<engine::Runner>(loaded_.context.get());
  running_.resize(n_slots_);
  last_used_ = Clock::now();
  thread_ = std::thread([this] { Loop(); });
}

ModelScheduler::~ModelScheduler() {
  Shutdown(Status::Unavailable(fmt::format("model '{}' was unloaded", name_)));
  if (thread_.joinable()) thread_.join();
  runner_.reset();  // before the context it schedules over
}

Result<std::shared_ptr<Job>> ModelScheduler::Submit(std::vector<engine::Token> prompt,
                                                    engine::SamplingParams params) {
  const size_t n_prompt = prompt.size();
  if (n_prompt == 0) return Status::InvalidArgument("the prompt is empty");
  if (n_prompt >= n_ctx_seq_) {
    return Status::ContextExceeded(engine::PromptTooLongMessage(n_prompt, n_ctx_seq_));
  }
  if (params.max_tokens <= 0) return Status::Internal("max_tokens was not resolved");
  const uint64_t need = n_prompt + static_cast<uint64_t>(params.max_tokens);
  if (need > n_ctx_seq_) {
    return Status::InvalidArgument(fmt::format(
        "the prompt is {} tokens and max_tokens is {}: together {} tokens, more than the {}-token "
        "context of model '{}'; ask for at most {} tokens",
        n_prompt, params.max_tokens, need, n_ctx_seq_, name_, n_ctx_seq_ - n_prompt));
  }
  auto job = std::make_shared<Job>(std::move(prompt), std::move(params), static_cast<int>(need));
  std::lock_guard lock(mu_);
  if (stopping_) return Status::Unavailable("the server is shutting down");
  size_t free_slots = std::count(running_.begin(), running_.end(), nullptr);
  if (queue_.size() >= options_.queue_limit + free_slots) {
    ++rejected_total_;
    return Status::Unavailable(fmt::format(
        "model '{}' is busy: {} requests running and {} waiting (queue limit {}); retry later",
        name_, n_slots_ - free_slots, queue_.size(), options_.queue_limit));
  }
  job->deadline_ = Clock::now() + options_.queue_timeout;
  queue_.push_back(job);
  last_used_ = Clock::now();
  cv_.notify_all();
  return job;
}

void ModelScheduler::Shutdown(const Status& reason) {
  std::lock_guard lock(mu_);
  if (stopping_) return;
  stopping_ = true;
  stop_reason_ = reason;
  cv_.notify_all();
}

void ModelScheduler::Abandon(const Status& reason) {
  std::lock_guard lock(mu_);
  stopping_ = true;
  stop_reason_ = reason;
  for (auto& job : queue_)
    job->Finish(engine::FinishReason::kError, reason);
  for (auto& job : running_) {
    if (job) job->Finish(engine::FinishReason::kError, reason);
  }
  cv_.notify_all();
}

SchedulerStats ModelScheduler::Stats() const {
  std::lock_guard lock(mu_);
  SchedulerStats s;
  s.active = n_slots_ - std::count(running_.begin(), running_.end(), nullptr);
  s.queued = queue_.size();
  s.kv_cells_used = used_cells_.load();
  s.kv_cells_reserved = reserved_cells_;
  s.kv_cells_total = n_ctx_;
  s.slots = n_slots_;
  s.prompt_tokens_total = prompt_tokens_total_;
  s.prompt_tokens_reused_total = prompt_tokens_reused_total_;
  s.completion_tokens_total = completion_tokens_total_;
  s.rejected_total = rejected_total_;
  return s;
}

bool ModelScheduler::Idle() const {
  std::lock_guard lock(mu_);
  return queue_.empty() && std::count(running_.begin(), running_.end(), nullptr) ==
                               static_cast<std::ptrdiff_t>(running_.size());
}

std::chrono::steady_clock::time_point ModelScheduler::last_used() const {
  std::lock_guard lock(mu_);
  return last_used_;
}

void ModelScheduler::ReleaseLocked(const std::shared_ptr<Job>& job) {
  if (job->seq_id_ >= 0 && job->seq_id_ < static_cast<int>(running_.size()) &&
      running_[job->seq_id_] == job) {
    running_[job->seq_id_] = nullptr;
    reserved_cells_ -= job->reserved_cells_;
  }
}

void ModelScheduler::ExpireQueuedLocked(Clock::time_point now) {
  for (auto it = queue_.begin(); it != queue_.end();) {
    auto& job = *it;
    if (job->cancelled()) {
      job->Finish(engine::FinishReason::kCancelled, Status::Cancelled("the client went away"));
      it = queue_.erase(it);
    } else if (now >= job->deadline_) {
      ++rejected_total_;
      job->Finish(engine::FinishReason::kError,
                  Status::Unavailable(fmt::format(
                      "model '{}' is busy: the request waited {:.1f} s in the queue without "
                      "room in the KV cache ({} of {} cells reserved); retry later",
                      name_, options_.queue_timeout.count() / 1000.0, reserved_cells_, n_ctx_)));
      it = queue_.erase(it);
    } else {
      ++it;
    }
  }
}

void ModelScheduler::AdmitLocked() {
  while (!queue_.empty()) {
    auto job = queue_.front();
    // The free slot that still holds the longest start of this prompt (a chat's earlier turns).
    auto slot = running_.end();
    size_t best = 0;
    for (auto it = running_.begin(); it != running_.end(); ++it) {
      if (*it != nullptr) continue;
      const size_t held = runner_->CachedPrefixLength(
          static_cast<engine::SeqId>(it - running_.begin()), job->prompt_);
      if (slot == running_.end() || held > best) slot = it, best = held;
    }
    if (slot == running_.end()) return;
    // Reserve the whole prompt + max_tokens so a running job can never run out of cells.
    if (reserved_cells_ + job->reserved_cells_ > n_ctx_) return;
    const auto seq = static_cast<engine::SeqId>(slot - running_.begin());
    size_t reused = 0;
    Status added = runner_->AddSequence(seq, job->prompt_, job->params_, &reused);
    if (added.code() == Code::kUnavailable) return;  // cells still held: retry after a Step
    queue_.pop_front();
    if (!added.ok()) {
      job->Finish(engine::FinishReason::kError, added);
      continue;
    }
    job->seq_id_ = seq;
    *slot = job;
    reserved_cells_ += job->reserved_cells_;
    prompt_tokens_total_ += job->prompt_.size();
    prompt_tokens_reused_total_ += reused;
    job->MarkRunning(static_cast<int>(reused));
  }
}

void ModelScheduler::Loop() {
  std::vector<engine::StepEvent> events;
  while (true) {
    {
      std::unique_lock lock(mu_);
      const auto now = Clock::now();
      ExpireQueuedLocked(now);
      for (auto& job : running_) {
        if (job && job->cancelled()) {
          runner_->RemoveSequence(job->seq_id_);
          job->Finish(engine::FinishReason::kCancelled, Status::Cancelled("the client went away"));
          auto keep = job;
          ReleaseLocked(keep);
        }
      }
      if (stopping_) break;
      AdmitLocked();
      used_cells_.store(runner_->UsedCells());
      if (!runner_->HasWork()) {
        // Wake for new jobs; poll while jobs wait so cancellations and deadlines are seen.
        if (queue_.empty()) {
          cv_.wait(lock);
        } else {
          cv_.wait_for(lock, std::chrono::milliseconds(50));
        }
        continue;
      }
    }
    events.clear();
    Status stepped = runner_->Step(&events);
    if (!stepped.ok()) spdlog::warn("model '{}': {}", name_, stepped.message());
    std::lock_guard lock(mu_);
    for (const auto& event : events) {
      if (event.seq_id < 0 || event.seq_id >= static_cast<int>(running_.size())) continue;
      auto job = running_[event.seq_id];
      if (!job) continue;
      job->Append(event);
      if (event.token >= 0) ++completion_tokens_total_;
      if (event.finish != engine::FinishReason::kNone) {
        job->Finish(event.finish, event.error);
        ReleaseLocked(job);
      }
    }
    used_cells_.store(runner_->UsedCells());
    last_used_ = Clock::now();
  }
  // Shutting down: end everything with the reason; streams turn it into a final error event.
  std::lock_guard lock(mu_);
  for (auto& job : running_) {
    if (!job) continue;
    runner_->RemoveSequence(job->seq_id_);
    job->Finish(engine::FinishReason::kError, stop_reason_);
    job = nullptr;
  }
  for (auto& job : queue_)
    job->Finish(engine::FinishReason::kError, stop_reason_);
  queue_.clear();
  reserved_cells_ = 0;
}

}  // namespace snug::server
