// A minimal blocking TCP client with a deadline on every step, for probing workers. ggml-rpc's own
// client aborts the process when a worker is unreachable or goes away (GGML_ABORT in
// ggml-rpc.cpp), so nothing that only asks a worker may go through it. Used by src/hw and by
// engine/workers.cpp (which worker is gone).
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "core/status.h"

namespace snug::hw {

using Deadline = std::chrono::steady_clock::time_point;

// An open connection; closed by the destructor.
class TcpConnection {
 public:
  TcpConnection() = default;
  explicit TcpConnection(int fd) : fd_(fd) {}
  ~TcpConnection();
  TcpConnection(TcpConnection&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  TcpConnection& operator=(TcpConnection&& other) noexcept;
  TcpConnection(const TcpConnection&) = delete;
  TcpConnection& operator=(const TcpConnection&) = delete;

  int fd() const { return fd_; }

  // Sends all of `data`. IoError when the peer is gone, Unavailable "timed out" past `deadline`.
  Status Write(const void* data, size_t size, Deadline deadline) const;
  // Reads exactly `size` bytes. IoError "connection closed" on EOF, Unavailable "timed out" past
  // `deadline`.
  Status ReadExact(void* data, size_t size, Deadline deadline) const;
  // Reads until the peer closes, at most `limit` bytes (IoError past it).
  Result<std::string> ReadToEnd(size_t limit, Deadline deadline) const;

 private:
  int fd_ = -1;
};

// Connects to host:port (a name, IPv4 or IPv6 address), trying each address until `deadline`.
// Unavailable with what went wrong: "connection refused", "no answer within 2.0 s",
// "cannot resolve host: ...".
Result<TcpConnection> TcpConnect(const std::string& host, int port, Deadline deadline);

// GET http://host:port/path over HTTP/1.0; the body when the status is 200, else Unavailable
// saying what came back. Replies over 1 MiB are refused.
Result<std::string> HttpGet(const std::string& host, int port, const std::string& path,
                            Deadline deadline);

}  // namespace snug::hw
