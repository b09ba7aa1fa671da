#include "hw/tcp_client.h"

#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fmt/format.h>

#include <cerrno>
#include <cstring>
#include <memory>

namespace snug::hw {
namespace {

constexpr size_t kMaxHttpReply = 1 << 20;

// Milliseconds left until `deadline` for poll(), 0 when past it.
int MillisLeft(Deadline deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return left.count() > 0 ? static_cast<int>(left.count()) : 0;
}

// Waits until fd is ready for `events`; Unavailable "timed out" past the deadline.
Status WaitFor(int fd, short events, Deadline deadline) {
  for (;;) {
    pollfd p{fd, events, 0};
    const int n = poll(&p, 1, MillisLeft(deadline));
    if (n > 0) return Status::Ok();
    if (n == 0) return Status::Unavailable("timed out");
    if (errno != EINTR) return Status::IoError(std::strerror(errno));
  }
}

}  // namespace

TcpConnection::~TcpConnection() {
  if (fd_ >= 0) close(fd_);
}

TcpConnection& TcpConnection::operator=(TcpConnection&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) close(fd_);
    fd_ = other.fd_;
    other.fd_ = -1;
  }
  return *this;
}

Status TcpConnection::Write(const void* data, size_t size, Deadline deadline) const {
  const char* p = static_cast<const char*>(data);
  while (size > 0) {
    SNUG_RETURN_IF_ERROR(WaitFor(fd_, POLLOUT, deadline));
    const ssize_t n = send(fd_, p, size, MSG_NOSIGNAL);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return Status::IoError(std::strerror(errno));
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Status TcpConnection::ReadExact(void* data, size_t size, Deadline deadline) const {
  char* p = static_cast<char*>(data);
  while (size > 0) {
    SNUG_RETURN_IF_ERROR(WaitFor(fd_, POLLIN, deadline));
    const ssize_t n = recv(fd_, p, size, 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return Status::IoError(std::strerror(errno));
    if (n == 0) return Status::IoError("connection closed");
    p += n;
    size -= static_cast<size_t>(n);
  }
  return Status::Ok();
}

Result<std::string> TcpConnection::ReadToEnd(size_t limit, Deadline deadline) const {
  std::string out;
  char chunk[4096];
  for (;;) {
    SNUG_RETURN_IF_ERROR(WaitFor(fd_, POLLIN, deadline));
    const ssize_t n = recv(fd_, chunk, sizeof(chunk), 0);
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
    if (n < 0) return Status::IoError(std::strerror(errno));
    if (n == 0) return out;
    if (out.size() + static_cast<size_t>(n) > limit)
      return Status::IoError(fmt::format("reply larger than {} bytes", limit));
    out.append(chunk, static_cast<size_t>(n));
  }
}

Result<TcpConnection> TcpConnect(const std::string& host, int port, Deadline deadline) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(port);
  if (const int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &found); rc != 0)
    return Status::Unavailable(fmt::format("cannot resolve {}: {}", host, gai_strerror(rc)));
  std::unique_ptr<addrinfo, decltype(&freeaddrinfo)> addresses(found, freeaddrinfo);

  Status last = Status::Unavailable("no address");
  for (const addrinfo* a = found; a != nullptr; a = a->ai_next) {
    TcpConnection conn(socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
    const int fd = conn.fd();
    if (fd < 0) {
      last = Status::Unavailable(std::strerror(errno));
      continue;
    }
    if (connect(fd, a->ai_addr, a->ai_addrlen) == 0) return conn;
    if (errno != EINPROGRESS) {
      last = Status::Unavailable(std::strerror(errno));
      continue;
    }
    if (Status ready = WaitFor(fd, POLLOUT, deadline); !ready.ok()) {
      // Past the deadline: a host that drops packets. Trying further addresses is pointless.
      return Status::Unavailable(ready.code() == Code::kUnavailable ? "connection timed out"
                                                                    : ready.message());
    }
    int error = 0;
    socklen_t len = sizeof(error);
    getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len);
    if (error == 0) return conn;
    last = Status::Unavailable(error == ECONNREFUSED ? "connection refused" : std::strerror(error));
  }
  return last;
}

Result<std::string> HttpGet(const std::string& host, int port, const std::string& path,
                            Deadline deadline) {
  SNUG_ASSIGN_OR_RETURN(TcpConnection conn, TcpConnect(host, port, deadline));
  const bool v6 = host.find(':') != std::string::npos;
  const std::string request =
      fmt::format("GET {} HTTP/1.0\r\nHost: {}{}{}:{}\r\nConnection: close\r\n\r\n", path,
                  v6 ? "[" : "", host, v6 ? "]" : "", port);
  SNUG_RETURN_IF_ERROR(conn.Write(request.data(), request.size(), deadline));
  SNUG_ASSIGN_OR_RETURN(std::string reply, conn.ReadToEnd(kMaxHttpReply, deadline));
  const size_t head_end = reply.find("\r\n\r\n");
  const size_t line_end = reply.find("\r\n");
  if (reply.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos)
    return Status::Unavailable("not an HTTP reply");
  const std::string status_line = reply.substr(0, line_end);
  if (status_line.size() < 12 || status_line.compare(9, 3, "200") != 0)
    return Status::Unavailable("HTTP " + status_line.substr(9));
  return reply.substr(head_end + 4);
}

}  // namespace snug::hw
