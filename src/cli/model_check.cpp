#include "cli/model_check.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "engine/probe.h"

extern char** environ;

namespace snug::cli {
namespace {

// The line that says why: llama.cpp's assert, else snug's own "snug: ..." line, else the last.
std::string Reason(const std::string& output) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < output.size()) {
    size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    if (end > start) lines.push_back(output.substr(start, end - start));
    start = end + 1;
  }
  for (const char* marker : {"GGML_ASSERT", "GGML_ABORT", "snug: ", "error"}) {
    for (auto it = lines.rbegin(); it != lines.rend(); ++it) {
      const size_t at = it->find(marker);
      if (at != std::string::npos) return it->substr(std::string(marker) == "snug: " ? at + 6 : 0);
    }
  }
  return lines.empty() ? "no output" : lines.back();
}

}  // namespace

Status CheckModelInChild(const std::string& snug_binary, const engine::ModelOptions& model,
                         const engine::ContextOptions& context, std::chrono::seconds timeout) {
  int in[2], err[2];
  if (pipe2(in, O_CLOEXEC) != 0) return Status::IoError("cannot create a pipe for the model check");
  if (pipe2(err, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    return Status::IoError("cannot create a pipe for the model check");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, in[0], STDIN_FILENO);
  posix_spawn_file_actions_adddup2(&actions, err[1], STDERR_FILENO);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  // The child starts with no signals blocked (serve blocks its shutdown signals in every thread).
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> argv = {const_cast<char*>(snug_binary.c_str()),
                             const_cast<char*>("probe-model"), nullptr};
  pid_t pid = -1;
  const int spawned = posix_spawn(&pid, snug_binary.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(err[1]);
  if (spawned != 0) {
    close(in[1]);
    close(err[0]);
    return Status::IoError(
        fmt::format("cannot start {} to check a model: {}", snug_binary, strerror(spawned)));
  }
  const std::string request = engine::ProbeRequestJson(model, context);
  size_t sent = 0;
  while (sent < request.size()) {
    const ssize_t n = write(in[1], request.data() + sent, request.size() - sent);
    if (n <= 0) break;  // the child died early; its exit says why
    sent += static_cast<size_t>(n);
  }
  close(in[1]);

  // Keep the tail of what it says (llama.cpp logs a lot before an assert).
  std::string output;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  bool timed_out = false;
  char buf[4096];
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    pollfd p{err[0], POLLIN, 0};
    if (poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    const ssize_t n = read(err[0], buf, sizeof buf);
    if (n <= 0) break;
    output.append(buf, static_cast<size_t>(n));
    if (output.size() > (64u << 10)) output.erase(0, output.size() - (32u << 10));
  }
  close(err[0]);
  if (timed_out) kill(pid, SIGKILL);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (timed_out) {
    return Status::Runtime(fmt::format("checking {} took more than {} s; it was not loaded",
                                       model.path, timeout.count()));
  }
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) return Status::Ok();
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    return Status::Corrupt(
        fmt::format("{} makes llama.cpp crash ({}) while it loads: {}; the server did not load it",
                    model.path, strsignal(sig), Reason(output)));
  }
  return Status::Corrupt(fmt::format("{} cannot be served: {}", model.path, Reason(output)));
}

}  // namespace snug::cli
