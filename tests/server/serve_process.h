// A real `snug serve` child process for tests: started with --port 0, its port read from the
// "listening on HOST:PORT" line, stopped with a signal. Test models are written once per run
// with `snug mkmodel`.
#pragma once

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace snug::testing {

// Writes (once per process) `snug mkmodel PRESET` into a temp dir and returns the path.
std::string TestModel(const std::string& preset, const std::string& file_name);

class ServeProcess {
 public:
  ServeProcess() = default;
  ~ServeProcess();  // SIGKILL if still running
  ServeProcess(const ServeProcess&) = delete;
  ServeProcess& operator=(const ServeProcess&) = delete;

  // Starts `snug serve ARGS... --port 0` (unless args hold --port) and waits for the listening
  // line. False when the process exits first or times out; exit_code() then tells why.
  bool Start(const std::vector<std::string>& args, int timeout_seconds = 120);
  // Before Start: the server process joins this cgroup (its cgroup.procs file) before exec.
  void JoinCgroup(std::string procs_file) { cgroup_procs_ = std::move(procs_file); }
  // Sends `sig` and waits; returns the exit status (or -1 on timeout, after SIGKILL).
  int Stop(int sig, int timeout_seconds = 60);
  // Waits for exit without a signal (for processes that should refuse to start).
  int Wait(int timeout_seconds = 60);

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  std::string Stderr() const;
  const std::string& Stdout() const { return stdout_; }
  int exit_code() const { return exit_code_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::string stdout_;
  std::string stderr_path_;
  std::string cgroup_procs_;
};

}  // namespace snug::testing
