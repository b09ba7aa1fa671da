#include "server/metrics.h"

#include <fmt/format.h>
#include <unistd.h>

#include <fstream>

namespace snug::server {
namespace {

std::string Label(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\' || c == '"') out += '\\';
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out += c;
  }
  return out;
}

void Header(std::string* out, const char* name, const char* type, const char* help) {
  *out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

// The API a path belongs to, for the requests counter's label.
static std::string ApiOf(const std::string& path) {
  auto starts = [&path](const char* prefix) { return path.rfind(prefix, 0) == 0; };
  if (path == "/" || starts("/api/")) return "ollama";
  if (starts("/v1/messages")) return "anthropic";
  if (starts("/v1/responses") || starts("/responses")) return "responses";
  if (starts("/v1/chat/") || starts("/chat/") || starts("/v1/completions") ||
      starts("/completions") || starts("/v1/embeddings") || starts("/embeddings") ||
      path == "/v1/models" || path == "/models" ||
      ((starts("/v1/models/") || starts("/models/")) && path != "/v1/models/load" &&
       path != "/v1/models/unload")) {
    return "openai";
  }
  return "snug";
}

void Metrics::CountResponse(const std::string& path, int http_status) {
  const std::string api = ApiOf(path);
  std::lock_guard lock(mu_);
  ++responses_[{api, http_status}];
}

void Metrics::CountTokens(uint64_t prompt_tokens, uint64_t completion_tokens) {
  prompt_tokens_ += prompt_tokens;
  completion_tokens_ += completion_tokens;
}

uint64_t ProcessResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  uint64_t size_pages = 0, resident_pages = 0;
  if (!(statm >> size_pages >> resident_pages)) return 0;
  return resident_pages * static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
}

std::string Metrics::Render(const ModelPool& pool) const {
  std::string out;
  Header(&out, "snug_http_requests_total", "counter", "HTTP responses by API and status code.");
  {
    std::lock_guard lock(mu_);
    for (const auto& [key, n] : responses_) {
      out += fmt::format("snug_http_requests_total{{api=\"{}\",status=\"{}\"}} {}\n", key.first,
                         key.second, n);
    }
  }
  Header(&out, "snug_prompt_tokens_total", "counter", "Prompt tokens of finished requests.");
  out += fmt::format("snug_prompt_tokens_total {}\n", prompt_tokens_.load());
  Header(&out, "snug_completion_tokens_total", "counter",
         "Tokens generated for finished requests.");
  out += fmt::format("snug_completion_tokens_total {}\n", completion_tokens_.load());
  Header(&out, "snug_memory_budget_bytes", "gauge", "Host memory the loaded models may plan for.");
  out += fmt::format("snug_memory_budget_bytes {}\n", pool.budget_bytes());
  Header(&out, "snug_memory_planned_bytes", "gauge", "Sum of the loaded models' planned peaks.");
  out += fmt::format("snug_memory_planned_bytes {}\n", pool.PlannedBytes());
  Header(&out, "snug_process_resident_bytes", "gauge", "Resident set size of the server.");
  out += fmt::format("snug_process_resident_bytes {}\n", ProcessResidentBytes());
  Header(&out, "snug_model_loads_total", "counter", "Models loaded since start.");
  out += fmt::format("snug_model_loads_total {}\n", pool.loads_total());
  Header(&out, "snug_model_evictions_total", "counter", "Idle models evicted to make room.");
  out += fmt::format("snug_model_evictions_total {}\n", pool.evictions_total());

  const auto running = pool.Running();
  struct Gauge {
    const char* name;
    const char* type;
    const char* help;
    uint64_t (*get)(const RunningModel&);
  };
  static const Gauge kGauges[] = {
      {"snug_queue_depth", "gauge", "Requests waiting for admission.",
       [](const RunningModel& m) -> uint64_t { return m.stats.queued; }},
      {"snug_active_requests", "gauge", "Requests decoding now.",
       [](const RunningModel& m) -> uint64_t { return m.stats.active; }},
      {"snug_slots", "gauge", "Parallel sequences the model's context holds.",
       [](const RunningModel& m) -> uint64_t { return m.stats.slots; }},
      {"snug_kv_cells_used", "gauge", "KV cells held by active sequences and kept prefixes.",
       [](const RunningModel& m) -> uint64_t { return m.stats.kv_cells_used; }},
      {"snug_kv_cells_reserved", "gauge", "KV cells reserved by admitted requests.",
       [](const RunningModel& m) -> uint64_t { return m.stats.kv_cells_reserved; }},
      {"snug_kv_cells_total", "gauge", "KV cells in the model's context.",
       [](const RunningModel& m) -> uint64_t { return m.stats.kv_cells_total; }},
      {"snug_model_planned_bytes", "gauge", "Planned peak host memory of the model.",
       [](const RunningModel& m) -> uint64_t { return m.plan.peak_host_bytes; }},
      {"snug_model_allocated_bytes", "gauge", "Memory llama.cpp allocated for the model.",
       [](const RunningModel& m) -> uint64_t { return m.allocated_bytes; }},
      {"snug_model_prompt_tokens_total", "counter", "Prompt tokens admitted since load.",
       [](const RunningModel& m) -> uint64_t { return m.stats.prompt_tokens_total; }},
      {"snug_model_prompt_tokens_reused_total", "counter",
       "Prompt tokens found in a slot's kept KV cells (earlier chat turns), not decoded again.",
       [](const RunningModel& m) -> uint64_t { return m.stats.prompt_tokens_reused_total; }},
      {"snug_model_completion_tokens_total", "counter", "Tokens generated since load.",
       [](const RunningModel& m) -> uint64_t { return m.stats.completion_tokens_total; }},
      {"snug_model_rejected_total", "counter", "Requests refused: queue full or timed out.",
       [](const RunningModel& m) -> uint64_t { return m.stats.rejected_total; }},
  };
  for (const auto& g : kGauges) {
    Header(&out, g.name, g.type, g.help);
    for (const auto& m : running) {
      out += fmt::format("{}{{model=\"{}\"}} {}\n", g.name, Label(m.name), g.get(m));
    }
  }
  return out;
}

}  // namespace snug::server
