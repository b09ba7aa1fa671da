// snug renders chat prompts exactly as llama-server --jinja does: for a fixed conversation with
// tools (system, user, an assistant tool call, its result, a follow-up), POST /apply-template on
// `snug serve` and on llama-server (started here on the same synthetic model, carrying one of
// llama.cpp's real templates) must answer the same prompt. This checks snug's side of the
// mapping (OpenAI wire -> llama.cpp's chat inputs), which is where the two could drift.
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "http_client.h"
#include "serve_process.h"

namespace snug::testing {
namespace {

using nlohmann::json;

const char* const kTemplates[] = {
    "meta-llama-Llama-3.1-8B-Instruct.jinja",
    "meta-llama-Llama-3.2-3B-Instruct.jinja",
    "Qwen-Qwen2.5-7B-Instruct.jinja",
    "Qwen-Qwen3-0.6B.jinja",
    "NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja",
    "mistralai-Mistral-Nemo-Instruct-2407.jinja",  // both refuse: its template raises
    "Mistral-Small-3.2-24B-Instruct-2506.jinja",
    "Qwen3-Coder.jinja",
    "google-gemma-4-31B-it.jinja",
    "deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
    "meetkai-functionary-medium-v3.2.jinja",
    "openai-gpt-oss-120b.jinja",
    "ibm-granite-granite-4.0.jinja",
};

std::string LlamaServerBinary() {
  return std::string(SNUG_LLAMA_SRC) + "/../build/bin/llama-server";
}

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  close(fd);
  return port;
}

// llama-server on one model, killed when the test is done with it.
class LlamaServer {
 public:
  bool Start(const std::string& model, const std::string& log) {
    port_ = FreePort();
    pid_ = fork();
    if (pid_ == 0) {
      FILE* out = std::freopen(log.c_str(), "w", stderr);
      (void)out;
      dup2(fileno(stderr), STDOUT_FILENO);
      const std::string port = std::to_string(port_);
      execl(LlamaServerBinary().c_str(), "llama-server", "-m", model.c_str(), "--jinja", "--host",
            "127.0.0.1", "--port", port.c_str(), "-c", "512", "-np", "1", "-t", "1", "--no-webui",
            static_cast<char*>(nullptr));
      _exit(127);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (std::chrono::steady_clock::now() < deadline) {
      if (Get(port_, "/health").status == 200) return true;
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return false;
  }
  ~LlamaServer() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  int port() const { return port_; }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
};

json Conversation(const std::string& model) {
  json body = json::parse(R"({
    "messages": [
      {"role": "system", "content": "You are a weather assistant."},
      {"role": "user", "content": "Weather in Paris for 3 days?"},
      {"role": "assistant", "content": null, "tool_calls": [{"id": "abc123xyz", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\":\"Paris\",\"days\":3}"}}]},
      {"role": "tool", "tool_call_id": "abc123xyz", "content": "Sunny, 21 C"},
      {"role": "user", "content": [{"type": "text", "text": "And in Tokyo?"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather",
      "description": "Forecast for a city", "parameters": {"type": "object",
      "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
      "required": ["city"]}}}]
  })");
  body["model"] = model;
  return body;
}

TEST(RenderParityTest, SnugRendersAsLlamaServerDoes) {
  ASSERT_TRUE(std::filesystem::exists(LlamaServerBinary()))
      << LlamaServerBinary() << " is missing: `make` builds it with the llama.cpp cache";
  char tmpl[] = "/tmp/snug-render-parity-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  std::vector<std::string> models;
  for (size_t i = 0; i < std::size(kTemplates); ++i) {
    const std::string path = dir + "/m" + std::to_string(i) + ".gguf";
    const std::string cmd = std::string(SNUG_BINARY) + " mkmodel tiny " + path +
                            " --chat-template " + SNUG_LLAMA_SRC + "/models/templates/" +
                            kTemplates[i] + " >/dev/null 2>&1";
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    models.push_back(path);
  }
  ServeProcess snug;
  std::vector<std::string> args = models;
  for (const char* a : {"--ctx", "512", "--parallel", "1", "--threads", "1"})
    args.push_back(a);
  ASSERT_TRUE(snug.Start(args)) << snug.Stderr();

  int rendered = 0;
  for (size_t i = 0; i < std::size(kTemplates); ++i) {
    SCOPED_TRACE(kTemplates[i]);
    LlamaServer llama;
    ASSERT_TRUE(llama.Start(models[i], dir + "/llama-server.log"))
        << "llama-server did not start; see " << dir << "/llama-server.log";
    const json body = Conversation("m" + std::to_string(i));
    auto theirs = Post(llama.port(), "/apply-template", body.dump());
    auto ours = Post(snug.port(), "/apply-template", body.dump());
    if (theirs.status != 200) {
      // A template llama.cpp cannot use for this conversation: snug refuses it the same way,
      // as the request's fault, with llama.cpp's reason.
      EXPECT_EQ(ours.status, 400) << ours.body;
      EXPECT_NE(ours.body.find("template"), std::string::npos) << ours.body;
      continue;
    }
    ASSERT_EQ(ours.status, 200) << ours.body;
    const std::string expected = json::parse(theirs.body)["prompt"];
    const std::string actual = json::parse(ours.body)["prompt"];
    EXPECT_NE(actual.find("Sunny, 21 C"), std::string::npos) << actual;
    EXPECT_EQ(actual, expected);
    ++rendered;
  }
  EXPECT_GE(rendered, 10) << "templates rendered by both servers";
  EXPECT_EQ(snug.Stop(SIGTERM), 0) << snug.Stderr();
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace snug::testing
