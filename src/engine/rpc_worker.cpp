#include "engine/rpc_worker.h"

#include <arpa/inet.h>
#include <ggml-backend.h>
#include <ggml-rpc.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <optional>

#include "config/env.h"
#include "core/size.h"
#include "engine/lent_device.h"
#include "engine/own_sockets.h"

namespace snug::engine {
namespace {

constexpr auto kBudgetMaxAge = std::chrono::milliseconds(100);

// ggml_backend_rpc_start_server prints its own error and returns when it cannot listen; trying
// first gives the user a sentence naming the endpoint before anything is printed.
Status CheckListenable(const std::string& host, int port) {
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (inet_pton(AF_INET, host.c_str(), &addr.sin_addr) != 1) {
    return Status::InvalidArgument(fmt::format(
        "--host {} is not an IPv4 address (ggml-rpc's server listens on IPv4 addresses only)",
        host));
  }
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IoError(std::string("socket: ") + std::strerror(errno));
  const int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));  // as ggml-rpc's server does
  const bool bound = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
  const int error = errno;
  close(fd);
  if (!bound) {
    return Status::Unavailable(
        fmt::format("cannot listen on {}:{}: {}", host, port,
                    error == EADDRINUSE ? "the port is in use" : std::strerror(error)));
  }
  return Status::Ok();
}

// The devices llama.cpp's rpc-server lends by default (tools/rpc/rpc-server.cpp get_devices):
// every GPU, else the CPU. It also takes "accelerator" devices (BLAS, AMX), which compute a few
// ops for the CPU backend and cannot serve a graph alone, so they are left out here.
std::vector<ggml_backend_dev_t> DevicesToLend() {
  std::vector<ggml_backend_dev_t> gpus;
  for (size_t i = 0; i < ggml_backend_dev_count(); ++i) {
    ggml_backend_dev_t dev = ggml_backend_dev_get(i);
    const enum ggml_backend_dev_type type = ggml_backend_dev_type(dev);
    if (type == GGML_BACKEND_DEVICE_TYPE_GPU || type == GGML_BACKEND_DEVICE_TYPE_IGPU)
      gpus.push_back(dev);
  }
  if (!gpus.empty()) return gpus;
  ggml_backend_dev_t cpu = ggml_backend_dev_by_type(GGML_BACKEND_DEVICE_TYPE_CPU);
  return cpu != nullptr ? std::vector<ggml_backend_dev_t>{cpu} : std::vector<ggml_backend_dev_t>{};
}

std::string HostRoot(const hw::BudgetOptions& options) {
  return options.root.empty() ? env::HostRoot() : options.root;
}

}  // namespace

RpcWorker::RpcWorker(const RpcWorkerOptions& options)
    : options_(options), endpoint_(fmt::format("{}:{}", options.host, options.port)) {
  options_.budget.probe_devices = false;
}

RpcWorker::~RpcWorker() = default;

Result<std::unique_ptr<RpcWorker>> RpcWorker::Create(const RpcWorkerOptions& options) {
  SNUG_RETURN_IF_ERROR(CheckListenable(options.host, options.port));
  std::unique_ptr<RpcWorker> worker(new RpcWorker(options));
  SNUG_ASSIGN_OR_RETURN(hw::HostInfo host, hw::ProbeHost(HostRoot(options.budget)));
  worker->baseline_bytes_ = host.self_unreclaimable;
  worker->threads_ =
      options.threads > 0 ? options.threads : std::max(1, host.cpu.recommended_threads);
  {
    BudgetNow first = worker->ReadBudget();
    SNUG_RETURN_IF_ERROR(first.status);
    worker->cached_ = std::move(first);
  }

  RpcWorker* self = worker.get();
  for (ggml_backend_dev_t dev : DevicesToLend()) {
    if (ggml_backend_dev_type(dev) == GGML_BACKEND_DEVICE_TYPE_CPU) {
      worker->devices_.push_back(std::make_unique<LentDevice>(
          dev, [self](size_t* free, size_t* total) { self->CpuMemory(free, total); },
          /*count_buffers=*/true));
    } else {
      worker->devices_.push_back(std::make_unique<LentDevice>(
          dev,
          [dev](size_t* free, size_t* total) {
            ggml_backend_dev_memory(dev, free, total);
            const uint64_t headroom = hw::DeviceHeadroom(*total);
            *free = *free > headroom ? *free - headroom : 0;
          },
          /*count_buffers=*/false));
    }
  }
  if (worker->devices_.empty())
    return Status::Unavailable("ggml reports no device to lend (not even the CPU)");
  return worker;
}

