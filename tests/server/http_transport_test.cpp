// The HTTP transport against hostile and unusual clients, over real loopback sockets: bodies past
// the limit however they are framed, compressed bodies, conflicting lengths, slow senders,
// half-closed and vanished clients, the connection cap, keep-alive and pipelining.
#include "server/http_transport.h"

#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"

namespace snug::server {
namespace {

using namespace std::chrono_literals;

using testing::Connect;
using testing::ReadToEnd;

bool Send(int fd, const std::string& data) {
  return testing::SendAll(fd, data);
}

std::string ReadAll(int fd) {
  return ReadToEnd(fd);
}

// Reads until `marker` has arrived (or the connection ends).
std::string ReadUntil(int fd, const std::string& marker) {
  std::string out;
  char buf[4096];
  while (out.find(marker) == std::string::npos) {
    const ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

int StatusOf(const std::string& raw) {
  return raw.size() >= 12 && raw.rfind("HTTP/1.", 0) == 0 ? std::stoi(raw.substr(9, 3)) : 0;
}

size_t ResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  size_t pages = 0, resident = 0;
  statm >> pages >> resident;
  return resident * static_cast<size_t>(sysconf(_SC_PAGESIZE));
}

class TransportTest : public ::testing::Test {
 protected:
  void Start(TransportLimits limits = {}) {
    transport_ = std::make_unique<HttpTransport>(
        limits, [this](HttpRequest& req, HttpResponse& res) { Handle(req, res); },
        [](int status, const std::string& message, const HttpRequest&, HttpResponse& res) {
          res.status = status;
          res.SetContent(message, "text/plain");
        });
    auto port = transport_->Bind("127.0.0.1", 0);
    ASSERT_TRUE(port.ok()) << port.status().ToString();
    port_ = *port;
    serving_ = std::thread([this] { transport_->Serve(); });
  }
  void TearDown() override {
    if (transport_) transport_->Stop();
    if (serving_.joinable()) serving_.join();
  }

  void Handle(HttpRequest& req, HttpResponse& res) {
    ++handled_;
    if (req.path == "/echo") {
      res.SetContent("got " + std::to_string(req.body.size()) + " bytes: " + req.body.substr(0, 32),
                     "text/plain");
    } else if (req.path == "/wait") {
      // As a non-streamed generation does: work for a while, watching for the client to leave.
      for (int i = 0; i < 40; ++i) {
        if (req.client_gone()) {
          saw_gone_ = true;
          res.status = 499;
          return;
        }
        std::this_thread::sleep_for(50ms);
      }
      res.SetContent("finished", "text/plain");
    } else if (req.path == "/stream") {
      res.content_type = "text/event-stream";
      res.stream = [](StreamSink& sink) {
        for (int i = 0; i < 3; ++i)
          sink.Write("data: " + std::to_string(i) + "\n\n");
      };
    } else {
      res.status = 404;
    }
  }

  std::unique_ptr<HttpTransport> transport_;
  std::thread serving_;
  int port_ = 0;
  std::atomic<int> handled_{0};
  std::atomic<bool> saw_gone_{false};
};

TEST_F(TransportTest, ChunkedBodyPastTheLimitIs413WithoutBuffering) {
  Start();
  const size_t rss_before = ResidentBytes();
  const int fd = Connect(port_);
  ASSERT_GE(fd, 0);
  ASSERT_TRUE(Send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"));
  // 100 MiB in 64 KiB chunks; the server answers once the limit (8 MiB) is passed.
  const std::string piece(64 << 10, 'a');
  const std::string chunk = "10000\r\n" + piece + "\r\n";
  size_t sent = 0;
  while (sent < (100u << 20) && Send(fd, chunk))
    sent += piece.size();
  const std::string answer = ReadAll(fd);
  close(fd);
  EXPECT_EQ(StatusOf(answer), 413) << answer.substr(0, 200);
  EXPECT_NE(answer.find("exceeds 8388608 bytes"), std::string::npos) << answer;
  EXPECT_EQ(handled_.load(), 0);
  EXPECT_LT(ResidentBytes(), rss_before + (20u << 20));
}

TEST_F(TransportTest, DeclaredLengthPastTheLimitIs413AtOnce) {
  Start();
  const int fd = Connect(port_);
  ASSERT_TRUE(Send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n"));
  const std::string answer = ReadUntil(fd, "accepts at most");
  close(fd);
  EXPECT_EQ(StatusOf(answer), 413) << answer;
  EXPECT_NE(answer.find("104857600 bytes"), std::string::npos) << answer;
}

TEST_F(TransportTest, CompressedBodiesAreRefusedUninflated) {
  Start();
  for (const std::string encoding : {"gzip", "deflate", "br"}) {
    const int fd = Connect(port_);
    // A gzip bomb's first bytes; the server must not inflate them.
    const std::string body = std::string("\x1f\x8b\x08\x00", 4) + std::string(100000, '\0');
    Send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Encoding: " + encoding +
                 "\r\nContent-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
    const std::string answer = ReadAll(fd);
    close(fd);
    EXPECT_EQ(StatusOf(answer), 415) << encoding << ": " << answer;
    EXPECT_NE(answer.find("Content-Encoding: " + encoding), std::string::npos) << answer;
  }
  EXPECT_EQ(handled_.load(), 0);
}

TEST_F(TransportTest, ConflictingContentLengthsAre400) {
  Start();
  const int fd = Connect(port_);
  Send(fd,
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 50\r\n\r\nhello");
  const std::string answer = ReadAll(fd);
  close(fd);
  EXPECT_EQ(StatusOf(answer), 400) << answer;
  EXPECT_EQ(handled_.load(), 0);
}

TEST_F(TransportTest, BodyWithoutFramingIsNotReadAsBody) {
  Start();
  const int fd = Connect(port_);
  // No Content-Length, no chunked: a request has no body (RFC 9112 6.3); what follows is not
  // buffered as one, and is not a valid next request either.
  Send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\n\r\n" + std::string(1 << 20, 'z'));
  const std::string answer = ReadAll(fd);
  close(fd);
  EXPECT_EQ(StatusOf(answer), 200) << answer.substr(0, 200);
  EXPECT_NE(answer.find("got 0 bytes"), std::string::npos);
  // The rest is refused as a malformed next request (its "method" runs past the header limit).
  EXPECT_NE(answer.find("HTTP/1.1 4", 12), std::string::npos) << answer.substr(0, 400);
}

TEST_F(TransportTest, HalfClosedClientGetsItsAnswer) {
  Start();
  const int fd = Connect(port_);
  Send(fd, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
  shutdown(fd, SHUT_WR);  // as `nc -N` does once the request is sent
  const std::string answer = ReadAll(fd);
  close(fd);
  // An interim 100 (the server checking whether the client is still there) may come first.
  EXPECT_NE(answer.find("HTTP/1.1 200"), std::string::npos) << answer;
  EXPECT_NE(answer.find("finished"), std::string::npos) << answer;
  EXPECT_FALSE(saw_gone_.load());
}

TEST_F(TransportTest, ClientThatClosesIsNoticedWhileWaiting) {
  Start();
  for (const bool reset : {false, true}) {
    saw_gone_ = false;
    const int fd = Connect(port_);
    Send(fd, "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n");
    std::this_thread::sleep_for(200ms);
    if (reset) {
      linger l{1, 0};
      setsockopt(fd, SOL_SOCKET, SO_LINGER, &l, sizeof l);
    }
    close(fd);
    const auto deadline = std::chrono::steady_clock::now() + 1500ms;
    while (!saw_gone_ && std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(20ms);
    EXPECT_TRUE(saw_gone_.load()) << (reset ? "reset" : "closed");
  }
}

TEST_F(TransportTest, SlowSendersDoNotStarveOthers) {
  TransportLimits limits;
  limits.header_timeout = 2s;
  limits.handler_threads = 8;
  Start(limits);
  std::vector<int> slow;
  for (int i = 0; i < 200; ++i) {
    const int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    Send(fd, "POST /echo HTTP/1.1\r\n");
    slow.push_back(fd);
  }
  std::atomic<bool> trickling{true};
  std::thread trickle([&] {
    for (int line = 0; trickling; ++line) {
      for (int fd : slow)
        send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL | MSG_DONTWAIT);
      std::this_thread::sleep_for(200ms);
    }
  });
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const int fd = Connect(port_);
    Send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi");
    const std::string answer = ReadAll(fd);
    close(fd);
    EXPECT_EQ(StatusOf(answer), 200) << answer;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 1s);
    std::this_thread::sleep_for(300ms);
  }
  // Past the header deadline the slow connections are closed by the server.
  std::this_thread::sleep_for(2500ms);
  trickling = false;
  trickle.join();
  int closed = 0;
  for (int fd : slow) {
    char buf[512];
    timeval tv{0, 200000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (recv(fd, buf, sizeof buf, 0) <= 0) ++closed;
    close(fd);
  }
  EXPECT_EQ(closed, 200);
}

TEST_F(TransportTest, ConnectionsPastTheCapGet503) {
  TransportLimits limits;
  limits.max_connections = 4;
  Start(limits);
  std::vector<int> held;
  for (int i = 0; i < 4; ++i)
    held.push_back(Connect(port_));
  std::this_thread::sleep_for(100ms);
  const int extra = Connect(port_);
  const std::string answer = ReadAll(extra);
  close(extra);
  EXPECT_EQ(StatusOf(answer), 503) << answer;
  EXPECT_NE(answer.find("Retry-After"), std::string::npos);
  for (int fd : held)
    close(fd);
  std::this_thread::sleep_for(100ms);
  const int again = Connect(port_);
  Send(again, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  EXPECT_EQ(StatusOf(ReadAll(again)), 200);
  close(again);
}

TEST_F(TransportTest, KeepAlivePipeliningExpectContinueHeadAndStreams) {
  Start();
  const int fd = Connect(port_);
  // Two requests in one write, answered in order on the same connection.
  Send(fd,
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\none"
       "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\ntwo");
  std::string both = ReadUntil(fd, "bytes: two");
  EXPECT_LT(both.find("bytes: one"), both.find("bytes: two")) << both;
  EXPECT_NE(both.find("Keep-Alive: timeout="), std::string::npos) << both;
  // Expect: 100-continue gets the interim answer before the body is sent.
  Send(fd, "POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n");
  EXPECT_EQ(StatusOf(ReadUntil(fd, "\r\n\r\n")), 100);
  Send(fd, "hello");
  EXPECT_NE(ReadUntil(fd, "hello").find("got 5 bytes: hello"), std::string::npos);
  // HEAD: the GET answer's headers, no body.
  Send(fd, "HEAD /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string head = ReadUntil(fd, "\r\n\r\n");
  EXPECT_EQ(StatusOf(head), 200);
  EXPECT_NE(head.find("Content-Length: 13"), std::string::npos) << head;
  // A stream: chunked, and the connection stays usable after it.
  Send(fd, "GET /stream HTTP/1.1\r\nHost: x\r\n\r\n");
  const std::string stream = ReadUntil(fd, "0\r\n\r\n");
  EXPECT_NE(stream.find("Transfer-Encoding: chunked"), std::string::npos) << stream;
  EXPECT_NE(stream.find("data: 2"), std::string::npos) << stream;
  Send(fd, "GET /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
  const std::string last = ReadAll(fd);
  EXPECT_EQ(StatusOf(last), 200) << last;
  EXPECT_NE(last.find("Connection: close"), std::string::npos);
  close(fd);
}

TEST_F(TransportTest, HeadersPastTheLimitAre431) {
  Start();
  const int fd = Connect(port_);
  Send(fd, "GET /echo HTTP/1.1\r\nHost: x\r\nX-Big: " + std::string(32 << 10, 'b') + "\r\n\r\n");
  const std::string answer = ReadAll(fd);
  close(fd);
  EXPECT_EQ(StatusOf(answer), 431) << answer.substr(0, 200);
}

TEST_F(TransportTest, StopReturnsWithIdleConnectionsOpen) {
  Start();
  const int idle = Connect(port_);
  Send(idle, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  ReadUntil(idle, "bytes");
  const auto start = std::chrono::steady_clock::now();
  transport_->Stop();
  serving_.join();
  EXPECT_LT(std::chrono::steady_clock::now() - start, 2s);
  close(idle);
}

TEST_F(TransportTest, ABusyPortIsRefused) {
  Start();
  HttpTransport second(
      {}, [](HttpRequest&, HttpResponse&) {},
      [](int, const std::string&, const HttpRequest&, HttpResponse&) {});
  auto bound = second.Bind("127.0.0.1", port_);
  ASSERT_FALSE(bound.ok());
  EXPECT_NE(bound.status().ToString().find("in use"), std::string::npos)
      << bound.status().ToString();
}

}  // namespace
}  // namespace snug::server
