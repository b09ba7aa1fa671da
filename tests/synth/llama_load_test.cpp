// Synthetic files loaded by llama.cpp itself: every preset passes its loader (metadata, tokenizer,
// every required tensor with the right shape) in a no-alloc dry run, as common/fit.cpp does, and
// `tiny` with random weights generates text from finite, varied logits.
#include <gtest/gtest.h>
#include <llama.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "synth/presets.h"
#include "synth/writer.h"
#include "test_util.h"

namespace snug::synth {
namespace {

using testing::ScratchDir;
using testing::VocabDir;

class LlamaLoadTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    llama_backend_init();
    // Only errors: llama.cpp is verbose at info level.
    llama_log_set(
        [](ggml_log_level level, const char* text, void*) {
          if (level == GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
        },
        nullptr);
  }
  ScratchDir dir_;
};

TEST_F(LlamaLoadTest, EveryPresetLoadsInADryRun) {
  for (const Preset& preset : AllPresets()) {
    SCOPED_TRACE(preset.name);
    const std::string path = dir_.File(preset.name + ".gguf");
    WriteOptions options;
    options.vocab_dir = VocabDir();
    ASSERT_TRUE(WriteModel(preset, path, options).ok());

    llama_model_params mparams = llama_model_default_params();
    mparams.no_alloc = true;
    mparams.load_mode = LLAMA_LOAD_MODE_NONE;
    llama_model* model = llama_model_load_from_file(path.c_str(), mparams);
    ASSERT_NE(model, nullptr) << "llama.cpp rejected " << path;
    EXPECT_EQ(llama_model_n_ctx_train(model), static_cast<int32_t>(preset.n_ctx_train));
    EXPECT_EQ(llama_model_n_layer(model), static_cast<int32_t>(preset.n_layer));
    EXPECT_EQ(llama_vocab_n_tokens(llama_model_get_vocab(model)),
              static_cast<int32_t>(preset.n_vocab));

    // The chat template is one llama.cpp recognises.
    const char* tmpl = llama_model_chat_template(model, nullptr);
    ASSERT_NE(tmpl, nullptr);
    llama_chat_message msg{"user", "hi"};
    std::vector<char> buf(4096);
    EXPECT_GT(llama_chat_apply_template(tmpl, &msg, 1, true, buf.data(), buf.size()), 0)
        << "unrecognised template: " << tmpl;

    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = 4096;
    cparams.n_batch = 512;
    cparams.n_ubatch = 512;
    llama_context* ctx = llama_init_from_model(model, cparams);
    EXPECT_NE(ctx, nullptr) << "context (no-alloc) failed";
    if (ctx != nullptr) llama_free(ctx);
    llama_model_free(model);
    std::filesystem::remove(path);
  }
}

TEST_F(LlamaLoadTest, TinyRandomDecodesFiniteVariedLogits) {
  const std::string path = dir_.File("tiny.gguf");
  WriteOptions options;
  options.weights = WriteOptions::Weights::kRandom;
  options.vocab_dir = VocabDir();
  ASSERT_TRUE(WriteModel(*FindPreset("tiny"), path, options).ok());

  llama_model* model = llama_model_load_from_file(path.c_str(), llama_model_default_params());
  ASSERT_NE(model, nullptr);
  llama_context_params cparams = llama_context_default_params();
  cparams.n_ctx = 256;
  cparams.n_threads = 2;
  cparams.n_threads_batch = 2;
  llama_context* ctx = llama_init_from_model(model, cparams);
  ASSERT_NE(ctx, nullptr);
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const int n_vocab = llama_vocab_n_tokens(vocab);

  const std::string prompt = "The quick brown fox";
  std::vector<llama_token> tokens(64);
  const int n = llama_tokenize(vocab, prompt.c_str(), prompt.size(), tokens.data(), tokens.size(),
                               true, false);
  ASSERT_GT(n, 1);
  tokens.resize(n);

  std::vector<llama_token> generated;
  llama_batch batch = llama_batch_get_one(tokens.data(), tokens.size());
  llama_token next = 0;
  for (int step = 0; step < 32; ++step) {
    ASSERT_EQ(llama_decode(ctx, batch), 0) << "decode failed at step " << step;
    const float* logits = llama_get_logits_ith(ctx, -1);
    ASSERT_NE(logits, nullptr);
    float lo = logits[0], hi = logits[0];
    int best = 0;
    for (int i = 0; i < n_vocab; ++i) {
      ASSERT_TRUE(std::isfinite(logits[i])) << "step " << step << " token " << i;
      lo = std::min(lo, logits[i]);
      if (logits[i] > hi) hi = logits[i], best = i;
    }
    EXPECT_GT(hi - lo, 1e-3f) << "all logits equal at step " << step;
    next = best;
    generated.push_back(next);
    batch = llama_batch_get_one(&next, 1);
  }
  const std::set<llama_token> distinct(generated.begin(), generated.end());
  std::printf("tiny: %zu distinct tokens in 32 greedy steps\n", distinct.size());
  EXPECT_GT(distinct.size(), 1u) << "greedy decoding produced one token 32 times";

  llama_free(ctx);
  llama_model_free(model);
}

}  // namespace
}  // namespace snug::synth
