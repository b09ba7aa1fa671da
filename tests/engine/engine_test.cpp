// The engine on a real (tiny, random-weight) model written by the synth module: loading, the dry
// run, tokenizing, chat templates, generation limits, batching determinism and the runtime guard.
#include "engine/engine.h"

#include "engine/chat.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>

#include "synth/presets.h"
#include "synth/writer.h"

namespace snug::engine {
namespace {

class EngineTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           ("snug-engine-test-" + std::to_string(getpid())));
    std::filesystem::create_directories(*dir_);
    path_ = new std::string(*dir_ + "/tiny.gguf");
    auto preset = synth::FindPreset("tiny");
    ASSERT_TRUE(preset.ok()) << preset.status().ToString();
    synth::WriteOptions options;
    options.weights = synth::WriteOptions::Weights::kRandom;
    Status written = synth::WriteModel(*preset, *path_, options);
    ASSERT_TRUE(written.ok()) << written.ToString();
    auto model = Model::Load({*path_});
    ASSERT_TRUE(model.ok()) << model.status().ToString();
    model_ = model->release();
  }
  static void TearDownTestSuite() {
    delete model_;
    std::filesystem::remove_all(*dir_);
    delete path_;
    delete dir_;
  }

  static std::unique_ptr<Context> NewContext(uint32_t n_ctx = 512, uint32_t n_seq = 1) {
    ContextOptions options;
    options.n_ctx = n_ctx;
    options.n_seq_max = n_seq;
    options.n_threads = 2;
    auto context = Context::Create(model_, options);
    EXPECT_TRUE(context.ok()) << context.status().ToString();
    return context.ok() ? std::move(context).value() : nullptr;
  }

  static std::vector<Token> Prompt(const std::string& text) {
    auto tokens = model_->Tokenize(text, true, true);
    EXPECT_TRUE(tokens.ok());
    return tokens.ok() ? *tokens : std::vector<Token>{};
  }

  static SamplingParams Greedy(int max_tokens) {
    SamplingParams p;
    p.temperature = 0;
    p.max_tokens = max_tokens;
    p.ignore_eos = true;
    return p;
  }

  static std::string* dir_;
  static std::string* path_;
  static Model* model_;
};
std::string* EngineTest::dir_ = nullptr;
std::string* EngineTest::path_ = nullptr;
Model* EngineTest::model_ = nullptr;

TEST_F(EngineTest, MissingFileIsNotFound) {
  auto model = Model::Load({*dir_ + "/nope.gguf"});
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), Code::kNotFound);
}

TEST_F(EngineTest, GarbageFileIsCorrupt) {
  const std::string bad = *dir_ + "/bad.gguf";
  FILE* f = fopen(bad.c_str(), "w");
  fputs("not a gguf file at all", f);
  fclose(f);
  auto model = Model::Load({bad});
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), Code::kCorrupt);
}

TEST_F(EngineTest, TokenizeRoundTrips) {
  auto tokens = model_->Tokenize("The quick brown fox", false, false);
  ASSERT_TRUE(tokens.ok());
  EXPECT_GT(tokens->size(), 2u);
  EXPECT_EQ(model_->Detokenize(*tokens), "The quick brown fox");
  auto with_bos = model_->Tokenize("The quick brown fox", true, false);
  ASSERT_TRUE(with_bos.ok());
  EXPECT_EQ(with_bos->size(), tokens->size() + 1);  // llama-bpe vocab adds BOS
}

TEST_F(EngineTest, ChatTemplateWrapsMessages) {
  ChatInput input;
  input.messages = {{"system", "be brief"}, {"user", "hello there"}};
  auto chat = model_->chat().Render(input);
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  EXPECT_NE(chat->prompt.find("hello there"), std::string::npos);
  EXPECT_NE(chat->prompt.find("be brief"), std::string::npos);
  EXPECT_GT(chat->prompt.size(), std::string("be briefhello there").size());
}

TEST_F(EngineTest, DryRunReportsHostMemoryWithoutAllocating) {
  ContextOptions options;
  options.n_ctx = 4096;
  auto small = DryRun({*path_}, options);
  ASSERT_TRUE(small.ok()) << small.status().ToString();
  EXPECT_GT(small->HostBytes(), 0u);
  options.n_ctx = 8192;
  auto large = DryRun({*path_}, options);
  ASSERT_TRUE(large.ok());
  EXPECT_GT(large->HostBytes(), small->HostBytes());  // the KV cache doubles
}

