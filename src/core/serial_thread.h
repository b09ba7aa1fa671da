// One long-lived thread that runs the tasks given to it, one at a time, in order.
#pragma once

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

 private:
  void Loop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace snug