RpcWorker::BudgetNow RpcWorker::ReadBudget() const {
  BudgetNow now;
  now.at = std::chrono::steady_clock::now();
  Result<hw::Budget> budget = hw::ResolveBudget(options_.budget);
  if (!budget.ok()) {
    now.status = budget.status();
    return now;
  }
  now.budget = std::move(budget).value();
  Result<hw::HostInfo> host = hw::ProbeHost(HostRoot(options_.budget));
  now.resident = host.ok() ? host->self_unreclaimable : 0;
  return now;
}

uint64_t RpcWorker::Held(const BudgetNow& now) const {
  // ResolveBudget counts what this process holds as available to it, and a client's buffer is
  // only in the process's memory once written: the larger figure is what the worker holds.
  return std::max(now.resident, baseline_bytes_ + AllocatedBytes());
}

RpcWorker::BudgetNow RpcWorker::CurrentBudget() const {
  std::lock_guard<std::mutex> lock(budget_mutex_);
  if (std::chrono::steady_clock::now() - cached_.at >= kBudgetMaxAge) {
    cached_ = ReadBudget();
    if (!cached_.status.ok())
      spdlog::warn("worker budget unknown, reporting no free memory: {}", cached_.status.message());
  }
  return cached_;
}

void RpcWorker::CpuMemory(size_t* free, size_t* total) const {
  const BudgetNow now = CurrentBudget();
  // An unreadable budget lends nothing rather than a guess.
  const uint64_t host = now.status.ok() ? now.budget.host_bytes : 0;
  const uint64_t held = Held(now);
  *free = host > held ? host - held : 0;
  *total = now.status.ok() ? now.budget.host_raw_bytes : 0;
}

uint64_t RpcWorker::AllocatedBytes() const {
  uint64_t sum = 0;
  for (const auto& d : devices_)
    sum += d->allocated_bytes();
  return sum;
}

bool RpcWorker::Listening() const {
  // Where sockets cannot be inspected, assume so rather than never answer the status.
  const std::optional<PortSockets> sockets = OwnTcpSockets(options_.port);
  return !sockets || sockets->listening > 0;
}

hw::WorkerStatus RpcWorker::Snapshot() const {
  hw::WorkerStatus s;
  s.version = options_.version;
  s.protocol = fmt::format("{}.{}.{}", RPC_PROTO_MAJOR_VERSION, RPC_PROTO_MINOR_VERSION,
                           RPC_PROTO_PATCH_VERSION);
  s.endpoint = endpoint_;
  const BudgetNow now = CurrentBudget();
  s.host_bytes = now.budget.host_bytes;
  s.host_raw_bytes = now.budget.host_raw_bytes;
  s.headroom_bytes = now.budget.headroom_bytes;
  s.source = now.status.ok() ? now.budget.source : "unknown";
  s.detail = now.status.ok() ? now.budget.detail : now.status.message();
  for (uint32_t i = 0; i < devices_.size(); ++i) {
    const LentDevice& d = *devices_[i];
    hw::WorkerDeviceStatus device;
    device.index = i;
    device.name = ggml_backend_dev_name(d.real());
    device.description = ggml_backend_dev_description(d.real());
    ggml_backend_reg_t reg = ggml_backend_dev_backend_reg(d.real());
    device.backend = reg != nullptr ? ggml_backend_reg_name(reg) : "";
    size_t free = 0, total = 0;
    d.Memory(&free, &total);
    device.free_bytes = free;
    device.total_bytes = total;
    s.devices.push_back(std::move(device));
  }
  s.allocated_bytes = AllocatedBytes();
  const std::optional<PortSockets> sockets = OwnTcpSockets(options_.port);
  s.busy = sockets && sockets->established > 0;
  return s;
}

Status RpcWorker::Serve() {
  std::vector<ggml_backend_dev_t> devices;
  for (const auto& d : devices_)
    devices.push_back(d->device());
  ggml_backend_rpc_start_server(endpoint_.c_str(),
                                options_.cache_dir.empty() ? nullptr : options_.cache_dir.c_str(),
                                static_cast<size_t>(threads_), devices.size(), devices.data());
  return Status::Unavailable(
      fmt::format("ggml-rpc could not serve on {} (its reason is printed above)", endpoint_));
}

}  // namespace snug::engine
