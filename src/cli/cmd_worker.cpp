// `snug worker`: lends this machine's memory and compute to another snug over ggml-rpc, reporting
// its budget (not the host's free RAM) through ggml-rpc's memory query, with a status endpoint
// (GET /snug/worker on --status-port) that `snug hw --worker` and the planner read.
#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "cli/command.h"
#include "core/size.h"
#include "engine/rpc_worker.h"
#include "hw/detect.h"
#include "hw/worker_status.h"

namespace snug::cli {
namespace {

struct WorkerFlags {
  std::string host = "127.0.0.1";
  int port = 50052;
  int status_port = 0;  // 0 = port + 1
  std::string memory_limit;
  std::string headroom;
  int threads = 0;
  std::string cache_dir;
  bool allow_remote = false;
};

constexpr const char* kNoAuthentication =
    "ggml-rpc has no authentication or encryption: anyone who can reach port {} can read and "
    "write this worker's memory buffers and run compute on it";

bool IsIpv4(const std::string& host) {
  in_addr addr{};
  return inet_pton(AF_INET, host.c_str(), &addr) == 1;
}

bool IsLoopback(const std::string& host) {
  in_addr addr{};
  return inet_pton(AF_INET, host.c_str(), &addr) == 1 && (ntohl(addr.s_addr) >> 24) == 127;
}

void PrintSummary(const engine::RpcWorker& worker, const std::string& status_url) {
  const hw::WorkerStatus s = worker.Snapshot();
  auto row = [](const std::string& label, const std::string& text) {
    fmt::print("{:<9} {}\n", label, text);
  };
  row("worker", fmt::format("snug {} serving ggml-rpc {} on {} (one client at a time)", s.version,
                            s.protocol, s.endpoint));
  row("status", status_url);
  row("budget", fmt::format("host {} = {} - {} headroom  [source: {}]", FormatSize(s.host_bytes),
                            FormatSize(s.host_raw_bytes), FormatSize(s.headroom_bytes), s.source));
  row("", s.detail);
  bool first = true;
  for (const hw::WorkerDeviceStatus& d : s.devices) {
    row(first ? "devices" : "",
        fmt::format("#{} {} ({}, {}): {} free of {}", d.index, d.name, d.description, d.backend,
                    FormatSize(d.free_bytes), FormatSize(d.total_bytes)));
    first = false;
  }
  row("threads", std::to_string(worker.threads()));
  std::fflush(stdout);
}

int RunWorker(const WorkerFlags& flags) {
  if (!IsIpv4(flags.host)) {
    return Report(Status::InvalidArgument(
        fmt::format("--host {} is not an IPv4 address: ggml-rpc's server listens on IPv4 "
                    "addresses only (127.0.0.1 for this machine alone)",
                    flags.host)));
  }
  if (!IsLoopback(flags.host) && !flags.allow_remote) {
    fmt::print(stderr,
               "snug: --host {} would let other machines reach this worker, and {}. Pass "
               "--allow-remote to do so on a network you trust.\n",
               flags.host, fmt::format(fmt::runtime(kNoAuthentication), flags.port));
    return kExitUsage;
  }
  const int status_port = flags.status_port > 0 ? flags.status_port : flags.port + 1;
  if (status_port > 65535 || status_port == flags.port) {
    return Report(Status::InvalidArgument(
        fmt::format("--status-port {} cannot be used with --port {}: pick another status port",
                    status_port, flags.port)));
  }
  if (!IsLoopback(flags.host)) {
    fmt::print(stderr, "snug: warning: serving on {}: {}.\n", flags.host,
               fmt::format(fmt::runtime(kNoAuthentication), flags.port));
  }

  engine::RpcWorkerOptions options;
  options.host = flags.host;
  options.port = flags.port;
  options.threads = flags.threads;
  options.version = SNUG_VERSION;
  Result<hw::BudgetOptions> budget = hw::BudgetOptionsFromFlags(flags.memory_limit, flags.headroom,
                                                                /*profile=*/"");
  if (!budget.ok()) return Report(budget.status());
  options.budget = *budget;
  if (!flags.cache_dir.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(flags.cache_dir, ec);
    if (ec) {
      return Report(Status::IoError(fmt::format("cannot create the --cache directory {}: {}",
                                                flags.cache_dir, ec.message())));
    }
    options.cache_dir = flags.cache_dir;
  }
  Result<std::unique_ptr<engine::RpcWorker>> created = engine::RpcWorker::Create(options);
  if (!created.ok()) return Report(created.status());
  engine::RpcWorker& worker = **created;

  httplib::Server status_server;
  status_server.Get(
      hw::kWorkerStatusPath, [&worker](const httplib::Request&, httplib::Response& res) {
        // Until ggml-rpc listens, a prober must not take this worker for ready.
        if (!worker.Listening()) {
          res.status = 503;
          res.set_content(R"({"error": "starting"})", "application/json");
          return;
        }
        res.set_content(hw::WorkerStatusToJson(worker.Snapshot()).dump(), "application/json");
      });
  if (!status_server.bind_to_port(flags.host, status_port)) {
    return Report(Status::Unavailable(
        fmt::format("cannot listen on {}:{} for the status endpoint (--status-port)", flags.host,
                    status_port)));
  }
  std::thread status_thread([&status_server] { status_server.listen_after_bind(); });

  std::atomic<bool> serving_ended{false};
  Status served;
  std::thread rpc_thread([&] {
    served = worker.Serve();
    serving_ended = true;
  });
  for (int i = 0; i < 500 && !serving_ended && !worker.Listening(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  if (!serving_ended) {
    PrintSummary(worker,
                 fmt::format("http://{}:{}{}", flags.host, status_port, hw::kWorkerStatusPath));
  }
  rpc_thread.join();  // ggml-rpc serves until the process is killed (SIGTERM, SIGINT)
  status_server.stop();
  status_thread.join();
  return Report(served);
}

}  // namespace

void AddWorkerCommand(CLI::App& root, int* exit_code) {
  auto flags = std::make_shared<WorkerFlags>();
  auto* cmd = root.add_subcommand(
      "worker", "Lend this machine's memory and compute to another snug over ggml-rpc");
  cmd->add_option("--host", flags->host,
                  "IPv4 address to listen on (default 127.0.0.1; others need --allow-remote)");
  cmd->add_option("--port", flags->port, "ggml-rpc port (default 50052)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--status-port", flags->status_port,
                  "Port of the status endpoint GET /snug/worker (default: --port + 1)")
      ->check(CLI::Range(1, 65535));
  cmd->add_option("--memory-limit", flags->memory_limit,
                  "Memory this worker lends (e.g. 6GiB); default: the container or host budget; "
                  "also SNUG_MEMORY_LIMIT");
  cmd->add_option("--headroom", flags->headroom,
                  "Memory kept free (default 10% of the budget, 256 MiB..1 GiB)");
  cmd->add_option("--threads", flags->threads, "Compute threads (default: the usable CPUs)")
      ->check(CLI::Range(1, 1024));
  cmd->add_option("--cache", flags->cache_dir,
                  "Directory for ggml-rpc's tensor cache (clients then send hashes of large "
                  "tensors it already holds)");
  cmd->add_flag("--allow-remote", flags->allow_remote,
                "Allow a --host other machines can reach (ggml-rpc has no authentication)");
  cmd->callback([exit_code, flags] { *exit_code = RunWorker(*flags); });
}

}  // namespace snug::cli
