#include "store/file_lock.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace snug::store {

FileLock::~FileLock() {
  Release();
}

FileLock::FileLock(FileLock&& other) noexcept : fd_(other.fd_) {
  other.fd_ = -1;
}

FileLock& FileLock::operator=(FileLock&& other) noexcept {
  if (this != &other) {
    Release();
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

void FileLock::Release() {
  if (fd_ >= 0) {
    flock(fd_, LOCK_UN);
    close(fd_);
    fd_ = -1;
  }
}

Result<FileLock> FileLock::Lock(const std::string& path, bool wait) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (fd < 0) {
    return Status::IoError(fmt::format("cannot open lock file {}: {}", path, std::strerror(errno)));
  }
  int rc;
  do {
    rc = flock(fd, LOCK_EX | (wait ? 0 : LOCK_NB));
  } while (rc != 0 && errno == EINTR);
  if (rc != 0) {
    int error = errno;
    close(fd);
    if (error == EWOULDBLOCK) {
      return Status::Unavailable(fmt::format("{} is locked by another snug process", path));
    }
    return Status::IoError(fmt::format("cannot lock {}: {}", path, std::strerror(error)));
  }
  FileLock lock;
  lock.fd_ = fd;
  return lock;
}

Result<FileLock> FileLock::Acquire(const std::string& path) {
  return Lock(path, true);
}

Result<FileLock> FileLock::TryAcquire(const std::string& path) {
  return Lock(path, false);
}

}  // namespace snug::store
