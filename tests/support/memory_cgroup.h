// A real memory cgroup for one test: a child of this process's own memory cgroup (v1 or v2), with
// a limit, removed when it goes out of scope. Tests that cannot create one skip with error().
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <string>

namespace snug::testing {

class MemoryCgroup {
 public:
  explicit MemoryCgroup(uint64_t limit_bytes);
  ~MemoryCgroup();
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }  // why it could not be made
  const std::string& dir() const { return dir_; }
  std::string procs_file() const { return dir_ + "/cgroup.procs"; }
  int OomKills() const;        // kernel OOM kills recorded in it
  uint64_t PeakBytes() const;  // the most it has held
  uint64_t UsageBytes() const;

 private:
  std::string dir_;
  std::string error_;
  bool v2_ = false;
};

// Moves the calling process into the cgroup whose cgroup.procs file this is. System calls only,
// so a child forked from a threaded test may call it before exec.
bool JoinCgroupInChild(const char* procs_file);

// A process in `cgroup` holding `bytes` of touched anonymous memory until killed: another
// program's memory, as far as a process in the same cgroup can tell. -1 when fork fails.
pid_t StartMemoryHog(const MemoryCgroup& cgroup, uint64_t bytes);

}  // namespace snug::testing
