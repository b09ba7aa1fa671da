#include "gguf/reader.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <fmt/format.h>

#include "gguf/split.h"

namespace snug::gguf {
namespace {

#ifndef MADV_POPULATE_READ
#define MADV_POPULATE_READ 22  // Linux 5.14; older kernels return EINVAL, which is harmless
#endif
constexpr uint64_t kPrefaultBytes = 8 * 1024 * 1024;

// Reads one file (one split part). The file is mapped rather than read: the parser touches only
// the header pages, so a 40 GB model costs the few MiB of its metadata.
Result<File> ReadOneFile(const std::string& path) {
  // O_NONBLOCK: opening a FIFO would otherwise wait for a writer forever; it is refused below.
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) {
    const int err = errno;
    if (err == ENOENT) return Status::NotFound(fmt::format("{} does not exist", path));
    if (err == EACCES) {
      return Status::PermissionDenied(fmt::format("{} cannot be read: permission denied", path));
    }
    return Status::IoError(fmt::format("{} cannot be opened: {}", path, std::strerror(err)));
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    const char* what = S_ISDIR(st.st_mode)                          ? " (a directory)"
                       : S_ISFIFO(st.st_mode)                       ? " (a FIFO)"
                       : S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode) ? " (a device)"
                                                                    : "";
    return Status::InvalidArgument(fmt::format("{} is not a regular file{}", path, what));
  }
  const uint64_t file_size = static_cast<uint64_t>(st.st_size);
  if (file_size == 0) {
    ::close(fd);
    return Status::Corrupt(fmt::format("{} is not a GGUF file: it is empty", path));
  }
  void* map = ::mmap(nullptr, file_size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) {
    return Status::IoError(fmt::format("{} cannot be mapped: {}", path, std::strerror(errno)));
  }
  // Map the first pages in one call instead of one page fault per 64 KiB: most headers end within
  // them (tokenizers make 1-10 MiB), and it halves the time for a large header. Best effort.
  ::madvise(map, std::min<uint64_t>(file_size, kPrefaultBytes), MADV_POPULATE_READ);
  HeaderParse parsed = ParseHeader(static_cast<const uint8_t*>(map), file_size, file_size, path);
  ::munmap(map, file_size);
  if (!parsed.status.ok()) return parsed.status;
  return std::move(parsed.file);
}

}  // namespace

Result<File> ReadFile(const std::string& path) {
  SNUG_ASSIGN_OR_RETURN(File file, ReadOneFile(path));
  return MergeSplits(std::move(file), ReadOneFile);
}

}  // namespace snug::gguf
