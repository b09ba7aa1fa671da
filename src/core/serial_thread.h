// One long-lived thread that runs the tasks given to it, one at a time, in order.
#pragma once

#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

namespace snug {

class SerialThread {
 public:
  SerialThread();
  // Runs the tasks already queued, then joins.
  ~SerialThread();
  SerialThread(const SerialThread&) = delete;
  SerialThread& operator=(const SerialThread&) = delete;

  // Runs `task` on the thread and returns when it has finished. Called from the thread itself,
  // runs it at once (no deadlock). `task` must not throw.
  void Run(const std::function<void()>& task);
  // Runs `task` on the thread like Run, but stops waiting when `abandon`, polled every `poll`,
  // returns true: then returns false while the task may still be running (or stuck), so it must
  // own what it touches (capture by value or shared_ptr). The thread is then unusable for later
  // tasks if the task never ends: the caller replaces it (and must not destroy it, which would
  // join).
  bool RunUnless(std::function<void()> task, const std::function<bool()>& abandon,
                 std::chrono::milliseconds poll);

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace snug