TEST_F(EngineTest, LoadFittedRefusesWhenLlamaCppsOwnFigureExceedsTheBudget) {
  ContextOptions options;
  options.n_ctx = 512;
  auto loaded = LoadFitted({*path_}, options, {.host_bytes = 1 << 20, .source = "test budget"});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), Code::kDoesNotFit);
  EXPECT_NE(loaded.status().message().find("test budget"), std::string::npos);
  auto fits = LoadFitted({*path_}, options, {.host_bytes = 8ull << 30, .source = "test"});
  ASSERT_TRUE(fits.ok()) << fits.status().ToString();
  ASSERT_TRUE(fits->dry_run.has_value());
  // llama.cpp's dry-run figure and what it then allocates agree on the KV cache.
  uint64_t dry_kv = 0, real_kv = 0;
  for (const auto& p : fits->dry_run->parts)
    dry_kv += p.context_bytes;
  for (const auto& p : fits->context->Memory().parts)
    real_kv += p.context_bytes;
  EXPECT_EQ(dry_kv, real_kv);
  EXPECT_GT(real_kv, 0u);

  // Compute-buffer pages generation never writes (the plan's figure) are not held against the
  // budget: a budget 1 MiB under llama.cpp's total fits once 2 MiB of them are declared.
  const uint64_t total = fits->dry_run->HostBytes();
  fits = Status::Internal("released");
  LoadBudget tight{.host_bytes = total - (1 << 20), .source = "tight"};
  EXPECT_EQ(LoadFitted({*path_}, options, tight).status().code(), Code::kDoesNotFit);
  tight.host_compute_untouched_bytes = 2 << 20;
  auto relieved = LoadFitted({*path_}, options, tight);
  EXPECT_TRUE(relieved.ok()) << relieved.status().ToString();
}

TEST_F(EngineTest, MaxTokensEndsWithLength) {
  auto context = NewContext();
  auto gen = Generate(context.get(), Prompt("Once upon a time"), Greedy(7));
  ASSERT_TRUE(gen.ok()) << gen.status().ToString();
  EXPECT_EQ(gen->tokens.size(), 7u);
  EXPECT_EQ(gen->finish, FinishReason::kLength);
  EXPECT_EQ(model_->Detokenize(gen->tokens), gen->text);
}

TEST_F(EngineTest, GreedyIsReproducible) {
  auto context = NewContext();
  auto a = Generate(context.get(), Prompt("Once upon a time"), Greedy(12));
  auto b = Generate(context.get(), Prompt("Once upon a time"), Greedy(12));
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(a->tokens, b->tokens);
}

TEST_F(EngineTest, SeededSamplingIsReproducibleAndSeedMatters) {
  auto context = NewContext();
  SamplingParams p;
  p.temperature = 1.5f;
  p.top_k = 50;
  p.max_tokens = 16;
  p.ignore_eos = true;
  p.seed = 7;
  auto a = Generate(context.get(), Prompt("Hello"), p);
  auto b = Generate(context.get(), Prompt("Hello"), p);
  p.seed = 8;
  auto c = Generate(context.get(), Prompt("Hello"), p);
  ASSERT_TRUE(a.ok() && b.ok() && c.ok());
  EXPECT_EQ(a->tokens, b->tokens);
  EXPECT_NE(a->tokens, c->tokens);
}

TEST_F(EngineTest, PromptLongerThanContextIsRejectedBeforeDecoding) {
  auto context = NewContext(256);
  const int decoded_before = context->Perf().prompt_tokens + context->Perf().decode_tokens;
  std::string text;
  for (int i = 0; i < 300; ++i)
    text += " word";
  auto prompt = Prompt(text);
  ASSERT_GT(prompt.size(), 256u);
  auto gen = Generate(context.get(), prompt, Greedy(4));
  ASSERT_FALSE(gen.ok());
  EXPECT_EQ(gen.status().code(), Code::kContextExceeded);
  EXPECT_NE(gen.status().message().find(
                fmt::format("prompt is {} tokens but the context holds 256", prompt.size())),
            std::string::npos)
      << gen.status().message();
  // Nothing was decoded.
  EXPECT_EQ(context->Perf().prompt_tokens + context->Perf().decode_tokens, decoded_before);
}

