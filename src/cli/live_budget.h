// The memory budget of a long-running server: re-read from the machine (meminfo, cgroup) before
// each model load, so memory other processes took since start-up is respected.
#pragma once

#include <chrono>
#include <mutex>

#include "hw/budget.h"
#include "hw/detect.h"

namespace snug::cli {

class LiveBudget {
 public:
  LiveBudget(hw::BudgetOptions options, hw::Budget start);

  // The start-up budget, lowered to a fresh reading when that is lower. Never raised above the
  // start-up figure: a server's own mapped weights make the host look roomier than it is (they
  // are page cache, which MemAvailable counts), and start-up is when nothing of snug was loaded.
  // Devices keep their start-up budgets. Re-reads at most once a second.
  hw::Budget Current();

 private:
  const hw::BudgetOptions options_;
  const hw::Budget start_;
  std::mutex mu_;
  hw::Budget current_;
  std::chrono::steady_clock::time_point read_at_;
};

}  // namespace snug::cli
