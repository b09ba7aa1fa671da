// What a route handler sees of HTTP: a fully read request and a response that is either a body
// or a stream. The transport (http_transport.h) owns sockets, framing, limits and timeouts, so
// the routes of every API dialect stay free of them.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace snug::server {

struct HttpRequest {
  std::string method;                                        // "GET", "POST", ...
  std::string path;                                          // percent-decoded, without the query
  std::string query;                                         // raw, after '?'
  std::vector<std::pair<std::string, std::string>> headers;  // names lower-cased
  std::string body;
  std::string remote_addr;
  std::string path_tail;  // what a prefix route matched after its prefix ("/v1/models/" + tail)
  // True once the client reset or dropped the connection. A client that only half-closed (shut
  // down its sending side after the request, as `nc -N` does) is still there and gets its answer.
  std::function<bool()> client_gone = [] { return false; };

  // The first header of that (case-insensitive) name, or "" when absent.
  std::string Header(std::string_view name) const;
  bool HasHeader(std::string_view name) const;
};

// Writes a streamed response's body; each Write is sent at once as one chunk.
class StreamSink {
 public:
  virtual ~StreamSink() = default;
  // False once the client is gone (the write failed or timed out); stop producing then.
  virtual bool Write(std::string_view data) = 0;
  // The request's client_gone, for producers that wait between writes.
  virtual bool ClientGone() = 0;
};

struct HttpResponse {
  int status = 200;
  std::vector<std::pair<std::string, std::string>> headers;
  std::string content_type = "application/json";
  std::string body;
  // Set for a streamed response: called on the handler's thread after the headers are sent, and
  // returns when the stream has ended.
  std::function<void(StreamSink&)> stream;

  void SetHeader(std::string name, std::string value);
  void SetContent(std::string content, std::string type) {
    body = std::move(content);
    content_type = std::move(type);
  }
};

}  // namespace snug::server