TEST_F(EngineTest, FullContextEndsWithLength) {
  auto context = NewContext(256);
  auto prompt = Prompt("Count:");
  auto gen = Generate(context.get(), prompt, Greedy(-1));
  ASSERT_TRUE(gen.ok()) << gen.status().ToString();
  EXPECT_EQ(gen->finish, FinishReason::kLength);
  // Every cell is used; the last sampled token needs no cell of its own.
  EXPECT_EQ(prompt.size() + gen->tokens.size(), 256u + 1);
}

TEST_F(EngineTest, StopStringEndsTheAnswerWithoutEmittingIt) {
  auto context = NewContext();
  auto full = Generate(context.get(), Prompt("Once upon a time"), Greedy(12));
  ASSERT_TRUE(full.ok());
  // Stop at the text of tokens 5..6, wherever it first appears.
  const std::string stop = model_->Detokenize({full->tokens[5], full->tokens[6]});
  ASSERT_FALSE(stop.empty());
  SamplingParams p = Greedy(12);
  p.stop = {stop};
  auto stopped = Generate(context.get(), Prompt("Once upon a time"), p);
  ASSERT_TRUE(stopped.ok());
  EXPECT_EQ(stopped->finish, FinishReason::kStop);
  EXPECT_EQ(stopped->text, full->text.substr(0, full->text.find(stop)));
  EXPECT_LE(stopped->tokens.size(), 7u);
}

TEST_F(EngineTest, CallbackCancels) {
  auto context = NewContext();
  int calls = 0;
  auto gen = Generate(context.get(), Prompt("Once upon a time"), Greedy(50),
                      [&](std::string_view) { return ++calls < 3; });
  ASSERT_TRUE(gen.ok());
  EXPECT_EQ(gen->finish, FinishReason::kCancelled);
  EXPECT_EQ(calls, 3);
  EXPECT_LT(gen->tokens.size(), 50u);
}

TEST_F(EngineTest, BatchedSequencesMatchSoloRuns) {
  const auto prompt_a = Prompt("Once upon a time there was");
  const auto prompt_b = Prompt("The capital of France is a city called");
  auto solo_context = NewContext(1024, 1);
  auto solo_a = Generate(solo_context.get(), prompt_a, Greedy(10));
  auto solo_b = Generate(solo_context.get(), prompt_b, Greedy(10));
  ASSERT_TRUE(solo_a.ok() && solo_b.ok());

  auto context = NewContext(1024, 2);
  Runner runner(context.get());
  ASSERT_TRUE(runner.AddSequence(0, prompt_a, Greedy(10)).ok());
  std::vector<StepEvent> events;
  std::map<SeqId, std::vector<Token>> got;
  // Sequence 1 joins while sequence 0 is already generating (continuous batching).
  for (int step = 0; runner.HasWork(); ++step) {
    if (step == 3) {
      ASSERT_TRUE(runner.AddSequence(1, prompt_b, Greedy(10)).ok());
    }
    events.clear();
    ASSERT_TRUE(runner.Step(&events).ok());
    for (const auto& ev : events) {
      if (ev.token >= 0) got[ev.seq_id].push_back(ev.token);
    }
  }
  EXPECT_EQ(got[0], solo_a->tokens);
  EXPECT_EQ(got[1], solo_b->tokens);
  // Each slot keeps its prompt and the 9 generated tokens that were decoded (not the last).
  EXPECT_EQ(runner.UsedCells(), prompt_a.size() + 9 + prompt_b.size() + 9);
}

std::vector<Token> RunToEnd(Runner* runner) {
  std::vector<Token> tokens;
  std::vector<StepEvent> events;
  while (runner->HasWork()) {
    events.clear();
    EXPECT_TRUE(runner->Step(&events).ok());
    for (const auto& ev : events)
      if (ev.token >= 0) tokens.push_back(ev.token);
  }
  return tokens;
}

