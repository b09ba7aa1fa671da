#include "server/events.h"

#include <chrono>

namespace snug::server {

void EventLog::Record(std::string kind, std::string model, uint64_t bytes, std::string message) {
  PoolEvent event;
  event.time_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::system_clock::now().time_since_epoch())
                      .count();
  event.kind = std::move(kind);
  event.model = std::move(model);
  event.bytes = bytes;
  event.message = std::move(message);
  std::lock_guard lock(mu_);
  event.id = next_id_++;
  events_.push_back(std::move(event));
  while (events_.size() > kCapacity)
    events_.pop_front();
}

std::vector<PoolEvent> EventLog::Since(uint64_t since) const {
  std::lock_guard lock(mu_);
  std::vector<PoolEvent> out;
  for (const auto& e : events_) {
    if (e.id > since) out.push_back(e);
  }
  return out;
}

uint64_t EventLog::last_id() const {
  std::lock_guard lock(mu_);
  return next_id_ - 1;
}

EventLog& PoolEvents() {
  static EventLog log;
  return log;
}

nlohmann::json EventToJson(const PoolEvent& e) {
  return {{"id", e.id},       {"time_ms", e.time_ms}, {"kind", e.kind},
          {"model", e.model}, {"bytes", e.bytes},     {"message", e.message}};
}

}  // namespace snug::server
