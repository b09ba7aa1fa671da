#include "http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>

namespace snug::testing {

int Connect(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    close(fd);
    return -1;
  }
  timeval tv{180, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  return fd;
}

bool SendAll(int fd, const std::string& data) {
  size_t sent = 0;
  while (sent < data.size()) {
    ssize_t n = send(fd, data.data() + sent, data.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return false;
    sent += n;
  }
  return true;
}

std::string ReadToEnd(int fd) {
  std::string raw;
  char buf[16384];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0)
    raw.append(buf, n);
  return raw;
}

namespace {

std::string RequestText(const std::string& method, const std::string& path, const std::string& body,
                        const std::map<std::string, std::string>& headers) {
  // A Host given in `headers` replaces the default (tests of the server's Host check).
  std::string req = method + " " + path + " HTTP/1.1\r\n";
  if (headers.count("Host") == 0) req += "Host: 127.0.0.1\r\n";
  req += "Connection: close\r\n";
  bool has_type = false;
  for (const auto& [k, v] : headers) {
    req += k + ": " + v + "\r\n";
    has_type |= k == "Content-Type";
  }
  if (method == "POST") {
    if (!has_type) req += "Content-Type: application/json\r\n";
    req += "Content-Length: " + std::to_string(body.size()) + "\r\n";
  }
  return req + "\r\n" + body;
}

std::string Dechunk(const std::string& raw) {
  std::string out;
  size_t pos = 0;
  while (pos < raw.size()) {
    size_t eol = raw.find("\r\n", pos);
    if (eol == std::string::npos) break;
    size_t len = std::stoul(raw.substr(pos, eol - pos), nullptr, 16);
    if (len == 0) break;
    out += raw.substr(eol + 2, len);
    pos = eol + 2 + len + 2;
  }
  return out;
}

}  // namespace

HttpResponse Http(int port, const std::string& method, const std::string& path,
                  const std::string& body, const std::map<std::string, std::string>& headers) {
  HttpResponse res;
  int fd = Connect(port);
  if (fd < 0) return res;
  // A server may answer (413) before reading the whole body and close; keep what it said.
  SendAll(fd, RequestText(method, path, body, headers));
  const std::string raw = ReadToEnd(fd);
  close(fd);
  size_t head_end = raw.find("\r\n\r\n");
  if (head_end == std::string::npos || raw.size() < 12) return res;
  res.status = std::stoi(raw.substr(9, 3));
  size_t line = raw.find("\r\n") + 2;
  while (line < head_end) {
    size_t eol = raw.find("\r\n", line);
    std::string h = raw.substr(line, eol - line);
    size_t colon = h.find(':');
    if (colon != std::string::npos) {
      std::string key = h.substr(0, colon);
      std::transform(key.begin(), key.end(), key.begin(), ::tolower);
      size_t v = h.find_first_not_of(' ', colon + 1);
      res.headers[key] = v == std::string::npos ? "" : h.substr(v);
    }
    line = eol + 2;
  }
  std::string payload = raw.substr(head_end + 4);
  res.body = res.headers["transfer-encoding"] == "chunked" ? Dechunk(payload) : payload;
  return res;
}

std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

std::string PostAndHangUp(int port, const std::string& path, const std::string& body,
                          size_t bytes) {
  int fd = Connect(port);
  if (fd < 0) return "";
  SendAll(fd, RequestText("POST", path, body, {}));
  std::string raw;
  char buf[4096];
  ssize_t n;
  while (raw.size() < bytes && (n = recv(fd, buf, sizeof buf, 0)) > 0)
    raw.append(buf, n);
  // RST instead of FIN: the server's next write fails at once, as with a killed client.
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
  return raw;
}

int SendPost(int port, const std::string& path, const std::string& body) {
  int fd = Connect(port);
  if (fd >= 0) SendAll(fd, RequestText("POST", path, body, {}));
  return fd;
}

void HangUp(int fd) {
  linger l{1, 0};
  setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
  close(fd);
}

bool HeldStream::Open(int port, const std::string& path, const std::string& body) {
  fd_ = Connect(port);
  if (fd_ < 0) return false;
  SendAll(fd_, RequestText("POST", path, body, {}));
  std::string raw;
  char buf[4096];
  ssize_t n;
  while (raw.find("data: ") == std::string::npos && (n = recv(fd_, buf, sizeof buf, 0)) > 0) {
    raw.append(buf, n);
  }
  if (raw.find("data: ") == std::string::npos) return false;
  timeval tv{0, 100000};
  setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  reader_ = std::thread([this] {
    char sink[4096];
    while (!stop_.load()) {
      ssize_t got = recv(fd_, sink, sizeof sink, 0);
      if (got == 0) break;
    }
  });
  return true;
}

void HeldStream::Close() {
  stop_.store(true);
  if (reader_.joinable()) reader_.join();
  if (fd_ >= 0) {
    linger l{1, 0};
    setsockopt(fd_, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    close(fd_);
    fd_ = -1;
  }
}

}  // namespace snug::testing