TEST_F(EngineTest, NextChatTurnReusesTheSlotsCellsAndAnswersAsAFreshRun) {
  auto context = NewContext(1024, 1);
  Runner runner(context.get());
  const auto first = Prompt("User: tell me about the sea\nAssistant:");
  ASSERT_TRUE(runner.AddSequence(0, first, Greedy(8)).ok());
  const auto answer = RunToEnd(&runner);
  ASSERT_EQ(answer.size(), 8u);
  // The next turn repeats the history: prompt, the answer, then new text.
  std::vector<Token> next = first;
  next.insert(next.end(), answer.begin(), answer.end());
  auto more = model_->Tokenize("\nUser: and the sky?\nAssistant:", false, true);
  ASSERT_TRUE(more.ok());
  next.insert(next.end(), more->begin(), more->end());
  EXPECT_EQ(runner.CachedPrefixLength(0, next), first.size() + 7);
  size_t reused = 0;
  ASSERT_TRUE(runner.AddSequence(0, next, Greedy(8), &reused).ok());
  EXPECT_EQ(reused, first.size() + 7);  // the 8th answer token was sampled, never decoded
  const auto continued = RunToEnd(&runner);
  auto fresh_context = NewContext(1024, 1);
  auto fresh = Generate(fresh_context.get(), next, Greedy(8));
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(continued, fresh->tokens);
  // A prompt that differs from the start reuses nothing.
  EXPECT_EQ(runner.CachedPrefixLength(0, Prompt("Something else entirely")), 1u);  // BOS only
}

// A sliding-window model forgets all but the last window of a long request: a next prompt that
// shares only an early part of it must be decoded afresh, not continued from cells that are gone.
TEST_F(EngineTest, SlidingWindowCellsAreReusedOnlyWhenTheWindowIsStillThere) {
  auto gemma = synth::FindPreset("gemma-3-1b-q8_0");
  ASSERT_TRUE(gemma.ok()) << gemma.status().ToString();
  synth::Preset shape = *gemma;  // Gemma 3's layout (window 32, 1 global : 1 local), small
  shape.n_layer = 2, shape.n_embd = 128, shape.n_head = 2, shape.n_head_kv = 1;
  shape.head_dim = 64, shape.n_ff = 256, shape.n_swa = 32, shape.swa_pattern = 2;
  synth::WriteOptions options;
  options.weights = synth::WriteOptions::Weights::kRandom;
  const std::string path = *dir_ + "/swa.gguf";
  ASSERT_TRUE(synth::WriteModel(shape, path, options).ok());
  auto model = Model::Load({path});
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  ContextOptions context_options;
  context_options.n_ctx = 1024;
  context_options.n_batch = context_options.n_ubatch = 64;
  context_options.n_threads = 2;
  auto context = Context::Create(model->get(), context_options);
  ASSERT_TRUE(context.ok()) << context.status().ToString();

  std::string text;
  for (int i = 0; i < 300; ++i)
    text += " w" + std::to_string(i % 53);
  auto long_prompt = (*model)->Tokenize(text, true, false);
  ASSERT_TRUE(long_prompt.ok());
  ASSERT_GT(long_prompt->size(), 200u);  // far beyond the window plus a batch
  Runner runner(context->get());
  ASSERT_TRUE(runner.AddSequence(0, *long_prompt, Greedy(4)).ok());
  RunToEnd(&runner);
  // Shares the first 50 tokens, whose window cells are long gone.
  std::vector<Token> next(long_prompt->begin(), long_prompt->begin() + 50);
  auto tail = (*model)->Tokenize(" and now something else", false, false);
  next.insert(next.end(), tail->begin(), tail->end());
  EXPECT_EQ(runner.CachedPrefixLength(0, next), 50u);
  size_t reused = 1;
  ASSERT_TRUE(runner.AddSequence(0, next, Greedy(6), &reused).ok());
  EXPECT_EQ(reused, 0u);
  const auto answer = RunToEnd(&runner);
  auto fresh_context = Context::Create(model->get(), context_options);
  ASSERT_TRUE(fresh_context.ok());
  auto fresh = Generate(fresh_context->get(), next, Greedy(6));
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ(answer, fresh->tokens);

  // Continuing right where it ended (the window is all there) reuses everything.
  std::vector<Token> again = next;
  again.insert(again.end(), answer.begin(), answer.end() - 1);
  again.push_back(answer.back());
  ASSERT_TRUE(runner.AddSequence(0, again, Greedy(2), &reused).ok());
  EXPECT_EQ(reused, next.size() + answer.size() - 1);
  RunToEnd(&runner);
}

