// A real `snug serve` against the hostile HTTP clients of issue 15: huge chunked bodies, gzip
// bombs, conflicting lengths, 200 slowloris connections and a half-closing client. The server
// must answer each with an error in OpenAI's shape, keep its memory, and keep serving chats.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>
#include <zlib.h>
#include <nlohmann/json.hpp>

#include <sys/wait.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <future>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "../support/memory_cgroup.h"
#include "http_client.h"
#include "serve_process.h"

namespace snug::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

size_t ResidentBytes(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (status >> key) {
    if (key == "VmRSS:") {
      size_t kib = 0;
      status >> kib;
      return kib << 10;
    }
  }
  return 0;
}

// A real gzip stream of `bytes` zeros (100 MiB compress to about 100 KB).
std::string GzipOfZeros(size_t bytes) {
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY);
  std::string in(1 << 20, '\0');
  std::string out;
  std::vector<unsigned char> buf(1 << 16);
  for (size_t done = 0; done < bytes; done += in.size()) {
    z.next_in = reinterpret_cast<Bytef*>(in.data());
    z.avail_in = static_cast<uInt>(in.size());
    const int flush = done + in.size() >= bytes ? Z_FINISH : Z_NO_FLUSH;
    do {
      z.next_out = buf.data();
      z.avail_out = static_cast<uInt>(buf.size());
      deflate(&z, flush);
      out.append(reinterpret_cast<char*>(buf.data()), buf.size() - z.avail_out);
    } while (z.avail_out == 0);
  }
  deflateEnd(&z);
  return out;
}

int StatusOf(const std::string& raw) {
  return raw.size() >= 12 && raw.rfind("HTTP/1.", 0) == 0 ? std::stoi(raw.substr(9, 3)) : 0;
}

// The JSON error object of a raw answer, or null.
json ErrorOf(const std::string& raw) {
  const size_t body = raw.find("\r\n\r\n");
  if (body == std::string::npos) return nullptr;
  json parsed = json::parse(raw.substr(body + 4), nullptr, false);
  return parsed.is_object() && parsed.contains("error") ? parsed["error"] : json(nullptr);
}

std::string ChatBody(int max_tokens) {
  return json{{"model", "tiny"},
              {"messages", {{{"role", "user"}, {"content", "Hello there"}}}},
              {"max_tokens", max_tokens}}
      .dump();
}

class HostileHttpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start({TestModel("tiny", "tiny.gguf"), "--ctx", "2048", "--threads", "2"}))
        << server_.Stderr();
    // Load the model first, so its memory is not mistaken for the requests'.
    auto warm = Post(server_.port(), "/v1/chat/completions", ChatBody(2));
    ASSERT_EQ(warm.status, 200) << warm.body;
  }
  void TearDown() override { EXPECT_EQ(server_.Stop(SIGTERM), 0); }
  ServeProcess server_;
};

