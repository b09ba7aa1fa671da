#include "memory_cgroup.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace snug::testing {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

bool WriteFile(const std::string& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.close();
  return static_cast<bool>(out);
}

}  // namespace

MemoryCgroup::MemoryCgroup(uint64_t limit_bytes) {
  std::istringstream lines(Slurp("/proc/self/cgroup"));
  std::string line, v1_path, v2_path;
  while (std::getline(lines, line)) {
    const auto first = line.find(':'), second = line.find(':', first + 1);
    if (first == std::string::npos || second == std::string::npos) continue;
    const std::string controllers = line.substr(first + 1, second - first - 1);
    const std::string path = line.substr(second + 1);
    if (controllers == "memory" || controllers.find("memory,") != std::string::npos ||
        controllers.find(",memory") != std::string::npos) {
      v1_path = path;
    }
    if (line.rfind("0::", 0) == 0) v2_path = path;
  }
  static int counter = 0;
  const std::string name =
      "snug-test-" + std::to_string(getpid()) + "-" + std::to_string(counter++);
  if (!v1_path.empty() && std::filesystem::exists("/sys/fs/cgroup/memory" + v1_path)) {
    dir_ = "/sys/fs/cgroup/memory" + v1_path + "/" + name;
  } else if (!v2_path.empty() &&
             std::filesystem::exists("/sys/fs/cgroup" + v2_path + "/cgroup.controllers")) {
    dir_ = "/sys/fs/cgroup" + v2_path + "/" + name;
    v2_ = true;
  } else {
    error_ = "no memory cgroup controller found in /proc/self/cgroup";
    return;
  }
  std::error_code ec;
  if (!std::filesystem::create_directory(dir_, ec)) {
    error_ = "cannot create " + dir_ + ": " + ec.message();
    dir_.clear();
    return;
  }
  const std::string limit = std::to_string(limit_bytes);
  const bool ok =
      v2_ ? WriteFile(dir_ + "/memory.max", limit) && WriteFile(dir_ + "/memory.swap.max", "0")
          : WriteFile(dir_ + "/memory.limit_in_bytes", limit);
  if (!v2_ && std::filesystem::exists(dir_ + "/memory.memsw.limit_in_bytes")) {
    WriteFile(dir_ + "/memory.memsw.limit_in_bytes", limit);  // no escape into swap
  }
  if (!ok) error_ = "cannot set the memory limit in " + dir_;
}

MemoryCgroup::~MemoryCgroup() {
  if (!dir_.empty()) rmdir(dir_.c_str());
}

int MemoryCgroup::OomKills() const {
  std::istringstream in(Slurp(dir_ + (v2_ ? "/memory.events" : "/memory.oom_control")));
  std::string key;
  uint64_t value = 0;
  while (in >> key >> value) {
    if (key == "oom_kill") return static_cast<int>(value);
  }
  return 0;
}

uint64_t MemoryCgroup::PeakBytes() const {
  const std::string text = Slurp(dir_ + (v2_ ? "/memory.peak" : "/memory.max_usage_in_bytes"));
  return text.empty() ? 0 : std::stoull(text);
}

uint64_t MemoryCgroup::UsageBytes() const {
  const std::string text = Slurp(dir_ + (v2_ ? "/memory.current" : "/memory.usage_in_bytes"));
  return text.empty() ? 0 : std::stoull(text);
}

bool JoinCgroupInChild(const char* procs_file) {
  const int fd = open(procs_file, O_WRONLY);
  if (fd < 0) return false;
  char digits[24], text[24];
  int n = 0;
  for (pid_t self = getpid(); self > 0; self /= 10)
    digits[n++] = static_cast<char>('0' + self % 10);
  for (int i = 0; i < n; ++i)
    text[i] = digits[n - 1 - i];
  const bool written = write(fd, text, n) == n;
  close(fd);
  return written;
}

pid_t StartMemoryHog(const MemoryCgroup& cgroup, uint64_t bytes) {
  const std::string procs = cgroup.procs_file();
  const pid_t pid = fork();
  if (pid != 0) return pid;
  // The child of a threaded test process: system calls only until it is killed.
  if (!JoinCgroupInChild(procs.c_str())) _exit(1);
  void* memory = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) _exit(1);
  for (uint64_t i = 0; i < bytes; i += 4096)
    static_cast<char*>(memory)[i] = 1;
  for (;;)
    pause();
}

}  // namespace snug::testing
