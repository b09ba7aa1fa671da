// What the model pool did, as it happened: loads, unloads, evictions and refusals, kept in a small
// ring (the last kCapacity events) so the web page can show them live (GET /v1/events). The log
// is process-wide because a process serves one pool, and the pool's header stays free of it.
#pragma once

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <vector>

namespace snug::server {

struct PoolEvent {
  uint64_t id = 0;      // 1, 2, ... in the order they happened
  int64_t time_ms = 0;  // unix milliseconds
  std::string kind;     // "load", "unload", "evict", "expire", "refuse"
  std::string model;
  uint64_t bytes = 0;  // the model's planned peak (for a refusal: what it needed)
  std::string message;
};

class EventLog {
 public:
  static constexpr size_t kCapacity = 200;

  void Record(std::string kind, std::string model, uint64_t bytes, std::string message);
  // Events with id > `since`, oldest first (at most kCapacity: older ones have dropped out).
  std::vector<PoolEvent> Since(uint64_t since) const;
  uint64_t last_id() const;

 private:
  mutable std::mutex mu_;
  std::deque<PoolEvent> events_;
  uint64_t next_id_ = 1;
};

// The process's log, fed by ModelPool.
EventLog& PoolEvents();

nlohmann::json EventToJson(const PoolEvent& event);

}  // namespace snug::server
