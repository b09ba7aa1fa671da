// An advisory lock on a file (flock): held by one snug process at a time, released when the
// process exits even by kill -9, so a crashed pull never leaves a stale lock behind.
#pragma once

#include <string>

#include "core/status.h"

namespace snug::store {

class FileLock {
 public:
  FileLock() = default;
  ~FileLock();
  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;

  // Takes the lock, blocking until free. Creates the lock file if needed.
  static Result<FileLock> Acquire(const std::string& path);
  // Takes the lock if free; Unavailable when another process holds it.
  static Result<FileLock> TryAcquire(const std::string& path);

  bool held() const { return fd_ >= 0; }
  void Release();

 private:
  static Result<FileLock> Lock(const std::string& path, bool wait);
  int fd_ = -1;
};

}  // namespace snug::store