TEST_F(HostileHttpTest, HugeAndCompressedBodiesAreRefusedAndTheServerStaysSmall) {
  const size_t rss_before = ResidentBytes(server_.pid());
  ASSERT_GT(rss_before, 0u);

  // 100 MiB chunked, where the body limit (8 MiB) cannot be checked from a Content-Length. Sent
  // three times: glibc may keep the first refused body's memory in an arena (once, reused after),
  // but nothing may accumulate.
  size_t rss_after_first = 0;
  std::string answer;
  for (int round = 0; round < 3; ++round) {
    const int fd = Connect(server_.port());
    SendAll(fd,
            "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            "Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string piece(1 << 16, ' ');
    for (size_t sent = 0; sent < (100u << 20); sent += piece.size()) {
      if (!SendAll(fd, "10000\r\n" + piece + "\r\n")) break;
    }
    answer = ReadToEnd(fd);
    close(fd);
    EXPECT_EQ(StatusOf(answer), 413) << answer.substr(0, 300);
    EXPECT_EQ(ErrorOf(answer)["code"], "request_too_large") << answer;
    if (round == 0) rss_after_first = ResidentBytes(server_.pid());
  }
  EXPECT_LT(ResidentBytes(server_.pid()), rss_after_first + (4u << 20)) << "refused bodies pile up";

  // A gzip bomb (and its deflate cousin): 100 MiB of zeros in about 100 KB.
  const std::string bomb = GzipOfZeros(100u << 20);
  ASSERT_LT(bomb.size(), 200u << 10);
  for (const char* encoding : {"gzip", "deflate"}) {
    const int fd = Connect(server_.port());
    SendAll(fd, std::string("POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                            "Content-Type: application/json\r\nContent-Encoding: ") +
                    encoding + "\r\nContent-Length: " + std::to_string(bomb.size()) + "\r\n\r\n" +
                    bomb);
    answer = ReadToEnd(fd);
    close(fd);
    EXPECT_EQ(StatusOf(answer), 415) << encoding << ": " << answer.substr(0, 300);
    EXPECT_EQ(ErrorOf(answer)["code"], "unsupported_media_type") << answer;
  }

  // Conflicting lengths (RFC 9112 6.3: the message is invalid).
  const int fd = Connect(server_.port());
  SendAll(fd,
          "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
          "Content-Length: 10\r\nContent-Length: 2000\r\n\r\n{}");
  answer = ReadToEnd(fd);
  close(fd);
  EXPECT_EQ(StatusOf(answer), 400) << answer;

  const size_t rss_after = ResidentBytes(server_.pid());
  std::cout << "RSS before the bodies: " << (rss_before >> 20)
            << " MiB, after: " << (rss_after >> 20) << " MiB\n";
  // Before: +670 MiB for one such body, 13.4 GiB for a gzip bomb. The bound: under 20 MiB.
  EXPECT_LT(rss_after, rss_before + (20u << 20))
      << "RSS grew from " << (rss_before >> 20) << " to " << (rss_after >> 20) << " MiB";
  auto chat = Post(server_.port(), "/v1/chat/completions", ChatBody(4));
  EXPECT_EQ(chat.status, 200) << chat.body;
}

TEST_F(HostileHttpTest, SlowlorisConnectionsLeaveChatsAnswered) {
  std::vector<int> slow;
  for (int i = 0; i < 200; ++i) {
    const int fd = Connect(server_.port());
    ASSERT_GE(fd, 0) << "connection " << i;
    SendAll(fd, "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    slow.push_back(fd);
  }
  std::atomic<bool> trickling{true};
  std::thread trickle([&] {
    while (trickling) {
      for (int fd : slow)
        send(fd, "X-Slow: 1\r\n", 11, MSG_NOSIGNAL | MSG_DONTWAIT);
      for (int i = 0; i < 20 && trickling; ++i)
        std::this_thread::sleep_for(100ms);  // a header line every 2 s, as in the report
    }
  });
  for (int i = 0; i < 2; ++i) {
    const auto start = std::chrono::steady_clock::now();
    auto chat = Post(server_.port(), "/v1/chat/completions", ChatBody(4));
    EXPECT_EQ(chat.status, 200) << chat.body;
    EXPECT_LT(std::chrono::steady_clock::now() - start, 10s);
  }
  trickling = false;
  trickle.join();
  for (int fd : slow)
    close(fd);
}

TEST_F(HostileHttpTest, AClientThatHalfClosesGetsItsAnswer) {
  const int fd = Connect(server_.port());
  // Long enough that the server checks on the client while it generates.
  const std::string body = ChatBody(100);
  SendAll(fd,
          "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
          "Content-Type: application/json\r\nContent-Length: " +
              std::to_string(body.size()) + "\r\n\r\n" + body);
  shutdown(fd, SHUT_WR);
  const std::string answer = ReadToEnd(fd);
  close(fd);
  const size_t final_answer = answer.find("HTTP/1.1 200");
  ASSERT_NE(final_answer, std::string::npos) << answer;
  const size_t json_start = answer.find("\r\n\r\n", final_answer);
  json parsed = json::parse(answer.substr(json_start + 4), nullptr, false);
  ASSERT_TRUE(parsed.is_object()) << answer;
  EXPECT_EQ(parsed["choices"][0]["message"]["role"], "assistant");
}

std::string ChatWithText(const std::string& text) {
  return json{
      {"model", "tiny"}, {"messages", {{{"role", "user"}, {"content", text}}}}, {"max_tokens", 2}}
      .dump();
}

// Issue 15: two concurrent 7 MiB prompts in a 1 GiB container used to OOM-kill the server while
// it tokenized them (llama.cpp's tokenizer holds 30-90 bytes per input byte). A prompt that cannot
// fit the context is now refused from its length alone.
TEST(HostileRequestsTest, HugePromptsAreRefusedBeforeTokenizing) {
  MemoryCgroup cgroup(1ull << 30);
  ServeProcess server;
  if (cgroup.ok()) {
    server.JoinCgroup(cgroup.procs_file());
  } else {
    std::cout << "running without a memory cgroup (" << cgroup.error() << ")\n";
  }
  ASSERT_TRUE(server.Start({TestModel("tiny", "tiny.gguf"), "--ctx", "4096", "--threads", "2"}))
      << server.Stderr();
  std::string text;
  for (int i = 0; text.size() < (7u << 20); ++i)
    text += "!@#$%^&*() ";  // punctuation: the tokenizer's most expensive text per byte
  const std::string body = ChatWithText(text);
  ASSERT_LT(body.size(), 8u << 20);
  auto first = std::async(std::launch::async,
                          [&] { return Post(server.port(), "/v1/chat/completions", body); });
  auto second = std::async(std::launch::async,
                           [&] { return Post(server.port(), "/v1/chat/completions", body); });
  for (auto* answer : {&first, &second}) {
    const auto res = answer->get();
    EXPECT_EQ(res.status, 400) << res.body;
    EXPECT_NE(res.body.find("so at least"), std::string::npos) << res.body;
  }
  auto chat = Post(server.port(), "/v1/chat/completions", ChatBody(2));
  EXPECT_EQ(chat.status, 200) << chat.body;
  if (cgroup.ok()) {
    EXPECT_EQ(cgroup.OomKills(), 0);
  }
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

// A prompt that could fit the context is tokenized against the budget: with 20 MiB free beside
// the model, a 500 KB prompt (about 47 MiB of tokenizer memory) is a 507 with the numbers.
TEST(HostileRequestsTest, LargePromptsAreTokenizedWithinTheBudget) {
  const std::string model = TestModel("tiny", "tiny.gguf");
  uint64_t planned = 0;
  {
    ServeProcess probe;
    ASSERT_TRUE(probe.Start({model, "--ctx", "4096", "--threads", "2"})) << probe.Stderr();
    auto ps = json::parse(Get(probe.port(), "/v1/ps").body, nullptr, false);
    ASSERT_TRUE(ps.is_object());
    planned = ps["planned_bytes"].get<uint64_t>();
    EXPECT_EQ(probe.Stop(SIGTERM), 0);
  }
  ASSERT_GT(planned, 0u);
  ServeProcess server;
  ASSERT_TRUE(server.Start({model, "--ctx", "4096", "--threads", "2", "--headroom", "0",
                            "--memory-limit", std::to_string(planned + (20u << 20))}))
      << server.Stderr();
  std::string text;
  while (text.size() < 500000)
    text += "word ";
  auto refused = Post(server.port(), "/v1/chat/completions", ChatWithText(text));
  EXPECT_EQ(refused.status, 507) << refused.body;
  EXPECT_NE(refused.body.find("tokenizing a"), std::string::npos) << refused.body;
  auto chat = Post(server.port(), "/v1/chat/completions", ChatBody(2));
  EXPECT_EQ(chat.status, 200) << chat.body;
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace snug::testing
