// A malformed GGUF made llama.cpp abort inside `snug serve`, killing every request in flight. Now
// the header is validated before anything loads: a broken model on the command line stops the
// server from starting (exit 1), and a request for a broken stored model is a 4xx while the
// server keeps serving.
#include <gguf.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include "http_client.h"
#include "serve_process.h"
#include "synth/presets.h"
#include "synth/writer.h"

namespace snug::testing {
namespace {

class ScratchDir {
 public:
  ScratchDir() {
    char tmpl[] = "/tmp/snug-invalid-model-XXXXXX";
    const char* made = mkdtemp(tmpl);
    path_ = made ? made : "";
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// The tiny preset, written by snug's generator, claiming 4096 layers (llama.cpp asserts at most
// 512 and aborts).
std::string WriteTooManyBlocks(const std::string& dir) {
  auto preset = synth::FindPreset("tiny");
  EXPECT_TRUE(preset.ok()) << preset.status().ToString();
  synth::WriteOptions options;
  options.vocab_dir = std::string(SNUG_LLAMA_SRC) + "/models";
  options.edit_metadata = [](gguf_context* g) { gguf_set_val_u32(g, "llama.block_count", 4096); };
  const std::string path = dir + "/broken.gguf";
  const Status written = synth::WriteModel(*preset, path, options);
  EXPECT_TRUE(written.ok()) << written.ToString();
  return path;
}

constexpr const char* kMessage =
    "llama.block_count is 4096 but the file has tensors for 4 blocks (blk.0 .. blk.3)";

TEST(ServeInvalidModelTest, BrokenModelOnTheCommandLineStopsTheStartWithExitOne) {
  ScratchDir dir;
  const std::string path = WriteTooManyBlocks(dir.path());
  ServeProcess server;
  EXPECT_FALSE(server.Start({path, "--threads", "2"}));
  EXPECT_EQ(server.Wait(), 1) << server.Stderr();
  EXPECT_NE(server.Stderr().find(kMessage), std::string::npos) << server.Stderr();
}

TEST(ServeInvalidModelTest, RequestForABrokenStoredModelIs422AndTheServerLives) {
  ScratchDir dir;
  const std::string path = WriteTooManyBlocks(dir.path());
  const std::string store = dir.path() + "/store";
  const std::string import = "SNUG_HOME='" + store + "' '" + SNUG_BINARY + "' import '" + path +
                             "' --name broken >/dev/null 2>&1";
  ASSERT_EQ(std::system(import.c_str()), 0) << import;

  ServeProcess server;
  ASSERT_TRUE(server.Start({"--models-dir", store, "--threads", "2"})) << server.Stderr();
  const HttpResponse res =
      Post(server.port(), "/v1/chat/completions",
           R"({"model":"broken","messages":[{"role":"user","content":"hi"}],"max_tokens":2})");
  EXPECT_EQ(res.status, 422) << res.body;
  EXPECT_NE(res.body.find(kMessage), std::string::npos) << res.body;
  EXPECT_NE(res.body.find("\"invalid_model\""), std::string::npos) << res.body;
  EXPECT_EQ(Get(server.port(), "/health").status, 200);
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Stderr();
}

// A file the validator passes but llama.cpp aborts on (an assert, not an error): a vocabulary
// with tokenizer.ggml.model "none" kills any process that tokenizes with it. serve tries each
// model in a child process first, so the child dies, the server refuses that model with
// llama.cpp's own words, and goes on serving the others.
TEST(ServeInvalidModelTest, AModelThatAbortsLlamaCppLeavesTheServerServingOthers) {
  ScratchDir dir;
  auto preset = synth::FindPreset("tiny");
  ASSERT_TRUE(preset.ok());
  synth::WriteOptions options;
  options.vocab_dir = std::string(SNUG_LLAMA_SRC) + "/models";
  options.edit_metadata = [](gguf_context* g) {
    gguf_set_val_str(g, "tokenizer.ggml.model", "none");
  };
  const std::string crashing = dir.path() + "/crashing.gguf";
  ASSERT_TRUE(synth::WriteModel(*preset, crashing, options).ok());
  // It does abort llama.cpp: `snug run` is not shielded and dies with SIGABRT.
  const std::string run =
      "'" + std::string(SNUG_BINARY) + "' run '" + crashing + "' hi -n 1 --ctx 512 >/dev/null 2>&1";
  const int run_status = std::system(run.c_str());
  ASSERT_TRUE(WIFEXITED(run_status) && WEXITSTATUS(run_status) == 128 + SIGABRT ||
              WIFSIGNALED(run_status))
      << "expected llama.cpp to abort on this file; status " << run_status;

  const std::string store = dir.path() + "/store";
  const std::string import = "SNUG_HOME='" + store + "' '" + SNUG_BINARY + "' import '" + crashing +
                             "' --name crashing >/dev/null 2>&1";
  ASSERT_EQ(std::system(import.c_str()), 0) << import;
  synth::WriteOptions good;
  good.vocab_dir = options.vocab_dir;
  const std::string healthy = dir.path() + "/tiny.gguf";
  ASSERT_TRUE(synth::WriteModel(*preset, healthy, good).ok());

  ServeProcess server;
  ASSERT_TRUE(server.Start({healthy, "--models-dir", store, "--ctx", "1024", "--threads", "2"}))
      << server.Stderr();
  for (int attempt = 0; attempt < 2; ++attempt) {  // the second answer comes from the cache
    const HttpResponse res =
        Post(server.port(), "/v1/chat/completions",
             R"({"model":"crashing","messages":[{"role":"user","content":"hi"}],"max_tokens":2})");
    EXPECT_EQ(res.status, 422) << res.body;
    EXPECT_NE(res.body.find("makes llama.cpp crash"), std::string::npos) << res.body;
    EXPECT_NE(res.body.find("GGML_ASSERT"), std::string::npos) << res.body;
  }
  const HttpResponse chat =
      Post(server.port(), "/v1/chat/completions",
           R"({"model":"tiny","messages":[{"role":"user","content":"hi"}],"max_tokens":2})");
  EXPECT_EQ(chat.status, 200) << chat.body;
  EXPECT_EQ(Get(server.port(), "/health").status, 200);
  EXPECT_EQ(server.Stop(SIGTERM), 0) << server.Stderr();
}

}  // namespace
}  // namespace snug::testing