TEST_F(EngineTest, KeptCellsGiveWayWhenAnotherSequenceNeedsThem) {
  auto context = NewContext(512, 2);
  Runner runner(context.get());
  std::string text;
  for (int i = 0; i < 150; ++i)
    text += " a";
  const auto big = Prompt(text);
  ASSERT_TRUE(runner.AddSequence(0, big, Greedy(4)).ok());
  RunToEnd(&runner);
  EXPECT_GT(runner.CachedPrefixLength(0, big), 100u);
  // Slot 1 needs more than the cells slot 0 left free: slot 0's kept cells go.
  std::string longer;
  for (int i = 0; i < 380; ++i)  // 381 cells: more than the 512 - 154 left
    longer += " b";
  ASSERT_TRUE(runner.AddSequence(1, Prompt(longer), Greedy(4)).ok());
  EXPECT_EQ(runner.CachedPrefixLength(0, big), 0u);
  EXPECT_EQ(RunToEnd(&runner).size(), 4u);
}

TEST_F(EngineTest, RunnerValidatesSequences) {
  auto context = NewContext(512, 2);
  Runner runner(context.get());
  EXPECT_EQ(runner.AddSequence(2, Prompt("x"), Greedy(1)).code(), Code::kInvalidArgument);
  EXPECT_EQ(runner.AddSequence(0, {}, Greedy(1)).code(), Code::kInvalidArgument);
  ASSERT_TRUE(runner.AddSequence(0, Prompt("hello"), Greedy(5)).ok());
  EXPECT_EQ(runner.AddSequence(0, Prompt("again"), Greedy(5)).code(), Code::kInvalidArgument);
  EXPECT_GT(runner.UsedCells(), 0u);
  runner.RemoveSequence(0);
  EXPECT_EQ(runner.UsedCells(), 0u);
  EXPECT_FALSE(runner.HasWork());
}

TEST_F(EngineTest, RunnerReportsUnavailableWhenTheCacheIsTaken) {
  auto context = NewContext(256, 2);
  Runner runner(context.get());
  std::string text;
  for (int i = 0; i < 150; ++i)
    text += " a";
  auto big = Prompt(text);
  ASSERT_LT(big.size(), 256u);
  ASSERT_TRUE(runner.AddSequence(0, big, Greedy(5)).ok());
  EXPECT_EQ(runner.AddSequence(1, big, Greedy(5)).code(), Code::kUnavailable);
}

double Norm(const std::vector<float>& v) {
  double sum = 0;
  for (float x : v)
    sum += static_cast<double>(x) * x;
  return std::sqrt(sum);
}

TEST_F(EngineTest, EmbedGivesDeterministicUnitVectorsPerInput) {
  const std::vector<std::vector<Token>> inputs = {Prompt("the cat sat on the mat"),
                                                  Prompt("quantum chromodynamics"),
                                                  Prompt("the cat sat on the mat")};
  EmbedOptions options;
  options.n_threads = 2;
  auto first = Embed(*model_, inputs, options);
  ASSERT_TRUE(first.ok()) << first.status().ToString();
  ASSERT_EQ(first->size(), 3u);
  for (const auto& v : *first) {
    ASSERT_EQ(v.size(), static_cast<size_t>(model_->n_embd()));
    EXPECT_NEAR(Norm(v), 1.0, 1e-4);
  }
  // The same text gives the same vector whether it is embedded first or last, and again later.
  for (int j = 0; j < model_->n_embd(); ++j)
    ASSERT_NEAR((*first)[0][j], (*first)[2][j], 1e-5) << j;
  auto again = Embed(*model_, {inputs[0]}, options);
  ASSERT_TRUE(again.ok()) << again.status().ToString();
  for (int j = 0; j < model_->n_embd(); ++j)
    ASSERT_NEAR((*first)[0][j], (*again)[0][j], 1e-5) << j;
  // Different text gives a different direction.
  double dot = 0;
  for (int j = 0; j < model_->n_embd(); ++j)
    dot += static_cast<double>((*first)[0][j]) * (*first)[1][j];
  EXPECT_LT(dot, 0.9999);
}

TEST_F(EngineTest, EmbedContextMemoryIsMeasuredPerSizeBucket) {
  auto small = EmbedContextBytes(*model_, 10);
  auto bucket = EmbedContextBytes(*model_, 256);
  auto large = EmbedContextBytes(*model_, 2000);
  ASSERT_TRUE(small.ok() && bucket.ok() && large.ok()) << small.status().ToString();
  EXPECT_GT(*small, 0u);
  EXPECT_EQ(*small, *bucket);  // both round up to 256 tokens
  // Token states are averaged 128 tokens at a time, so only the KV cache grows with the input:
  // not llama.cpp's logits for every token (which took 2 GiB for 4k tokens of this model).
  EXPECT_GT(*large, *small);
  EXPECT_LT(*large, 2 * *small);
  std::cout << "embedding context: " << *small << " bytes for 256 tokens, " << *large
            << " for 2048\n";
}

