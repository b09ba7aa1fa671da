#include "hw/workers.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>
#include <optional>
#include <thread>

#include "config/env.h"
#include "core/size.h"
#include "hw/rpc_probe.h"
#include "hw/sysfs.h"
#include "hw/tcp_client.h"
#include "hw/worker_status.h"

namespace snug::hw {
namespace {

struct ProbedWorker {
  WorkerHost host;
  std::vector<Device> devices;
};

std::string DeviceName(const std::string& endpoint, const std::string& remote_name) {
  return fmt::format("RPC[{}]/{}", endpoint, remote_name);
}

Result<ProbedWorker> FromSnugWorker(const std::string& endpoint, const WorkerStatus& status) {
  int major = -1, minor = -1, patch = -1;
  if (std::sscanf(status.protocol.c_str(), "%d.%d.%d", &major, &minor, &patch) != 3 ||
      !RpcProtocolCompatible(major, minor)) {
    return Status::Unimplemented(fmt::format(
        "worker {} (snug {}) speaks ggml-rpc {}, this snug {}: run the same llama.cpp version on "
        "both",
        endpoint, status.version, status.protocol, RpcProtocolVersion()));
  }
  ProbedWorker w;
  w.host = {endpoint,      status.protocol,        status.version, status.source,
            status.detail, status.allocated_bytes, status.busy};
  for (const WorkerDeviceStatus& d : status.devices) {
    Device device;
    device.name = DeviceName(endpoint, d.name);
    device.description = d.description;
    device.backend = "RPC";
    device.total_bytes = d.total_bytes;
    device.free_bytes = d.free_bytes;
    // The worker already took its headroom and what it holds off: all of it may be filled.
    device.budget_bytes = d.free_bytes;
    device.source =
        d.backend == "CPU"
            ? fmt::format("snug worker budget ({}) less the {} it holds for clients", status.source,
                          FormatSize(status.allocated_bytes))
            : fmt::format("snug worker: {} free memory less device headroom", d.backend);
    device.host = endpoint;
    device.remote_index = d.index;
    w.devices.push_back(std::move(device));
  }
  return w;
}

ProbedWorker FromRpcServer(const std::string& endpoint, const RpcServerFacts& facts) {
  ProbedWorker w;
  w.host.endpoint = endpoint;
  w.host.protocol = fmt::format("{}.{}.{}", facts.major, facts.minor, facts.patch);
  w.host.source = "rpc-server";
  w.host.detail =
      "free memory is the host's as ggml reports it; a container limit there is not known";
  for (uint32_t i = 0; i < facts.devices.size(); ++i) {
    const RpcServerFacts::Memory& m = facts.devices[i];
    Device device;
    device.name = DeviceName(endpoint, fmt::format("dev{}", i));
    device.description = fmt::format("device {} of the rpc-server at {}", i, endpoint);
    device.backend = "RPC";
    device.total_bytes = m.total_bytes;
    device.free_bytes = std::min(m.free_bytes, m.total_bytes);
    const uint64_t headroom = DefaultHeadroom(m.total_bytes);
    device.budget_bytes = device.free_bytes > headroom ? device.free_bytes - headroom : 0;
    device.source = fmt::format(
        "rpc-server reports {} free of {} (host memory, blind to containers), less {} "
        "headroom",
        FormatSize(device.free_bytes), FormatSize(m.total_bytes), FormatSize(headroom));
    device.host = endpoint;
    device.remote_index = i;
    w.devices.push_back(std::move(device));
  }
  return w;
}

Result<ProbedWorker> ProbeWorker(const std::string& endpoint, std::chrono::milliseconds timeout) {
  SNUG_ASSIGN_OR_RETURN(auto host_port, ParseWorkerEndpoint(endpoint));
  const auto& [host, port] = host_port;
  const auto start = std::chrono::steady_clock::now();
  // A snug worker answers its status endpoint at once; half the time is left for the ggml-rpc
  // fallback, so a plain rpc-server behind a firewall that drops port + 1 still gets an answer.
  if (port < 65535) {
    Result<std::string> body =
        HttpGet(host, WorkerStatusPort(port), kWorkerStatusPath, start + timeout / 2);
    if (body.ok()) {
      if (Result<WorkerStatus> status = ParseWorkerStatus(*body); status.ok())
        return FromSnugWorker(endpoint, *status);
    }
  }
  SNUG_ASSIGN_OR_RETURN(RpcServerFacts facts,
                        QueryRpcServer(endpoint, host, port, timeout, start + timeout));
  return FromRpcServer(endpoint, facts);
}

bool AllDigits(const std::string& s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Result<std::pair<std::string, int>> ParseWorkerEndpoint(const std::string& endpoint) {
  auto invalid = [&](const char* why) {
    return Status::InvalidArgument(
        fmt::format("worker '{}' is not HOST:PORT (e.g. 192.168.1.20:50052): {}", endpoint, why));
  };
  std::string host, port_text;
  if (!endpoint.empty() && endpoint.front() == '[') {
    const size_t close = endpoint.find(']');
    if (close == std::string::npos || close + 1 >= endpoint.size() || endpoint[close + 1] != ':')
      return invalid("an IPv6 address is written [ADDRESS]:PORT");
    host = endpoint.substr(1, close - 1);
    port_text = endpoint.substr(close + 2);
  } else {
    const size_t colon = endpoint.find(':');
    if (colon == std::string::npos) return invalid("no port");
    if (endpoint.find(':', colon + 1) != std::string::npos)
      return invalid("an IPv6 address is written [ADDRESS]:PORT");
    host = endpoint.substr(0, colon);
    port_text = endpoint.substr(colon + 1);
  }
  if (host.empty()) return invalid("no host");
  if (host.find_first_of(" \t/") != std::string::npos) return invalid("not a host name");
  if (!AllDigits(port_text) || port_text.size() > 5) return invalid("the port is not a number");
  const int port = std::stoi(port_text);
  if (port < 1 || port > 65535) return invalid("the port is not in 1..65535");
  return std::make_pair(host, port);
}

Result<std::vector<std::string>> WorkerList(const std::vector<std::string>& flags) {
  std::vector<std::string> texts = flags;
  std::string origin = "--worker";
  if (texts.empty()) {
    if (std::optional<std::string> value = env::Get("SNUG_WORKERS")) texts.push_back(*value);
    origin = "SNUG_WORKERS";
  }
  std::vector<std::string> workers;
  for (const std::string& text : texts) {
    for (std::string_view item : sysfs::Split(text, ',')) {
      const std::string endpoint(sysfs::Trim(item));
      if (endpoint.empty()) continue;
      if (auto parsed = ParseWorkerEndpoint(endpoint); !parsed.ok())
        return Status::InvalidArgument(origin + ": " + parsed.status().message());
      if (std::find(workers.begin(), workers.end(), endpoint) == workers.end())
        workers.push_back(endpoint);
    }
  }
  return workers;
}

Status ProbeWorkers(const std::vector<std::string>& endpoints, Budget* budget,
                    std::chrono::milliseconds timeout) {
  std::vector<std::optional<Result<ProbedWorker>>> results(endpoints.size());
  {
    std::vector<std::jthread> threads;
    for (size_t i = 0; i < endpoints.size(); ++i)
      threads.emplace_back([&, i] { results[i].emplace(ProbeWorker(endpoints[i], timeout)); });
  }
  Status first;
  std::string messages;
  for (const auto& r : results) {
    if (r->ok()) continue;
    if (first.ok()) first = r->status();
    messages += (messages.empty() ? "" : "; ") + r->status().message();
  }
  if (!first.ok()) return Status(first.code(), messages);
  for (auto& r : results) {
    ProbedWorker& w = r->value();
    budget->workers.push_back(std::move(w.host));
    for (Device& d : w.devices)
      budget->devices.push_back(std::move(d));
  }
  return Status::Ok();
}

}  // namespace snug::hw
