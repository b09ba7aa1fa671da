#include "engine/workers.h"

#include <fmt/format.h>
#include <ggml-rpc.h>
#include <ggml.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <set>

#include "engine/workers_internal.h"
#include "hw/tcp_client.h"
#include "hw/workers.h"

namespace snug::engine {
namespace {

std::mutex g_mu;
WorkerLostHandler g_handler;
std::set<std::string> g_connected;
std::set<std::string> g_lost;

// Whether HOST:PORT accepts a TCP connection within `timeout_ms`.
bool Accepts(const std::string& endpoint, int timeout_ms) {
  auto parsed = hw::ParseWorkerEndpoint(endpoint);
  if (!parsed.ok()) return false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  return hw::TcpConnect(parsed->first, parsed->second, deadline).ok();
}

// ggml_abort's messages from ggml-rpc's client when a worker goes away or answers garbage.
bool IsWorkerFailure(const char* message) {
  return std::strstr(message, "Remote RPC server crashed") != nullptr ||
         std::strstr(message, "RPC handshake failed") != nullptr ||
         std::strstr(message, "Failed to connect to") != nullptr;
}

void OnGgmlAbort(const char* message) {
  if (!IsWorkerFailure(message)) {
    std::fprintf(stderr, "%s\n", message);
    return;  // ggml aborts, as it would without snug
  }
  std::vector<std::string> connected;
  WorkerLostHandler handler;
  {
    std::lock_guard lock(g_mu);
    connected.assign(g_connected.begin(), g_connected.end());
    handler = g_handler;
  }
  // The gone worker no longer accepts connections; when every one still does (a worker that
  // answered garbage), all are named.
  std::vector<std::string> gone;
  for (const auto& endpoint : connected) {
    if (!Accepts(endpoint, 500)) gone.push_back(endpoint);
  }
  if (gone.empty()) gone = connected;
  for (const auto& endpoint : gone) {
    {
      std::lock_guard lock(g_mu);
      if (!g_lost.insert(endpoint).second) continue;  // already reported
    }
    // ggml's message starts with the source file and line: keep what follows them.
    const char* after_line = std::strstr(message, ": ");
    const char* reason = after_line != nullptr ? after_line + 2 : message;
    const std::string what = fmt::format(
        "worker {} stopped answering mid-request (ggml-rpc: {}); the layers placed on it are "
        "gone",
        endpoint, reason);
    if (handler) {
      handler(endpoint, what);
    } else {
      std::fflush(stdout);  // the text generated so far
      std::fprintf(stderr, "\nsnug: %s\n", what.c_str());
      std::fflush(stderr);
      _exit(1);
    }
  }
  // Returning would abort the process; ggml-rpc's state for this worker is unusable, so this
  // thread stays here.
  for (;;)
    pause();
}

}  // namespace

void SetWorkerLostHandler(WorkerLostHandler handler) {
  std::lock_guard lock(g_mu);
  g_handler = std::move(handler);
}

bool WorkerLost(const std::string& endpoint) {
  std::lock_guard lock(g_mu);
  return g_lost.count(endpoint) > 0;
}

std::vector<std::string> ConnectedWorkers() {
  std::lock_guard lock(g_mu);
  return {g_connected.begin(), g_connected.end()};
}

void InstallWorkerGuard() {
  ggml_set_abort_callback(OnGgmlAbort);
}

Result<ggml_backend_dev_t> WorkerDevice(const std::string& endpoint, uint32_t index) {
  if (WorkerLost(endpoint)) {
    return Status::Unavailable(fmt::format(
        "worker {} was lost earlier in this process; ggml-rpc keeps one connection per worker "
        "for the life of a process, so restart snug to use it again",
        endpoint));
  }
  // ggml-rpc aborts on a worker it cannot reach: check first (the planner probed it moments
  // ago, this covers a worker that stopped since).
  if (!Accepts(endpoint, 2000)) {
    return Status::Unavailable(fmt::format("worker {} is unreachable", endpoint));
  }
  {
    std::lock_guard lock(g_mu);
    g_connected.insert(endpoint);
  }
  ggml_backend_reg_t reg = ggml_backend_rpc_add_server(endpoint.c_str());
  if (reg == nullptr || index >= ggml_backend_reg_dev_count(reg)) {
    return Status::Unavailable(fmt::format("worker {} has no device {} (it lends {})", endpoint,
                                           index,
                                           reg == nullptr ? 0 : ggml_backend_reg_dev_count(reg)));
  }
  return ggml_backend_reg_dev_get(reg, index);
}

}  // namespace snug::engine
