#include "core/serial_thread.h"

#include <memory>

namespace snug {

SerialThread::SerialThread() : thread_([this] { Loop(); }) {}

SerialThread::~SerialThread() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void SerialThread::Run(const std::function<void()>& task) {
  if (std::this_thread::get_id() == thread_.get_id()) {
    task();
    return;
  }
  std::mutex done_mu;
  std::condition_variable done_cv;
  bool done = false;
  {
    std::lock_guard lock(mu_);
    queue_.push_back([&] {
      task();
      std::lock_guard done_lock(done_mu);
      done = true;
      done_cv.notify_all();
    });
  }
  cv_.notify_all();
  std::unique_lock done_lock(done_mu);
  done_cv.wait(done_lock, [&] { return done; });
}

bool SerialThread::RunUnless(std::function<void()> task, const std::function<bool()>& abandon,
                             std::chrono::milliseconds poll) {
  struct Done {
    std::mutex mu;
    std::condition_variable cv;
    bool done = false;
  };
  auto done = std::make_shared<Done>();
  {
    std::lock_guard lock(mu_);
    queue_.push_back([task = std::move(task), done] {
      task();
      std::lock_guard done_lock(done->mu);
      done->done = true;
      done->cv.notify_all();
    });
  }
  cv_.notify_all();
  std::unique_lock done_lock(done->mu);
  while (!done->cv.wait_for(done_lock, poll, [&] { return done->done; })) {
    done_lock.unlock();
    const bool give_up = abandon();
    done_lock.lock();
    if (give_up && !done->done) return false;
  }
  return true;
}

void SerialThread::Loop() {
  std::unique_lock lock(mu_);
  while (true) {
    cv_.wait(lock, [this] { return stop_ || !queue_.empty(); });
    if (queue_.empty()) return;  // stop_ with nothing left
    auto task = std::move(queue_.front());
    queue_.pop_front();
    lock.unlock();
    task();
    lock.lock();
  }
}

}  // namespace snug
