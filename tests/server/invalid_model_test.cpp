// A malformed GGUF made llama.cpp abort inside `snug serve`, killing every request in flight. Now
// the header is validated before anything loads: a broken model on the command line stops the
// server from starting (exit 1), and a request for a broken stored model is a 4xx while the
// server keeps serving.
#include <gguf.h>
#include <gtest/gtest.h>
#include <signal.h>

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

}  // namespace
}  // namespace snug::testing
