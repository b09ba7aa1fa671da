// Shared by the worker tests: background processes (optionally in a memory cgroup), free port
// pairs, `snug worker` processes and their status endpoint.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "../support/memory_cgroup.h"
#include "hw/worker_status.h"
#include "run_support.h"

namespace snug::testing {

double SecondsSince(std::chrono::steady_clock::time_point start);
std::string Slurp(const std::string& path);
// A loopback TCP socket bound to `port` (0 = any); -1 when the port is taken.
int BindLoopback(int port);
int PortOf(int fd);
// A free port P with P + 1 free too (a worker's status port).
int FreePortPair();
std::string Endpoint(int port);

// A process running in the background, stdout and stderr to files, optionally in a memory
// cgroup; SIGTERM and reaped on destruction.
class Background {
 public:
  Background(const std::vector<std::string>& argv, const MemoryCgroup* cgroup = nullptr);
  ~Background();
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  std::string out() const;
  std::string err() const;
  bool Running();
  // Waits until stdout holds `text`; false when the process exits or time runs out first.
  bool WaitForOutput(const std::string& text, std::chrono::milliseconds timeout);
  // Waits for the exit; its status (-1 on timeout or a signal).
  int Wait(std::chrono::milliseconds timeout);
  void Kill(int sig);
  pid_t pid() const { return pid_; }

 private:
  TempDir dir_;
  std::string out_, err_;
  pid_t pid_ = -1;
  bool exited_ = false;
  int status_ = -1;
};

// `snug worker` on a fresh port pair, ready when its start-up summary is out (printed once
// ggml-rpc listens).
struct Worker {
  explicit Worker(const MemoryCgroup* cgroup = nullptr, std::vector<std::string> extra = {});
  static std::vector<std::string> Args(int port, std::vector<std::string> extra);
  bool WaitReady();
  std::string endpoint() const { return Endpoint(port); }

  int port;
  Background process;
};

// GET /snug/worker, parsed.
hw::WorkerStatus StatusOf(int port);

}  // namespace snug::testing
