// `snug worker` and the worker probe, as real processes on loopback: the budget a worker inside a
// real 1.5 GiB memory cgroup reports to llama.cpp's own RPC client, to hw::ProbeWorkers and on its
// status endpoint; exact counting of a client's buffers; the --host safety check; and every way a
// probe fails (closed port, wrong protocol version, a server that never answers), plus llama.cpp's
// own rpc-server.
#include <arpa/inet.h>
#include <fcntl.h>
#include <ggml-backend.h>
#include <ggml-rpc.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "../support/memory_cgroup.h"
#include "core/size.h"
#include "hw/tcp_client.h"
#include "hw/worker_status.h"
#include "hw/workers.h"
#include "run_support.h"
#include "worker_support.h"

namespace snug::testing {
namespace {

using std::chrono::milliseconds;
using Clock = std::chrono::steady_clock;

constexpr uint64_t kCgroupLimit = 3 * kGiB / 2;

uint64_t HostMemAvailable() {
  std::istringstream in(Slurp("/proc/meminfo"));
  std::string key;
  uint64_t kib = 0;
  std::string unit;
  while (in >> key >> kib >> unit)
    if (key == "MemAvailable:") return kib * kKiB;
  return 0;
}

uint64_t Distance(uint64_t a, uint64_t b) {
  return a > b ? a - b : b - a;
}

TEST(Worker, InsideACgroupReportsTheCgroupBudgetOverRpcProbeAndStatus) {
  MemoryCgroup cgroup(kCgroupLimit);
  if (!cgroup.ok()) GTEST_SKIP() << "memory cgroup unavailable: " << cgroup.error();
  Worker worker(&cgroup);
  ASSERT_TRUE(worker.WaitReady()) << worker.process.out() << worker.process.err();
  EXPECT_NE(worker.process.out().find("[source: cgroup]"), std::string::npos)
      << worker.process.out();

  // The status endpoint: the cgroup's budget, nothing held, no client.
  hw::WorkerStatus idle = StatusOf(worker.port);
  EXPECT_EQ(idle.source, "cgroup") << idle.detail;
  EXPECT_EQ(idle.protocol, "6.0.0");
  EXPECT_EQ(idle.endpoint, worker.endpoint());
  EXPECT_LE(idle.host_raw_bytes, kCgroupLimit);
  EXPECT_GT(idle.host_raw_bytes, kCgroupLimit - 256 * kMiB) << "only the worker runs in it";
  ASSERT_EQ(idle.devices.size(), 1u);
  EXPECT_EQ(idle.devices[0].name, "CPU");
  EXPECT_EQ(idle.devices[0].total_bytes, idle.host_raw_bytes);
  EXPECT_LE(idle.devices[0].free_bytes, idle.host_bytes);
  EXPECT_GT(idle.devices[0].free_bytes, idle.host_bytes - 64 * kMiB);
  EXPECT_EQ(idle.allocated_bytes, 0u);
  EXPECT_FALSE(idle.busy);

  // llama.cpp's own client asks GET_DEVICE_MEMORY: the same budget, far below the host's memory.
  size_t free = 0, total = 0;
  ggml_backend_rpc_get_device_memory(worker.endpoint().c_str(), 0, &free, &total);
  const uint64_t available = HostMemAvailable();
  std::printf("worker in a %s cgroup: RPC free %s of %s (host MemAvailable %s)\n",
              FormatSize(kCgroupLimit).c_str(), FormatSize(free).c_str(), FormatSize(total).c_str(),
              FormatSize(available).c_str());
  EXPECT_EQ(total, idle.host_raw_bytes);
  EXPECT_LE(free, kCgroupLimit - 256 * kMiB) << "the headroom is taken off";
  EXPECT_GT(free, kCgroupLimit / 2);
  EXPECT_LT(Distance(free, idle.devices[0].free_bytes), 32 * kMiB);
  if (available > 2 * kCgroupLimit) {
    EXPECT_LT(free, available / 2);
  }

  // hw::ProbeWorkers: one RPC device whose budget is that figure, the worker's source kept.
  hw::Budget budget;
  ASSERT_TRUE(hw::ProbeWorkers({worker.endpoint()}, &budget).ok());
  ASSERT_EQ(budget.workers.size(), 1u);
  const hw::WorkerHost& host = budget.workers[0];
  EXPECT_EQ(host.endpoint, worker.endpoint());
  EXPECT_EQ(host.source, "cgroup");
  EXPECT_EQ(host.protocol, "6.0.0");
  EXPECT_FALSE(host.version.empty());
  EXPECT_NE(host.detail.find("cgroup"), std::string::npos) << host.detail;
  ASSERT_EQ(budget.devices.size(), 1u);
  const hw::Device& device = budget.devices[0];
  EXPECT_EQ(device.name, "RPC[" + worker.endpoint() + "]/CPU");
  EXPECT_EQ(device.backend, "RPC");
  EXPECT_EQ(device.host, worker.endpoint());
  EXPECT_EQ(device.remote_index, 0u);
  EXPECT_FALSE(device.unified);
  EXPECT_EQ(device.budget_bytes, device.free_bytes);
  EXPECT_LT(Distance(device.budget_bytes, free), 32 * kMiB);

  // A client's buffer is counted exactly, taken off the free memory, and the worker is busy
  // while the client is connected.
  const size_t kBuffer = 256 * kMiB;
  ggml_backend_buffer_type_t buft = ggml_backend_rpc_buffer_type(worker.endpoint().c_str(), 0);
  ASSERT_NE(buft, nullptr);
  ggml_backend_buffer_t buffer = ggml_backend_buft_alloc_buffer(buft, kBuffer);
  ASSERT_NE(buffer, nullptr);
  hw::WorkerStatus holding = StatusOf(worker.port);
  EXPECT_EQ(holding.allocated_bytes, kBuffer);
  EXPECT_TRUE(holding.busy);
  ASSERT_EQ(holding.devices.size(), 1u);
  EXPECT_LT(Distance(holding.devices[0].free_bytes + kBuffer, idle.devices[0].free_bytes),
            32 * kMiB)
      << "free " << holding.devices[0].free_bytes << " idle " << idle.devices[0].free_bytes;
  // A buffer beyond what is left of the budget is refused; the worker stays up.
  const size_t too_big = holding.devices[0].free_bytes + 64 * kMiB;
  EXPECT_EQ(ggml_backend_buft_alloc_buffer(buft, too_big), nullptr);
  EXPECT_NE(worker.process.err().find("refused a"), std::string::npos) << worker.process.err();
  EXPECT_EQ(StatusOf(worker.port).allocated_bytes, kBuffer);
  EXPECT_EQ(cgroup.OomKills(), 0);
  ggml_backend_buffer_free(buffer);  // the client's last buffer: it disconnects
  hw::WorkerStatus after;
  const auto start = Clock::now();
  do {
    std::this_thread::sleep_for(milliseconds(50));
    after = StatusOf(worker.port);
  } while ((after.busy || after.allocated_bytes != 0) && SecondsSince(start) < 3);
  EXPECT_EQ(after.allocated_bytes, 0u);
  EXPECT_FALSE(after.busy);
  EXPECT_TRUE(worker.process.Running()) << worker.process.err();
}

TEST(Worker, SnugHwPrintsTheWorkersCgroupBudget) {
  MemoryCgroup cgroup(kCgroupLimit);
  if (!cgroup.ok()) GTEST_SKIP() << "memory cgroup unavailable: " << cgroup.error();
  Worker worker(&cgroup);
  ASSERT_TRUE(worker.WaitReady()) << worker.process.out() << worker.process.err();
  const uint64_t free = StatusOf(worker.port).devices.at(0).free_bytes;

  ProcessResult r = RunProcess({SNUG_BINARY, "hw", "--worker", worker.endpoint()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const size_t line = r.out.find("workers    " + worker.endpoint());
  ASSERT_NE(line, std::string::npos) << r.out;
  const std::string text = r.out.substr(line, r.out.find('\n', line) - line);
  EXPECT_NE(text.find("source: cgroup"), std::string::npos) << text;
  EXPECT_NE(text.find("budget " + FormatSize(free)), std::string::npos) << text;
  EXPECT_NE(text.find("idle"), std::string::npos) << text;

  r = RunProcess({SNUG_BINARY, "hw", "--json"}, {"SNUG_WORKERS=" + worker.endpoint()});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const nlohmann::json j = nlohmann::json::parse(r.out);
  ASSERT_EQ(j["budget"]["workers"].size(), 1u) << r.out;
  EXPECT_EQ(j["budget"]["workers"][0]["source"], "cgroup");
  EXPECT_EQ(j["budget"]["devices"].back()["host"], worker.endpoint());
  EXPECT_LE(j["budget"]["devices"].back()["budget_bytes"].get<uint64_t>(), kCgroupLimit);
}

TEST(Worker, NonLoopbackHostNeedsAllowRemote) {
  const int port = FreePortPair();
  ProcessResult r =
      RunProcess({SNUG_BINARY, "worker", "--host", "0.0.0.0", "--port", std::to_string(port)});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_LT(r.seconds, 1.0);
  EXPECT_NE(r.err.find("no authentication or encryption"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("--allow-remote"), std::string::npos) << r.err;

  Worker remote(nullptr, {"--host", "0.0.0.0", "--allow-remote"});
  ASSERT_TRUE(remote.WaitReady()) << remote.process.out() << remote.process.err();
  EXPECT_NE(remote.process.err().find("warning"), std::string::npos) << remote.process.err();
  EXPECT_NE(remote.process.err().find("no authentication or encryption"), std::string::npos);
  hw::Budget budget;  // 0.0.0.0 listens on loopback too
  EXPECT_TRUE(hw::ProbeWorkers({Endpoint(remote.port)}, &budget).ok());
}

TEST(WorkerProbe, ClosedPortIsUnavailableNamingTheWorker) {
  const int port = FreePortPair();
  hw::Budget budget;
  const auto start = Clock::now();
  Status s = hw::ProbeWorkers({Endpoint(port)}, &budget, milliseconds(1000));
  EXPECT_LT(SecondsSince(start), 1.0);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_NE(s.message().find("worker " + Endpoint(port) + " is unreachable"), std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("connection refused"), std::string::npos) << s.message();
  EXPECT_TRUE(budget.workers.empty());
  EXPECT_TRUE(budget.devices.empty());
}

TEST(WorkerProbe, LlamaCppRpcServerReportsItsDevice) {
  const std::string server = LlamaToolsDir() + "/ggml-rpc-server";
  if (!std::filesystem::exists(server)) GTEST_SKIP() << "no " << server;
  const int port = FreePortPair();
  Background process({server, "-p", std::to_string(port)});
  hw::Budget budget;
  Status s;
  const auto start = Clock::now();
  do {
    std::this_thread::sleep_for(milliseconds(50));
    s = hw::ProbeWorkers({Endpoint(port)}, &budget);
  } while (!s.ok() && SecondsSince(start) < 10);
  ASSERT_TRUE(s.ok()) << s.message() << process.err();
  ASSERT_EQ(budget.workers.size(), 1u);
  EXPECT_EQ(budget.workers[0].source, "rpc-server");
  EXPECT_EQ(budget.workers[0].version, "");
  EXPECT_EQ(budget.workers[0].protocol, "6.0.0");
  EXPECT_NE(budget.workers[0].detail.find("container"), std::string::npos);
  ASSERT_EQ(budget.devices.size(), 1u);
  const hw::Device& d = budget.devices[0];
  EXPECT_EQ(d.host, Endpoint(port));
  EXPECT_EQ(d.name, "RPC[" + Endpoint(port) + "]/dev0");
  EXPECT_GT(d.total_bytes, 0u);
  EXPECT_LE(d.free_bytes, d.total_bytes);
  EXPECT_EQ(d.budget_bytes, d.free_bytes - hw::DefaultHeadroom(d.total_bytes));
}

// A fake ggml-rpc server on a fresh port: accepts one client, then runs `serve` on it.
class FakeServer {
 public:
  explicit FakeServer(std::function<void(int)> serve) {
    fd_ = BindLoopback(0);
    port_ = PortOf(fd_);
    listen(fd_, 1);
    thread_ = std::thread([this, serve] {
      const int client = accept(fd_, nullptr, nullptr);
      if (client < 0) return;
      serve(client);
      close(client);
    });
  }
  ~FakeServer() {
    done_ = true;
    shutdown(fd_, SHUT_RDWR);  // wakes accept
    thread_.join();
    close(fd_);
  }
  int port() const { return port_; }
  bool done() const { return done_; }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

TEST(WorkerProbe, OlderProtocolIsAVersionError) {
  FakeServer fake([](int client) {
    char request[1 + 8 + 24];  // HELLO: cmd, size, conn_caps
    size_t got = 0;
    while (got < sizeof(request)) {
      const ssize_t n = recv(client, request + got, sizeof(request) - got, 0);
      if (n <= 0) return;
      got += static_cast<size_t>(n);
    }
    unsigned char reply[8 + 28] = {};
    reply[0] = 28;  // little-endian size
    reply[8] = 5;   // major
    reply[9] = 1;   // minor
    send(client, reply, sizeof(reply), MSG_NOSIGNAL);
  });
  hw::Budget budget;
  Status s = hw::ProbeWorkers({Endpoint(fake.port())}, &budget, milliseconds(2000));
  EXPECT_EQ(s.code(), Code::kUnimplemented) << s.message();
  EXPECT_NE(s.message().find("worker " + Endpoint(fake.port()) +
                             " speaks ggml-rpc 5.1.0, this "
                             "snug 6.0.0: run the same llama.cpp version on both"),
            std::string::npos)
      << s.message();
  EXPECT_TRUE(budget.devices.empty());
}

TEST(WorkerProbe, ServerThatNeverAnswersTimesOutSayingWhy) {
  FakeServer fake([&](int client) {
    while (!fake.done())  // holds the connection, as rpc-server busy with another client does
      std::this_thread::sleep_for(milliseconds(10));
  });
  hw::Budget budget;
  const auto start = Clock::now();
  Status s = hw::ProbeWorkers({Endpoint(fake.port())}, &budget, milliseconds(1000));
  const double seconds = SecondsSince(start);
  EXPECT_GT(seconds, 0.9);
  EXPECT_LT(seconds, 1.5);
  EXPECT_EQ(s.code(), Code::kUnavailable) << s.message();
  EXPECT_NE(s.message().find("worker " + Endpoint(fake.port()) +
                             " accepted the connection but did not answer within 1 s"),
            std::string::npos)
      << s.message();
  EXPECT_NE(s.message().find("serves one client at a time"), std::string::npos) << s.message();
}

TEST(WorkerProbe, EndpointsAndTheWorkerList) {
  EXPECT_EQ(*hw::ParseWorkerEndpoint("10.0.0.5:50052"),
            std::make_pair(std::string("10.0.0.5"), 50052));
  EXPECT_EQ(*hw::ParseWorkerEndpoint("[::1]:7"), std::make_pair(std::string("::1"), 7));
  for (const char* bad : {"10.0.0.5", "::1:50052", "host:0", "host:70000", ":1", "h:x", "[::1]"}) {
    Result<std::pair<std::string, int>> r = hw::ParseWorkerEndpoint(bad);
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << bad;
    EXPECT_NE(r.status().message().find(bad), std::string::npos) << r.status().message();
  }
  Result<std::vector<std::string>> list = hw::WorkerList({"a:1,b:2", "a:1", " c:3 "});
  ASSERT_TRUE(list.ok()) << list.status().message();
  EXPECT_EQ(*list, (std::vector<std::string>{"a:1", "b:2", "c:3"}));
  setenv("SNUG_WORKERS", "x:1, y:2,x:1", 1);
  EXPECT_EQ(*hw::WorkerList({}), (std::vector<std::string>{"x:1", "y:2"}));
  EXPECT_EQ(*hw::WorkerList({"z:3"}), (std::vector<std::string>{"z:3"}));  // flags win
  setenv("SNUG_WORKERS", "x", 1);
  EXPECT_NE(hw::WorkerList({}).status().message().find("SNUG_WORKERS"), std::string::npos);
  unsetenv("SNUG_WORKERS");
  EXPECT_TRUE(hw::WorkerList({})->empty());
}

}  // namespace
}  // namespace snug::testing
