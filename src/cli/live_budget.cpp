#include "cli/live_budget.h"

#include <algorithm>
#include <utility>

namespace snug::cli {

LiveBudget::LiveBudget(hw::BudgetOptions options, hw::Budget start)
    : options_(std::move(options)),
      start_(start),
      current_(std::move(start)),
      read_at_(std::chrono::steady_clock::now()) {}

hw::Budget LiveBudget::Current() {
  std::lock_guard lock(mu_);
  const auto now = std::chrono::steady_clock::now();
  if (now - read_at_ < std::chrono::seconds(1)) return current_;
  read_at_ = now;
  hw::BudgetOptions fresh_options = options_;
  fresh_options.probe_devices = false;
  Result<hw::Budget> fresh = hw::ResolveBudget(fresh_options);
  if (!fresh.ok()) return current_;  // keep the last good reading
  current_ = start_;
  if (fresh->host_bytes < start_.host_bytes) {
    current_.host_bytes = fresh->host_bytes;
    current_.host_raw_bytes = fresh->host_raw_bytes;
    current_.headroom_bytes = fresh->headroom_bytes;
    current_.source = fresh->source;
    current_.detail = fresh->detail + " (re-read before this load)";
    for (auto& device : current_.devices) {
      if (device.unified) device.budget_bytes = std::min(device.budget_bytes, current_.host_bytes);
    }
  }
  return current_;
}

}  // namespace snug::cli
