// ReadRemote against real HTTP servers on 127.0.0.1: cpp-httplib for well-behaved servers (Range,
// redirects, auth), raw sockets for misbehaving ones (ignores Range, closes early, never answers).
#include "gguf/remote.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <map>
#include <thread>

#include "gguf/reader.h"
#include "gguf_test_util.h"

namespace snug::gguf {
namespace {

using testing::TempDir;

// An httplib server on a free loopback port, serving files under /f/NAME with Range support and
// counting the body bytes it sends.
class FileServer {
 public:
  FileServer() {
    server_.Get("/f/(.*)", [this](const httplib::Request& req, httplib::Response& res) {
      if (!required_auth_.empty() && req.get_header_value("Authorization") != required_auth_) {
        res.status = 401;
        return;
      }
      auto it = files_.find(req.matches[1].str());
      if (it == files_.end()) {
        res.status = 404;
        return;
      }
      const std::string path = it->second;
      const size_t size = std::filesystem::file_size(path);
      res.set_content_provider(size, "application/octet-stream",
                               [this, path](size_t offset, size_t length, httplib::DataSink& sink) {
                                 std::vector<char> chunk(std::min<size_t>(length, 64 * 1024));
                                 const int fd = ::open(path.c_str(), O_RDONLY);
                                 const ssize_t n = ::pread(fd, chunk.data(), chunk.size(),
                                                           static_cast<off_t>(offset));
                                 ::close(fd);
                                 if (n <= 0) return false;
                                 bytes_sent_ += static_cast<uint64_t>(n);
                                 return sink.write(chunk.data(), static_cast<size_t>(n));
                               });
    });
    server_.Get("/status/(\\d+)", [](const httplib::Request& req, httplib::Response& res) {
      res.status = std::stoi(req.matches[1].str());
      res.set_content("error page", "text/plain");
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    while (!server_.is_running())
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ~FileServer() {
    server_.stop();
    thread_.join();
  }
  void Serve(const std::string& name, const std::string& path) { files_[name] = path; }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  httplib::Server& server() { return server_; }
  uint64_t bytes_sent() const { return bytes_sent_; }
  int port() const { return port_; }
  void RequireAuth(const std::string& value) { required_auth_ = value; }

 private:
  httplib::Server server_;
  std::map<std::string, std::string> files_;
  std::string required_auth_;
  std::atomic<uint64_t> bytes_sent_{0};
  int port_ = 0;
  std::thread thread_;
};

// A listening socket whose connections are handed to `handle` (after the request is read), for
// servers that misbehave in ways httplib will not.
class RawServer {
 public:
  explicit RawServer(std::function<void(int fd)> handle) : handle_(std::move(handle)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    socklen_t len = sizeof(addr);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    ::listen(fd_, 8);
    thread_ = std::thread([this] {
      for (;;) {
        const int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) return;
        std::string request;
        char buf[4096];
        while (request.find("\r\n\r\n") == std::string::npos) {
          const ssize_t n = ::recv(c, buf, sizeof(buf), 0);
          if (n <= 0) break;
          request.append(buf, static_cast<size_t>(n));
        }
        ++requests_;
        handle_(c);
        ::close(c);
      }
    });
  }
  ~RawServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    thread_.join();
  }
  std::string Url(const std::string& path) const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int requests() const { return requests_; }

 private:
  std::function<void(int)> handle_;
  int fd_ = -1;
  int port_ = 0;
  std::atomic<int> requests_{0};
  std::thread thread_;
};

bool SendAll(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}

// A model with a small header and 2 GiB of (sparse) tensor data.
std::string WriteBigSparseModel(const TempDir& dir) {
  const std::string path = dir / "big.gguf";
  testing::WriteGguf(path,
                     [](gguf_context* g) {
                       gguf_set_val_str(g, "general.architecture", "llama");
                       gguf_set_val_u32(g, "llama.block_count", 2);
                     },
                     {{"token_embd.weight", GGML_TYPE_F32, {16384, 16384}},
                      {"output.weight", GGML_TYPE_F32, {16384, 16384}}});
  return path;
}

std::string VocabPath(const std::string& name) {
  return std::string(SNUG_LLAMA_SRC) + "/models/ggml-vocab-" + name + ".gguf";
}

void ExpectSameHeader(const File& remote, const File& local) {
  EXPECT_EQ(remote.version, local.version);
  EXPECT_EQ(remote.kv.size(), local.kv.size());
  EXPECT_EQ(remote.tensors.size(), local.tensors.size());
  EXPECT_EQ(remote.data_offset, local.data_offset);
  EXPECT_EQ(remote.file_bytes, local.file_bytes);
  EXPECT_EQ(remote.TensorBytes(), local.TensorBytes());
  EXPECT_EQ(remote.Arch(), local.Arch());
}

TEST(GgufRemote, ServerSupportsRange) {
  // Guards the premise of the other tests: httplib answers our Range requests with 206.
  TempDir dir;
  FileServer server;
  server.Serve("big.gguf", WriteBigSparseModel(dir));
  httplib::Client client("127.0.0.1", server.port());
  auto res = client.Get("/f/big.gguf", {{"Range", "bytes=0-99"}});
  ASSERT_TRUE(res);
  EXPECT_EQ(res->status, 206);
  EXPECT_EQ(res->body.size(), 100u);
}

TEST(GgufRemote, ReadsOnlyTheHeaderOfABigFile) {
  TempDir dir;
  const std::string path = WriteBigSparseModel(dir);
  FileServer server;
  server.Serve("big.gguf", path);
  RemoteStats stats;
  RemoteOptions opts;
  opts.stats = &stats;
  auto file = ReadRemote(server.Url("/f/big.gguf"), opts);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto local = ReadFile(path);
  ASSERT_TRUE(local.ok());
  ExpectSameHeader(*file, *local);
  EXPECT_GT(file->file_bytes, 2ull << 30);
  EXPECT_EQ(file->path, server.Url("/f/big.gguf"));
  EXPECT_EQ(stats.requests, 1u);
  // One request for the first window; none of the 2 GiB of tensor data beyond it.
  EXPECT_LE(server.bytes_sent(), opts.initial_bytes);
}

TEST(GgufRemote, GrowsTheWindowForALargeTokenizer) {
  const std::string path = VocabPath("llama-bpe");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing " << path;
  FileServer server;
  server.Serve("vocab.gguf", path);
  RemoteStats stats;
  RemoteOptions opts;
  opts.initial_bytes = 1 << 20;
  opts.stats = &stats;
  auto file = ReadRemote(server.Url("/f/vocab.gguf"), opts);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto local = ReadFile(path);
  ASSERT_TRUE(local.ok());
  ExpectSameHeader(*file, *local);
  EXPECT_EQ(file->kv.at("tokenizer.ggml.tokens").array_length, 128256u);
  EXPECT_GE(stats.requests, 3u);  // 1 MiB, 2 MiB, 4 MiB, 8 MiB windows
  // Each request asks only for bytes not yet received.
  EXPECT_EQ(server.bytes_sent(), stats.bytes_received);
  EXPECT_LE(server.bytes_sent(), std::filesystem::file_size(path));
}

TEST(GgufRemote, HeaderLargerThanTheCapIsRefused) {
  const std::string path = VocabPath("llama-bpe");
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "missing " << path;
  FileServer server;
  server.Serve("vocab.gguf", path);
  RemoteOptions opts;
  opts.initial_bytes = 256 << 10;
  opts.max_header_bytes = 1 << 20;
  auto file = ReadRemote(server.Url("/f/vocab.gguf"), opts);
  EXPECT_EQ(file.status().code(), Code::kCorrupt);
  EXPECT_NE(file.status().message().find("needs more than 1.0 MiB"), std::string::npos)
      << file.status().message();
  EXPECT_LE(server.bytes_sent(), 1u << 20);
}

TEST(GgufRemote, FollowsRedirectsToAnotherPortWithoutLeakingTheToken) {
  TempDir dir;
  const std::string path = WriteBigSparseModel(dir);
  FileServer cdn;
  cdn.Serve("blob", path);
  std::atomic<int> auth_seen_by_cdn{0};
  cdn.server().set_pre_routing_handler([&](const httplib::Request& req, httplib::Response&) {
    if (req.has_header("Authorization")) ++auth_seen_by_cdn;
    return httplib::Server::HandlerResponse::Unhandled;
  });
  FileServer hub;
  std::atomic<int> auth_seen_by_hub{0};
  const std::string target = cdn.Url("/f/blob");
  hub.server().Get("/org/model/resolve/main/model.gguf",
                   [&](const httplib::Request& req, httplib::Response& res) {
                     if (req.get_header_value("Authorization") == "Bearer sekrit")
                       ++auth_seen_by_hub;
                     res.set_redirect(target, 302);
                   });
  RemoteOptions opts;
  opts.bearer_token = "sekrit";
  auto file = ReadRemote(hub.Url("/org/model/resolve/main/model.gguf"), opts);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_GT(file->file_bytes, 2ull << 30);
  EXPECT_GE(auth_seen_by_hub.load(), 1);
  EXPECT_EQ(auth_seen_by_cdn.load(), 0);
}

TEST(GgufRemote, HfTokenGoesOnlyToTheHfEndpoint) {
  TempDir dir;
  FileServer server;
  server.Serve("m.gguf", WriteBigSparseModel(dir));
  server.RequireAuth("Bearer hf_test");
  ::setenv("HF_TOKEN", "hf_test", 1);
  ::setenv("SNUG_HF_ENDPOINT", "https://huggingface.co", 1);
  auto refused = ReadRemote(server.Url("/f/m.gguf"));
  EXPECT_EQ(refused.status().code(), Code::kPermissionDenied);
  EXPECT_NE(refused.status().message().find("HTTP 401"), std::string::npos);
  ::setenv("SNUG_HF_ENDPOINT", ("http://127.0.0.1:" + std::to_string(server.port())).c_str(), 1);
  auto accepted = ReadRemote(server.Url("/f/m.gguf"));
  EXPECT_TRUE(accepted.ok()) << accepted.status().ToString();
  ::unsetenv("HF_TOKEN");
  ::unsetenv("SNUG_HF_ENDPOINT");
}

TEST(GgufRemote, HttpErrorsAreClear) {
  FileServer server;
  auto missing = ReadRemote(server.Url("/f/nope.gguf"));
  EXPECT_EQ(missing.status().code(), Code::kNotFound);
  EXPECT_NE(missing.status().message().find("/f/nope.gguf was not found (HTTP 404)"),
            std::string::npos);
  auto unauthorized = ReadRemote(server.Url("/status/401"));
  EXPECT_EQ(unauthorized.status().code(), Code::kPermissionDenied);
  EXPECT_NE(unauthorized.status().message().find("set HF_TOKEN"), std::string::npos);
  auto forbidden = ReadRemote(server.Url("/status/403"));
  EXPECT_EQ(forbidden.status().code(), Code::kPermissionDenied);
  auto broken = ReadRemote(server.Url("/status/503"));
  EXPECT_EQ(broken.status().code(), Code::kUnavailable);
  EXPECT_NE(broken.status().message().find("HTTP 503"), std::string::npos);
  auto odd = ReadRemote(server.Url("/status/418"));
  EXPECT_EQ(odd.status().code(), Code::kIoError);
  auto not_url = ReadRemote("/local/path.gguf");
  EXPECT_EQ(not_url.status().code(), Code::kInvalidArgument);
}

TEST(GgufRemote, NotAGgufFile) {
  TempDir dir;
  testing::WriteAll(dir / "page.html", std::vector<uint8_t>(5000, '<'));
  FileServer server;
  server.Serve("page.html", dir / "page.html");
  auto file = ReadRemote(server.Url("/f/page.html"));
  EXPECT_EQ(file.status().code(), Code::kCorrupt);
  EXPECT_NE(file.status().message().find("is not a GGUF file"), std::string::npos);
}

TEST(GgufRemote, ConnectionRefused) {
  int port = 0;
  {
    FileServer closed;  // take a free port, then close it
    port = closed.port();
  }
  RemoteOptions opts;
  opts.connect_timeout = std::chrono::milliseconds(2000);
  auto file = ReadRemote("http://127.0.0.1:" + std::to_string(port) + "/m.gguf", opts);
  EXPECT_EQ(file.status().code(), Code::kIoError);
  EXPECT_NE(file.status().message().find("cannot connect to"), std::string::npos)
      << file.status().message();
}

TEST(GgufRemote, ServerIgnoringRangeIsCutOff) {
  TempDir dir;
  const std::string path = WriteBigSparseModel(dir);
  const uint64_t size = std::filesystem::file_size(path);
  std::vector<uint8_t> header(1 << 20);
  {
    const int fd = ::open(path.c_str(), O_RDONLY);
    ASSERT_EQ(::pread(fd, header.data(), header.size(), 0), static_cast<ssize_t>(header.size()));
    ::close(fd);
  }
  std::atomic<uint64_t> sent{0};
  RawServer server([&](int fd) {
    if (!SendAll(fd, "HTTP/1.1 200 OK\r\nContent-Length: " + std::to_string(size) +
                         "\r\nContent-Type: application/octet-stream\r\n\r\n")) {
      return;
    }
    // The header, then zeros "until the file ends": 2 GiB unless the client hangs up.
    std::string chunk(reinterpret_cast<const char*>(header.data()), header.size());
    for (uint64_t off = 0; off < size; off += chunk.size()) {
      if (!SendAll(fd, chunk)) return;
      sent += chunk.size();
      if (off == 0) chunk.assign(chunk.size(), '\0');
    }
  });
  RemoteOptions opts;
  opts.initial_bytes = 1 << 20;
  auto file = ReadRemote(server.Url("/m.gguf"), opts);
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ(file->file_bytes, size);
  EXPECT_EQ(server.requests(), 1);
  // Socket buffers absorb some extra before the client's close is noticed, but not gigabytes.
  EXPECT_LT(sent.load(), 64ull << 20);
}

TEST(GgufRemote, ServerClosingEarlyIsAnError) {
  RawServer server([](int fd) {
    SendAll(fd,
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-2097151/5000000000\r\n"
            "Content-Length: 2097152\r\n\r\n" +
                std::string("GGUF\x03\0\0\0", 8));
  });
  auto file = ReadRemote(server.Url("/m.gguf"));
  EXPECT_EQ(file.status().code(), Code::kIoError);
  EXPECT_NE(file.status().message().find("closed the connection after 8 bytes"), std::string::npos)
      << file.status().message();
}

TEST(GgufRemote, WrongRangeIsAnError) {
  RawServer server([](int fd) {
    SendAll(fd,
            "HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 100-199/5000\r\n"
            "Content-Length: 100\r\n\r\n" +
                std::string(100, 'x'));
  });
  auto file = ReadRemote(server.Url("/m.gguf"));
  EXPECT_EQ(file.status().code(), Code::kIoError);
  EXPECT_NE(file.status().message().find("different range"), std::string::npos)
      << file.status().message();
}

TEST(GgufRemote, TimesOut) {
  RawServer server([](int fd) { std::this_thread::sleep_for(std::chrono::milliseconds(1500)); });
  RemoteOptions opts;
  opts.timeout = std::chrono::milliseconds(300);
  const auto start = std::chrono::steady_clock::now();
  auto file = ReadRemote(server.Url("/m.gguf"), opts);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(1400));
  EXPECT_EQ(file.status().code(), Code::kIoError);
  EXPECT_NE(file.status().message().find("timed out after 300 ms"), std::string::npos)
      << file.status().message();
}

TEST(GgufRemote, ReadsEverySplitPart) {
  TempDir dir;
  FileServer server;
  for (int no = 0; no < 2; ++no) {
    const std::string name = "m-0000" + std::to_string(no + 1) + "-of-00002.gguf";
    testing::WriteGguf(dir / name,
                       [&](gguf_context* g) {
                         gguf_set_val_u16(g, "split.no", static_cast<uint16_t>(no));
                         gguf_set_val_u16(g, "split.count", 2);
                         gguf_set_val_i32(g, "split.tensors.count", 2);
                       },
                       {{"t" + std::to_string(no), GGML_TYPE_F32, {1024}}});
    server.Serve(name, dir / name);
  }
  auto file = ReadRemote(server.Url("/f/m-00002-of-00002.gguf"));
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  auto local = ReadFile(dir / "m-00001-of-00002.gguf");
  ASSERT_TRUE(local.ok());
  EXPECT_EQ(file->n_splits, 2);
  EXPECT_EQ(file->path, server.Url("/f/m-00001-of-00002.gguf"));
  ASSERT_EQ(file->tensors.size(), 2u);
  EXPECT_EQ(file->tensors[1].split, 1);
  EXPECT_EQ(file->file_bytes, local->file_bytes);
}

}  // namespace
}  // namespace snug::gguf
