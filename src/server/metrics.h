// Prometheus text exposition for GET /metrics: HTTP responses by API and status, tokens in/out, and
// per model queue depth, KV cells and planned vs allocated memory.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "server/model_pool.h"

namespace snug::server {

class Metrics {
 public:
  // By API: "openai", "responses", "anthropic", "ollama", or "snug" (management routes).
  void CountResponse(const std::string& path, int http_status);
  void CountTokens(uint64_t prompt_tokens, uint64_t completion_tokens);

  // The whole /metrics page, reading the pool's current state.
  std::string Render(const ModelPool& pool) const;

 private:
  mutable std::mutex mu_;
  std::map<std::pair<std::string, int>, uint64_t> responses_;  // (api, status) -> count
  std::atomic<uint64_t> prompt_tokens_{0};
  std::atomic<uint64_t> completion_tokens_{0};
};

// Resident set size of this process from /proc/self/statm; 0 when unavailable.
uint64_t ProcessResidentBytes();

}  // namespace snug::server
