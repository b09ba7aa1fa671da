#include "serve_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "../support/memory_cgroup.h"

namespace snug::testing {
namespace {

// Test models and logs live here for the life of the test process, then go (the two qwen
// presets alone are 0.9 GB).
struct ScratchDir {
  std::string path;
  ScratchDir() {
    char tmpl[] = "/tmp/snug-server-test-XXXXXX";
    const char* made = mkdtemp(tmpl);
    path = made ? made : "";
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path.empty()) std::filesystem::remove_all(path, ec);
  }
};

std::string TempDir() {
  static ScratchDir dir;
  return dir.path;
}

}  // namespace

std::string TestModel(const std::string& preset, const std::string& file_name) {
  static std::mutex mu;
  static std::map<std::string, std::string> made;
  std::lock_guard lock(mu);
  if (auto it = made.find(file_name); it != made.end()) return it->second;
  const std::string path = TempDir() + "/" + file_name;
  const std::string cmd = std::string(SNUG_BINARY) + " mkmodel " + preset + " " + path +
                          " --weights random >/dev/null 2>&1";
  if (std::system(cmd.c_str()) != 0) return "";
  made[file_name] = path;
  return path;
}

ServeProcess::~ServeProcess() {
  if (pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, nullptr, 0);
  }
}

std::string ServeProcess::Stderr() const {
  std::ifstream in(stderr_path_);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool ServeProcess::Start(const std::vector<std::string>& args, int timeout_seconds) {
  static int counter = 0;
  stderr_path_ = TempDir() + "/serve-" + std::to_string(getpid()) + "-" +
                 std::to_string(counter++) + ".stderr";
  std::vector<std::string> argv = {SNUG_BINARY, "serve"};
  argv.insert(argv.end(), args.begin(), args.end());
  bool has_port = false;
  for (const auto& a : args)
    has_port |= a == "--port";
  if (!has_port) {
    argv.push_back("--port");
    argv.push_back("0");
  }
  int out[2];
  if (pipe(out) != 0) return false;
  pid_ = fork();
  if (pid_ == 0) {
    if (!cgroup_procs_.empty() && !JoinCgroupInChild(cgroup_procs_.c_str())) _exit(126);
    dup2(out[1], STDOUT_FILENO);
    int err = open(stderr_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (err >= 0) dup2(err, STDERR_FILENO);
    close(out[0]);
    std::vector<char*> cargv;
    for (auto& a : argv)
      cargv.push_back(a.data());
    cargv.push_back(nullptr);
    execv(cargv[0], cargv.data());
    _exit(127);
  }
  close(out[1]);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  const std::regex listening(R"(listening on ([^\s]+):(\d+))");
  char buf[4096];
  bool ok = false;
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{out[0], POLLIN, 0};
    if (poll(&p, 1, 200) > 0) {
      ssize_t n = read(out[0], buf, sizeof buf);
      if (n <= 0) break;  // the process closed stdout: it exited
      stdout_.append(buf, n);
      std::smatch m;
      if (std::regex_search(stdout_, m, listening)) {
        port_ = std::stoi(m[2]);
        ok = true;
        break;
      }
    }
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
      break;
    }
  }
  // Keep draining stdout in the background so the child never blocks on a full pipe.
  std::thread([fd = out[0]] {
    char sink[4096];
    while (read(fd, sink, sizeof sink) > 0) {
    }
    close(fd);
  }).detach();
  return ok;
}

int ServeProcess::Wait(int timeout_seconds) {
  if (pid_ <= 0) return exit_code_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_seconds);
  while (std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      pid_ = -1;
      return exit_code_;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
  return -1;
}

int ServeProcess::Stop(int sig, int timeout_seconds) {
  if (pid_ <= 0) return exit_code_;
  kill(pid_, sig);
  return Wait(timeout_seconds);
}

}  // namespace snug::testing
