#include "worker_support.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "hw/tcp_client.h"

namespace snug::testing {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

double SecondsSince(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

int BindLoopback(int port) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int PortOf(int fd) {
  sockaddr_in addr{};
  socklen_t len = sizeof(addr);
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  return ntohs(addr.sin_port);
}

int FreePortPair() {
  for (int attempt = 0; attempt < 50; ++attempt) {
    const int fd = BindLoopback(0);
    const int port = PortOf(fd);
    const int next = port < 65535 ? BindLoopback(port + 1) : -1;
    close(fd);
    if (next >= 0) {
      close(next);
      return port;
    }
  }
  return 0;
}

std::string Endpoint(int port) {
  return "127.0.0.1:" + std::to_string(port);
}

Background::Background(const std::vector<std::string>& argv, const MemoryCgroup* cgroup) {
  out_ = dir_.path() + "/out";
  err_ = dir_.path() + "/err";
  const std::string procs = cgroup != nullptr ? cgroup->procs_file() : "";
  std::vector<char*> args;
  for (const auto& a : argv)
    args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    // A child of a threaded process: system calls only until exec.
    if (!procs.empty() && !JoinCgroupInChild(procs.c_str())) _exit(126);
    const int in = open("/dev/null", O_RDONLY);
    const int out = open(out_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int err = open(err_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    execv(args[0], args.data());
    _exit(127);
  }
}

Background::~Background() {
  if (pid_ > 0 && !exited_) {
    kill(pid_, SIGTERM);
    waitpid(pid_, nullptr, 0);
  }
}

std::string Background::out() const {
  return Slurp(out_);
}

std::string Background::err() const {
  return Slurp(err_);
}

bool Background::Running() {
  if (exited_) return false;
  int status = 0;
  exited_ = waitpid(pid_, &status, WNOHANG) == pid_;
  if (exited_) status_ = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return !exited_;
}

bool Background::WaitForOutput(const std::string& text, milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    if (out().find(text) != std::string::npos) return true;
    if (!Running()) return false;
    std::this_thread::sleep_for(milliseconds(20));
  }
  return false;
}

int Background::Wait(milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  while (Running() && Clock::now() < deadline)
    std::this_thread::sleep_for(milliseconds(20));
  return exited_ ? status_ : -1;
}

void Background::Kill(int sig) {
  if (pid_ > 0 && !exited_) kill(pid_, sig);
}

Worker::Worker(const MemoryCgroup* cgroup, std::vector<std::string> extra)
    : port(FreePortPair()), process(Args(port, std::move(extra)), cgroup) {}

std::vector<std::string> Worker::Args(int port, std::vector<std::string> extra) {
  std::vector<std::string> args = {SNUG_BINARY, "worker", "--port", std::to_string(port)};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

bool Worker::WaitReady() {
  return process.WaitForOutput("threads", milliseconds(10000));
}

hw::WorkerStatus StatusOf(int port) {
  Result<std::string> body =
      hw::HttpGet("127.0.0.1", port + 1, hw::kWorkerStatusPath, Clock::now() + milliseconds(2000));
  EXPECT_TRUE(body.ok()) << body.status().message();
  if (!body.ok()) return {};
  Result<hw::WorkerStatus> status = hw::ParseWorkerStatus(*body);
  EXPECT_TRUE(status.ok()) << status.status().message() << "\n" << *body;
  return status.ok() ? *status : hw::WorkerStatus{};
}

}  // namespace snug::testing
