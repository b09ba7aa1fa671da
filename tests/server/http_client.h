// A deliberately small HTTP/1.1 client over a raw socket, so tests control exactly what is sent
// and can hang up mid-stream (a disconnecting client).
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <thread>
#include <vector>

namespace snug::testing {

struct HttpResponse {
  int status = 0;                              // 0: connection failed
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;                            // de-chunked
};

HttpResponse Http(int port, const std::string& method, const std::string& path,
                  const std::string& body = "",
                  const std::map<std::string, std::string>& headers = {});
inline HttpResponse Get(int port, const std::string& path,
                        const std::map<std::string, std::string>& headers = {}) {
  return Http(port, "GET", path, "", headers);
}
inline HttpResponse Post(int port, const std::string& path, const std::string& body,
                         const std::map<std::string, std::string>& headers = {}) {
  return Http(port, "POST", path, body, headers);
}

// Raw-socket pieces for tests that speak HTTP by hand: a loopback connection (180 s receive
// timeout), a blocking send of everything, and everything read until the server closes.
int Connect(int port);
bool SendAll(int fd, const std::string& data);
std::string ReadToEnd(int fd);

// The "data: ..." payloads of an SSE body, in order.
std::vector<std::string> SseData(const std::string& body);

// Opens a streaming request, reads until `bytes` of the body arrived (or the stream ended),
// then closes the socket abruptly. Returns what was read.
std::string PostAndHangUp(int port, const std::string& path, const std::string& body, size_t bytes);
// Sends a POST and returns the open socket without reading the answer (-1 on failure); HangUp
// resets the connection as a killed client would.
int SendPost(int port, const std::string& path, const std::string& body);
void HangUp(int fd);

// A streaming request held open by a reader thread (the client keeps consuming, so the server
// keeps generating) until Close() hangs up. Occupies a slot for as long as a test needs it.
class HeldStream {
 public:
  HeldStream() = default;
  ~HeldStream() { Close(); }
  HeldStream(const HeldStream&) = delete;
  HeldStream& operator=(const HeldStream&) = delete;
  // True once the first SSE event arrived (the request was admitted and is generating).
  bool Open(int port, const std::string& path, const std::string& body);
  void Close();

 private:
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  std::thread reader_;
};

}  // namespace snug::testing