TEST_F(EngineTest, EmbedRejectsEmptyAndOverlongInputs) {
  auto none = Embed(*model_, {});
  EXPECT_EQ(none.status().code(), Code::kInvalidArgument);
  auto empty = Embed(*model_, {Prompt("hello"), {}});
  ASSERT_FALSE(empty.ok());
  EXPECT_EQ(empty.status().code(), Code::kInvalidArgument);
  EXPECT_NE(empty.status().message().find("input 1 is empty"), std::string::npos)
      << empty.status().ToString();
  std::vector<Token> overlong(static_cast<size_t>(model_->n_ctx_train()) + 1, Prompt("a").back());
  auto too_long = Embed(*model_, {overlong});
  ASSERT_FALSE(too_long.ok());
  EXPECT_EQ(too_long.status().code(), Code::kInvalidArgument);
}

class FaultTest : public EngineTest {
 protected:
  void TearDown() override { unsetenv("SNUG_FAULT"); }
};

TEST_F(FaultTest, DecodeFailureStopsWithRuntimeErrorAndNoFurtherTokens) {
  auto clean_context = NewContext();
  auto clean = Generate(clean_context.get(), Prompt("Once upon a time"), Greedy(10));
  ASSERT_TRUE(clean.ok());

  setenv("SNUG_FAULT", "decode_fail@4", 1);
  auto context = NewContext();
  std::string streamed;
  auto gen =
      Generate(context.get(), Prompt("Once upon a time"), Greedy(10), [&](std::string_view t) {
        streamed += t;
        return true;
      });
  ASSERT_FALSE(gen.ok());
  EXPECT_EQ(gen.status().code(), Code::kRuntime);
  EXPECT_NE(gen.status().message().find("out of memory"), std::string::npos);
  // Decodes 1..3 gave tokens 1..3; nothing after the fault.
  EXPECT_EQ(streamed, model_->Detokenize({clean->tokens.begin(), clean->tokens.begin() + 3}));
}

TEST_F(FaultTest, NanLogitsAreNeverSampled) {
  auto clean_context = NewContext();
  auto clean = Generate(clean_context.get(), Prompt("Once upon a time"), Greedy(10));
  ASSERT_TRUE(clean.ok());

  setenv("SNUG_FAULT", "nan_logits@3", 1);
  auto context = NewContext();
  std::string streamed;
  auto gen =
      Generate(context.get(), Prompt("Once upon a time"), Greedy(10), [&](std::string_view t) {
        streamed += t;
        return true;
      });
  ASSERT_FALSE(gen.ok());
  EXPECT_EQ(gen.status().code(), Code::kRuntime);
  EXPECT_NE(gen.status().message().find("non-finite logits"), std::string::npos);
  EXPECT_EQ(streamed, model_->Detokenize({clean->tokens.begin(), clean->tokens.begin() + 2}));
}

TEST_F(FaultTest, FailureInABatchEndsEverySequenceInIt) {
  setenv("SNUG_FAULT", "decode_fail@3", 1);
  auto context = NewContext(512, 2);
  Runner runner(context.get());
  ASSERT_TRUE(runner.AddSequence(0, Prompt("one"), Greedy(10)).ok());
  ASSERT_TRUE(runner.AddSequence(1, Prompt("two"), Greedy(10)).ok());
  std::vector<StepEvent> events;
  ASSERT_TRUE(runner.Step(&events).ok());
  ASSERT_TRUE(runner.Step(&events).ok());
  events.clear();
  Status status = runner.Step(&events);
  EXPECT_EQ(status.code(), Code::kRuntime);
  ASSERT_EQ(events.size(), 2u);
  for (const auto& ev : events) {
    EXPECT_EQ(ev.finish, FinishReason::kError);
    EXPECT_EQ(ev.token, -1);
    EXPECT_EQ(ev.error.code(), Code::kRuntime);
  }
  EXPECT_FALSE(runner.HasWork());
}

}  // namespace
}  // namespace snug::engine
