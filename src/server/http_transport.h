// HTTP/1.1 transport for `snug serve`, on Boost.Beast/Asio: an event-driven reader that never
// gives a thread to a client until its whole request has arrived, then a pool of handler threads
// that run routes (generations block for as long as they stream).
//
// Why not cpp-httplib (what snug used before): Debian's 0.11 gives a connection thread to each
// client from the first byte (200 slow senders starved every other request), buffers chunked and
// length-less bodies past the body limit, inflates gzip bodies without a cap, accepts conflicting
// Content-Length headers and gives handlers no socket to tell a dead client from a half-closed
// one. Beast's parser enforces header and body limits whatever the framing and rejects bad
// framing, and Asio lets idle and slow connections cost a socket, not a thread.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "server/http_types.h"

namespace snug::server {

struct TransportLimits {
  size_t body_bytes = 8u << 20;     // one request's body, however it is framed
  size_t header_bytes = 16u << 10;  // request line and headers together
  // Bodies being received at once, all connections together (each counts its Content-Length,
  // or body_bytes when chunked): bounds what uploads can hold in memory.
  size_t inflight_body_bytes = 64u << 20;
  std::chrono::seconds header_timeout{10};  // from the wait for a request to its last header
  std::chrono::seconds body_timeout{60};    // for the whole body once the headers are in
  std::chrono::seconds write_timeout{60};   // a client that stops reading its answer is dropped
  int keep_alive_seconds = 5;               // advertised to clients (Keep-Alive: timeout=N)
  int max_connections = 1024;               // beyond: a 503 and close
  int handler_threads = 96;                 // requests handled (streams served) at once
};

class HttpTransport {
 public:
  using Handler = std::function<void(HttpRequest&, HttpResponse&)>;
  // Fills the answer for a request the transport refuses itself (413, 415, 431, 400, 408, 503);
  // `request` holds what was read of it (method, path, headers; no body).
  using ErrorResponder = std::function<void(int status, const std::string& message,
                                            const HttpRequest& request, HttpResponse& response)>;

  HttpTransport(TransportLimits limits, Handler handler, ErrorResponder on_error);
  ~HttpTransport();
  HttpTransport(const HttpTransport&) = delete;
  HttpTransport& operator=(const HttpTransport&) = delete;

  // Listens on host:port exclusively (no SO_REUSEPORT); port 0 picks a free one. Returns the port.
  Result<int> Bind(const std::string& host, int port);
  // Serves until Stop; returns once every handler has finished.
  void Serve();
  // Stops accepting and closes idle connections; running handlers finish first. Any thread.
  void Stop();

  struct Impl;  // public only so the connections in the .cpp can name it

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace snug::server
