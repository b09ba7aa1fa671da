// Greedy decoding through `snug run` yields exactly the tokens llama.cpp's own llama-completion
// produces for the same model file, prompt, context and threads.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <filesystem>

#include "engine/engine.h"
#include "run_support.h"

namespace snug::testing {
namespace {

struct Case {
  std::string preset;
  std::string prompt;
  int n_predict;
};

void ExpectSameAsLlamaCompletion(const std::string& model_path, const std::string& prompt,
                                 int n_predict) {
  const std::string completion = LlamaToolsDir() + "/llama-completion";
  if (!std::filesystem::exists(completion)) GTEST_SKIP() << "no " << completion;
  const std::string n = std::to_string(n_predict);

  ProcessResult ref =
      RunProcess({completion, "-m", model_path, "-p", prompt, "-n", n, "--temp", "0", "-no-cnv",
                  "-c", "512", "-t", "2", "--no-display-prompt", "--ignore-eos", "--no-warmup"});
  ASSERT_EQ(ref.exit_code, 0) << ref.err;

  ProcessResult json =
      RunProcess({SNUG_BINARY, "run", model_path, prompt, "--raw", "--temp", "0", "-n", n, "--ctx",
                  "512", "--threads", "2", "--ignore-eos", "--json", "--token-ids"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  auto j = nlohmann::json::parse(json.out);
  std::vector<engine::Token> ids = j["token_ids"];
  ASSERT_EQ(ids.size(), static_cast<size_t>(n_predict));
  EXPECT_EQ(j["tokens"], n_predict);
  EXPECT_EQ(j["finish_reason"], "length");
  EXPECT_EQ(j["n_ctx"], 512);

  // The ids, rendered by the model's own vocabulary, are byte for byte llama-completion's output.
  auto model = engine::Model::Load({model_path});
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  EXPECT_EQ((*model)->Detokenize(ids), RStrip(ref.out));

  // And the streamed (non-JSON) output is the same text.
  ProcessResult text = RunProcess({SNUG_BINARY, "run", model_path, prompt, "--raw", "--temp", "0",
                                   "-n", n, "--ctx", "512", "--threads", "2", "--ignore-eos"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_EQ(RStrip(text.out), RStrip(ref.out));
}

TEST(RunCorrectnessTest, TinyGreedyMatchesLlamaCompletion) {
  std::string error;
  const std::string& model = SharedTinyModel(&error);
  ASSERT_FALSE(model.empty()) << error;
  ExpectSameAsLlamaCompletion(model, "The history of the city begins", 32);
}

TEST(RunCorrectnessTest, TinyGreedyMatchesLlamaCompletionOnALongerPrompt) {
  std::string error;
  const std::string& model = SharedTinyModel(&error);
  ASSERT_FALSE(model.empty()) << error;
  std::string prompt;
  for (int i = 0; i < 40; ++i)
    prompt += "step " + std::to_string(i) + ", ";
  ExpectSameAsLlamaCompletion(model, prompt, 16);
}

TEST(RunCorrectnessTest, Qwen25HalfBGreedyMatchesLlamaCompletion) {
  TempDir dir;
  const std::string model = dir.path() + "/qwen.gguf";
  const std::string error = MakeModel("qwen2.5-0.5b", model, "random");
  ASSERT_TRUE(error.empty()) << error;
  ExpectSameAsLlamaCompletion(model, "Write a haiku about memory", 16);
}

}  // namespace
}  // namespace snug::testing
