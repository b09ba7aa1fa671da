// `snug serve` end to end: real server processes on 127.0.0.1 (ephemeral ports) serving a
// synthetic tiny model, driven over raw HTTP.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <nlohmann/json.hpp>

#include <cctype>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <memory>
#include <regex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "../support/memory_cgroup.h"
#include "engine/engine.h"
#include "http_client.h"
#include "serve_process.h"
#include "synth/presets.h"

namespace snug::testing {
namespace {

using nlohmann::json;

std::string Chat(const std::string& content, int max_tokens, bool stream,
                 const std::string& model = "tiny") {
  json body = {{"model", model},
               {"messages", {{{"role", "user"}, {"content", content}}}},
               {"max_tokens", max_tokens},
               {"temperature", 0},
               {"stream", stream}};
  return body.dump();
}

// Concatenated content of an SSE chat stream; fails the test on a malformed stream.
std::string StreamText(const HttpResponse& res, std::string* finish = nullptr) {
  auto events = SseData(res.body);
  EXPECT_FALSE(events.empty());
  if (events.empty()) return "";
  EXPECT_EQ(events.back(), "[DONE]") << res.body;
  std::string text;
  for (const auto& e : events) {
    if (e == "[DONE]") break;
    json chunk = json::parse(e, nullptr, false);
    EXPECT_FALSE(chunk.is_discarded()) << e;
    if (chunk.contains("error")) {
      ADD_FAILURE() << "stream ended with an error: " << e;
      break;
    }
    for (const auto& c : chunk["choices"]) {
      if (c.contains("delta") && c["delta"].contains("content")) {
        text += c["delta"]["content"].get<std::string>();
      }
      if (c.contains("text")) text += c["text"].get<std::string>();
      if (finish && !c["finish_reason"].is_null()) *finish = c["finish_reason"];
    }
  }
  return text;
}

json ParseBody(const HttpResponse& res) {
  return json::parse(res.body, nullptr, false);
}

// Asserts an OpenAI-style error object with the given HTTP status.
void ExpectError(const HttpResponse& res, int status, const std::string& what) {
  EXPECT_EQ(res.status, status) << what << ": " << res.body;
  json body = ParseBody(res);
  ASSERT_TRUE(body.is_object()) << what << ": " << res.body;
  ASSERT_TRUE(body.contains("error")) << what << ": " << res.body;
  EXPECT_TRUE(body["error"]["message"].is_string()) << what;
  EXPECT_FALSE(body["error"]["message"].get<std::string>().empty()) << what;
  EXPECT_TRUE(body["error"]["type"].is_string()) << what;
}

double Metric(int port, const std::string& line_prefix) {
  auto res = Get(port, "/metrics");
  std::istringstream in(res.body);
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(line_prefix + " ", 0) == 0) return std::stod(line.substr(line_prefix.size()));
  }
  return -1;
}

// Polls /metrics until the series has `value` or `timeout` passes; true when it got there.
bool WaitForMetric(int port, const std::string& series, double value,
                   std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (Metric(port, series) != value) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::string TinyModel() {
  return TestModel("tiny", "tiny.gguf");
}

// One server shared by the tests that do not change its configuration.
class ServeTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string model = TinyModel();
    ASSERT_FALSE(model.empty()) << "snug mkmodel tiny failed";
    server_ = new ServeProcess();
    ASSERT_TRUE(server_->Start({model, "--ctx", "512", "--parallel", "4", "--threads", "2",
                                "--queue", "64", "--batch-invariant"}))
        << server_->Stderr();
    port_ = server_->port();
  }
  static void TearDownTestSuite() {
    if (server_) {
      EXPECT_EQ(server_->Stop(SIGTERM), 0) << server_->Stderr();
    }
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override {
    // Whatever a test did, the server must still answer.
    EXPECT_EQ(Get(port_, "/health").status, 200);
  }
  static ServeProcess* server_;
  static int port_;
};
ServeProcess* ServeTest::server_ = nullptr;
int ServeTest::port_ = 0;

TEST_F(ServeTest, HealthAndModels) {
  auto health = Get(port_, "/health");
  EXPECT_EQ(health.status, 200);
  auto models = ParseBody(Get(port_, "/v1/models"));
  ASSERT_TRUE(models.is_object());
  EXPECT_EQ(models["object"], "list");
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["data"][0]["id"], "tiny");
  EXPECT_EQ(models["data"][0]["object"], "model");
  EXPECT_EQ(Get(port_, "/v1/models/tiny").status, 200);
  ExpectError(Get(port_, "/v1/models/other"), 404, "unknown model");
}

// What llama-server's clients (and its own test suite) expect beside OpenAI's fields: routes
// without /v1, 'model' optional when the server has one, system_fingerprint, the first chunk's
// role, and context_length_exceeded with the numbers.
TEST_F(ServeTest, OpenAiDetailsLlamaServerClientsExpect) {
  const json chat = {{"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 3}};
  auto plain = Post(port_, "/chat/completions", chat.dump());
  ASSERT_EQ(plain.status, 200) << plain.body;
  const json body = ParseBody(plain);
  EXPECT_EQ(body["model"], "tiny");
  ASSERT_TRUE(body["system_fingerprint"].is_string()) << plain.body;
  const std::string fingerprint = body["system_fingerprint"];
  EXPECT_EQ(fingerprint.rfind("snug-", 0), 0u) << fingerprint;
  EXPECT_TRUE(body["usage"]["prompt_tokens_details"]["cached_tokens"].is_number());

  json streamed = chat;
  streamed["stream"] = true;
  auto stream = Post(port_, "/v1/chat/completions", streamed.dump());
  ASSERT_EQ(stream.status, 200);
  const auto events = SseData(stream.body);
  ASSERT_GE(events.size(), 2u);
  const json first = json::parse(events.front());
  EXPECT_EQ(first["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(first["choices"][0]["delta"]["content"], "");
  for (const auto& e : events) {
    if (e == "[DONE]") continue;
    EXPECT_EQ(json::parse(e)["system_fingerprint"], fingerprint) << e;
  }

  auto completion = Post(port_, "/completions", R"({"prompt":"Once","max_tokens":2})");
  ASSERT_EQ(completion.status, 200) << completion.body;
  EXPECT_EQ(ParseBody(completion)["model"], "tiny");
  EXPECT_EQ(Get(port_, "/models").status, 200);
  EXPECT_EQ(Post(port_, "/embeddings", R"({"input":"hello"})").status, 200);

  std::string longer;
  for (int i = 0; i < 800; ++i)
    longer += "sea sky ";
  auto too_long = Post(port_, "/v1/chat/completions",
                       json{{"messages", {{{"role", "user"}, {"content", longer}}}}}.dump());
  EXPECT_EQ(too_long.status, 400) << too_long.body;
  EXPECT_EQ(ParseBody(too_long)["error"]["code"], "context_length_exceeded") << too_long.body;
  EXPECT_NE(too_long.body.find("tokens but the context holds 512"), std::string::npos)
      << too_long.body;
}

TEST_F(ServeTest, ChatCompletion) {
  auto res = Post(port_, "/v1/chat/completions", Chat("Hello there", 6, false));
  ASSERT_EQ(res.status, 200) << res.body;
  json body = ParseBody(res);
  EXPECT_EQ(body["object"], "chat.completion");
  EXPECT_EQ(body["model"], "tiny");
  EXPECT_EQ(body["choices"][0]["message"]["role"], "assistant");
  EXPECT_TRUE(body["choices"][0]["message"]["content"].is_string());
  const int completion = body["usage"]["completion_tokens"];
  EXPECT_GE(completion, 1);
  EXPECT_LE(completion, 6);
  EXPECT_GT(body["usage"]["prompt_tokens"].get<int>(), 2);
  EXPECT_EQ(body["usage"]["total_tokens"].get<int>(),
            body["usage"]["prompt_tokens"].get<int>() + completion);
  const std::string finish = body["choices"][0]["finish_reason"];
  EXPECT_TRUE(finish == "length" ? completion == 6 : finish == "stop") << finish;
}

TEST_F(ServeTest, StreamEqualsNonStreamAndCompletionsWork) {
  auto whole = Post(port_, "/v1/chat/completions", Chat("Stream me", 8, false));
  ASSERT_EQ(whole.status, 200) << whole.body;
  auto stream = Post(port_, "/v1/chat/completions", Chat("Stream me", 8, true));
  ASSERT_EQ(stream.status, 200) << stream.body;
  EXPECT_EQ(stream.headers["content-type"].rfind("text/event-stream", 0), 0u);
  std::string finish;
  EXPECT_EQ(StreamText(stream, &finish),
            ParseBody(whole)["choices"][0]["message"]["content"].get<std::string>());
  EXPECT_EQ(finish, ParseBody(whole)["choices"][0]["finish_reason"].get<std::string>());

  json completion = {
      {"model", "tiny"}, {"prompt", "Once upon"}, {"max_tokens", 5}, {"temperature", 0}};
  auto text = Post(port_, "/v1/completions", completion.dump());
  ASSERT_EQ(text.status, 200) << text.body;
  EXPECT_EQ(ParseBody(text)["object"], "text_completion");
  completion["stream"] = true;
  completion["stream_options"] = {{"include_usage", true}};
  auto text_stream = Post(port_, "/v1/completions", completion.dump());
  EXPECT_EQ(StreamText(text_stream), ParseBody(text)["choices"][0]["text"].get<std::string>());
  auto events = SseData(text_stream.body);
  ASSERT_GE(events.size(), 2u);
  json usage = json::parse(events[events.size() - 2]);
  EXPECT_EQ(usage["usage"]["completion_tokens"], ParseBody(text)["usage"]["completion_tokens"]);
}

TEST_F(ServeTest, StopStringEndsWithStop) {
  auto whole = Post(
      port_, "/v1/completions",
      json({{"model", "tiny"}, {"prompt", "abc"}, {"max_tokens", 12}, {"temperature", 0}}).dump());
  ASSERT_EQ(whole.status, 200);
  const std::string text = ParseBody(whole)["choices"][0]["text"];
  // A stop string of two ASCII letters from the middle of the answer (the random model's text
  // is full of multi-byte characters a byte-wise cut would split).
  std::string stop;
  for (size_t i = 1; i + 1 < text.size() && stop.empty(); ++i) {
    if (std::isalpha(static_cast<unsigned char>(text[i])) &&
        std::isalpha(static_cast<unsigned char>(text[i + 1]))) {
      stop = text.substr(i, 2);
    }
  }
  if (stop.empty()) GTEST_SKIP() << "no ASCII letters in the answer: " << text;
  auto stopped = Post(port_, "/v1/completions",
                      json({{"model", "tiny"},
                            {"prompt", "abc"},
                            {"max_tokens", 12},
                            {"temperature", 0},
                            {"stop", stop}})
                          .dump());
  ASSERT_EQ(stopped.status, 200) << stopped.body;
  json body = ParseBody(stopped);
  EXPECT_EQ(body["choices"][0]["finish_reason"], "stop");
  EXPECT_EQ(body["choices"][0]["text"], text.substr(0, text.find(stop)));
}

TEST_F(ServeTest, BadInputsAre4xxJsonErrors) {
  const std::string long_prompt(6000, 'x');  // far more than the 512-token context
  struct Case {
    std::string what, path, body;
    int status;
  } cases[] = {
      {"malformed json", "/v1/chat/completions", "{\"model\":", 400},
      {"not an object", "/v1/chat/completions", "[1]", 400},
      {"empty body", "/v1/chat/completions", "", 400},
      {"wrong type", "/v1/chat/completions", R"({"model":"tiny","messages":"hi"})", 400},
      {"wrong content type", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":{"a":1}}]})", 400},
      {"negative max_tokens", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":-1})", 400},
      {"huge max_tokens", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":1000000000000})",
       400},
      {"max_tokens beyond context", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"max_tokens":100000})", 400},
      {"unknown model", "/v1/chat/completions",
       R"({"model":"no-such-model","messages":[{"role":"user","content":"x"}]})", 404},
      {"path as model", "/v1/chat/completions",
       R"({"model":"../tiny","messages":[{"role":"user","content":"x"}]})", 400},
      {"empty messages", "/v1/chat/completions", R"({"model":"tiny","messages":[]})", 400},
      {"prompt longer than context", "/v1/chat/completions", Chat(long_prompt, 4, false), 400},
      {"streamed prompt longer than context", "/v1/chat/completions", Chat(long_prompt, 4, true),
       400},
      {"completion without prompt", "/v1/completions", R"({"model":"tiny"})", 400},
      {"empty embedding input", "/v1/embeddings", R"({"model":"tiny","input":""})", 400},
      {"no embedding inputs", "/v1/embeddings", R"({"model":"tiny","input":[]})", 400},
      {"embedding input longer than context", "/v1/embeddings",
       json({{"model", "tiny"}, {"input", long_prompt}}).dump(), 400},
      {"load unknown", "/v1/models/load", R"({"model":"nothing"})", 404},
      {"unload not loaded", "/v1/models/unload", R"({"model":"nothing"})", 404},
      {"plan unknown", "/v1/plan", R"({"model":"nothing"})", 404},
      {"no such route", "/v1/nothing", "{}", 404},
      {"tool parameters not a schema", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","parameters":[1]}}]})",
       400},
      {"schema that cannot become a grammar", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":12}}}})",
       400},
      {"grammar that does not parse", "/v1/completions",
       R"({"model":"tiny","prompt":"x","grammar":"root ::= ("})", 400},
      {"logit_bias outside the vocabulary", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"logit_bias":{"999999":5}})",
       400},
      {"top_logprobs without logprobs", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"top_logprobs":2})", 400},
      {"too many top_logprobs", "/v1/chat/completions",
       R"({"model":"tiny","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21})",
       400},
      {"completion logprobs beyond 5", "/v1/completions",
       R"({"model":"tiny","prompt":"x","logprobs":6})", 400},
  };
  for (const auto& c : cases) {
    ExpectError(Post(port_, c.path, c.body), c.status, c.what);
  }
  // Oversize body: 9 MiB against the 8 MiB limit.
  std::string big = "{\"model\":\"tiny\",\"prompt\":\"" + std::string(9u << 20, 'a') + "\"}";
  auto res = Post(port_, "/v1/completions", big);
  EXPECT_EQ(res.status, 413) << res.body.substr(0, 200);
  EXPECT_GE(Metric(port_, "snug_http_requests_total{api=\"openai\",status=\"400\"}"), 10);
}

TEST_F(ServeTest, EmbeddingsAreUnitVectorsOfTheModelsWidth) {
  auto preset = synth::FindPreset("tiny");
  ASSERT_TRUE(preset.ok()) << preset.status().ToString();
  auto res = Post(port_, "/v1/embeddings",
                  R"({"model":"tiny","input":["the cat sat","on the mat","the cat sat"]})");
  ASSERT_EQ(res.status, 200) << res.body;
  json body = ParseBody(res);
  ASSERT_TRUE(body.is_object()) << res.body;
  EXPECT_EQ(body["object"], "list");
  EXPECT_EQ(body["model"], "tiny");
  ASSERT_EQ(body["data"].size(), 3u);
  std::vector<std::vector<float>> vectors;
  for (size_t i = 0; i < 3; ++i) {
    const auto& item = body["data"][i];
    EXPECT_EQ(item["object"], "embedding");
    EXPECT_EQ(item["index"], i);
    auto v = item["embedding"].get<std::vector<float>>();
    ASSERT_EQ(v.size(), preset->n_embd);
    double norm_sq = 0;
    for (float x : v)
      norm_sq += static_cast<double>(x) * x;
    EXPECT_NEAR(norm_sq, 1.0, 1e-3);
    vectors.push_back(std::move(v));
  }
  EXPECT_NE(vectors[0], vectors[1]);
  for (size_t j = 0; j < vectors[0].size(); ++j)
    ASSERT_NEAR(vectors[0][j], vectors[2][j], 1e-5) << j;
  const int prompt_tokens = body["usage"]["prompt_tokens"].get<int>();
  EXPECT_GE(prompt_tokens, 6);
  EXPECT_EQ(body["usage"]["total_tokens"], prompt_tokens);

  // A single string is one input.
  auto one = ParseBody(Post(port_, "/v1/embeddings", R"({"model":"tiny","input":"the cat sat"})"));
  ASSERT_EQ(one["data"].size(), 1u) << one.dump();
  EXPECT_EQ(one["data"][0]["embedding"].size(), preset->n_embd);

  // Token ids of the model's vocabulary embed like the text they spell, alone or in a list.
  auto model = engine::Model::Load({TinyModel()});
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  auto ids = (*model)->Tokenize("the cat sat", /*add_special=*/true, /*parse_special=*/false);
  ASSERT_TRUE(ids.ok());
  const json tokens = *ids;
  for (const json& input : {tokens, json::array({tokens, "on the mat"})}) {
    auto res = Post(port_, "/v1/embeddings", json{{"model", "tiny"}, {"input", input}}.dump());
    ASSERT_EQ(res.status, 200) << res.body;
    const auto v = ParseBody(res)["data"][0]["embedding"].get<std::vector<float>>();
    ASSERT_EQ(v.size(), vectors[0].size());
    for (size_t j = 0; j < v.size(); ++j)
      ASSERT_NEAR(v[j], vectors[0][j], 1e-5) << j;
  }
  auto outside = Post(port_, "/v1/embeddings", R"({"model":"tiny","input":[1, 99999999]})");
  ExpectError(outside, 400, "token id outside the vocabulary");
  EXPECT_NE(outside.body.find("outside the vocabulary"), std::string::npos) << outside.body;
}

// OpenAI's logprobs shapes: chat's content list and the completions API's parallel arrays, per
// sampled token, streamed or not, with the greedy token the most likely of its alternatives.
TEST_F(ServeTest, LogprobsFollowOpenAisShapes) {
  json body = json::parse(Chat("Tell me something", 6, false));
  body["logprobs"] = true;
  body["top_logprobs"] = 3;
  auto res = Post(port_, "/v1/chat/completions", body.dump());
  ASSERT_EQ(res.status, 200) << res.body;
  const json whole = ParseBody(res);
  const json content = whole["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), whole["usage"]["completion_tokens"].get<size_t>()) << res.body;
  for (const auto& entry : content) {
    const float logprob = entry["logprob"];
    EXPECT_LE(logprob, 0.0f);
    ASSERT_EQ(entry["top_logprobs"].size(), 3u);
    double mass = 0;
    float previous = 0;
    for (size_t k = 0; k < 3; ++k) {
      const float lp = entry["top_logprobs"][k]["logprob"];
      if (k > 0) {
        EXPECT_LE(lp, previous);
      }
      previous = lp;
      mass += std::exp(static_cast<double>(lp));
    }
    EXPECT_LE(mass, 1.0 + 1e-4);
    // Greedy: the sampled token is the most likely one.
    EXPECT_EQ(entry["top_logprobs"][0]["bytes"], entry["bytes"]);
    EXPECT_FLOAT_EQ(entry["top_logprobs"][0]["logprob"].get<float>(), logprob);
  }

  body["stream"] = true;
  auto streamed = Post(port_, "/v1/chat/completions", body.dump());
  ASSERT_EQ(streamed.status, 200);
  json joined = json::array();
  for (const auto& e : SseData(streamed.body)) {
    if (e == "[DONE]") break;
    const json chunk = json::parse(e);
    const json& lp = chunk["choices"][0]["logprobs"];
    if (lp.is_object()) {
      for (const auto& entry : lp["content"])
        joined.push_back(entry);
    }
  }
  EXPECT_EQ(joined, content);

  auto completion = Post(port_, "/v1/completions",
                         R"({"model":"tiny","prompt":"Once upon","max_tokens":5,"temperature":0,)"
                         R"("logprobs":2})");
  ASSERT_EQ(completion.status, 200) << completion.body;
  const json c = ParseBody(completion);
  const json lp = c["choices"][0]["logprobs"];
  const size_t n = c["usage"]["completion_tokens"];
  ASSERT_EQ(lp["tokens"].size(), n) << completion.body;
  ASSERT_EQ(lp["token_logprobs"].size(), n);
  ASSERT_EQ(lp["top_logprobs"].size(), n);
  ASSERT_EQ(lp["text_offset"].size(), n);
  EXPECT_EQ(lp["text_offset"][0], 0);
  for (size_t i = 1; i < n; ++i)
    EXPECT_GE(lp["text_offset"][i].get<int>(), lp["text_offset"][i - 1].get<int>());
  for (size_t i = 0; i < n; ++i)
    EXPECT_LE(lp["top_logprobs"][i].size(), 2u);
  // Without the field there are none.
  EXPECT_TRUE(
      ParseBody(Post(port_, "/v1/chat/completions", Chat("x", 2, false)))["choices"][0]["logprobs"]
          .is_null());
}

// Browser safety: a page on another site cannot drive the server, neither by rebinding its own
// name to 127.0.0.1 (Host check) nor by a cross-site "simple" POST that needs no preflight
// (Origin check); non-browser clients send no Origin and are unaffected.
TEST_F(ServeTest, WebPagesOfOtherSitesAreRefused) {
  const std::string port = std::to_string(port_);
  auto rebound = Get(port_, "/v1/models", {{"Host", "evil.example:" + port}});
  ExpectError(rebound, 403, "rebound host");
  EXPECT_EQ(Get(port_, "/v1/models", {{"Host", "localhost:" + port}}).status, 200);
  EXPECT_EQ(Get(port_, "/v1/models", {{"Host", "[::1]:" + port}}).status, 200);

  auto unload = Post(port_, "/v1/models/unload", R"({"model":"tiny"})",
                     {{"Origin", "http://evil.example"}, {"Content-Type", "text/plain"}});
  ExpectError(unload, 403, "cross-site unload");
  EXPECT_NE(unload.body.find("--cors"), std::string::npos) << unload.body;
  EXPECT_EQ(ParseBody(Get(port_, "/v1/ps"))["models"].size(), 1u);  // still loaded
  ExpectError(Post(port_, "/v1/chat/completions", Chat("hi", 2, false), {{"Origin", "null"}}), 403,
              "opaque origin");
  // A page served from this machine (a local dev server, snug's own page) may call it.
  auto local = Post(port_, "/v1/chat/completions", Chat("hi", 2, false),
                    {{"Origin", "http://localhost:5173"}});
  EXPECT_EQ(local.status, 200) << local.body;
}

TEST_F(ServeTest, ManagementEndpoints) {
  json ps = ParseBody(Get(port_, "/v1/ps"));
  ASSERT_EQ(ps["models"].size(), 1u) << ps.dump();
  const auto& m = ps["models"][0];
  EXPECT_EQ(m["name"], "tiny");
  EXPECT_EQ(m["plan"]["n_ctx"], 512);
  EXPECT_EQ(m["plan"]["n_parallel"], 4);
  EXPECT_EQ(m["plan"]["batch_invariant"], true);  // --batch-invariant
  EXPECT_EQ(m["plan"]["flash_attn"], false);
  EXPECT_EQ(m["kv_cells_total"], 2048);
  EXPECT_GT(m["plan"]["peak_host_bytes"].get<uint64_t>(), 0u);
  EXPECT_GT(m["allocated_bytes"].get<uint64_t>(), 0u);

  auto plan = Post(port_, "/v1/plan", R"({"model":"tiny","ctx":1024,"kv_type":"f16"})");
  ASSERT_EQ(plan.status, 200) << plan.body;
  EXPECT_EQ(ParseBody(plan)["summary"]["n_ctx"], 1024);
  EXPECT_EQ(ParseBody(plan)["summary"]["kv_type"], "f16");
  // A quantized KV cache needs flash attention, which --batch-invariant turns off.
  auto q8 = Post(port_, "/v1/plan", R"({"model":"tiny","ctx":1024,"kv_type":"q8_0"})");
  ExpectError(q8, 400, "q8_0 KV under --batch-invariant");
  EXPECT_NE(q8.body.find("batch-invariant"), std::string::npos) << q8.body;
  auto huge = Post(port_, "/v1/plan", R"({"model":"tiny","ctx":"banana"})");
  ExpectError(huge, 400, "bad ctx");

  json hw = ParseBody(Get(port_, "/v1/hardware"));
  EXPECT_GT(hw["budget"]["host_bytes"].get<uint64_t>(), 0u) << hw.dump();

  auto metrics = Get(port_, "/metrics");
  EXPECT_EQ(metrics.status, 200);
  for (const char* name :
       {"snug_http_requests_total", "snug_completion_tokens_total",
        "snug_queue_depth{model=\"tiny\"}", "snug_kv_cells_used{model=\"tiny\"}",
        "snug_kv_cells_total{model=\"tiny\"} 2048", "snug_model_planned_bytes{model=\"tiny\"}",
        "snug_model_allocated_bytes{model=\"tiny\"}"}) {
    EXPECT_NE(metrics.body.find(name), std::string::npos) << name;
  }
}

TEST_F(ServeTest, ConcurrentGreedyStreamsMatchSoloRuns) {
  constexpr int kRequests = 32;
  constexpr int kTokens = 8;
  std::vector<std::string> bodies, solo(kRequests);
  for (int i = 0; i < kRequests; ++i) {
    bodies.push_back(Chat("Request number " + std::to_string(i * 7919) + " says", kTokens, true));
  }
  for (int i = 0; i < kRequests; ++i) {
    auto res = Post(port_, "/v1/chat/completions", bodies[i]);
    ASSERT_EQ(res.status, 200) << res.body;
    solo[i] = StreamText(res);
  }
  std::vector<std::future<HttpResponse>> futures;
  for (int i = 0; i < kRequests; ++i) {
    futures.push_back(std::async(
        std::launch::async, [&, i] { return Post(port_, "/v1/chat/completions", bodies[i]); }));
  }
  // --batch-invariant (flash attention off, a KV stream per slot, prompt chunks decoded alone):
  // every answer must equal its solo run exactly.
  int distinct = 0;
  for (int i = 0; i < kRequests; ++i) {
    auto res = futures[i].get();
    ASSERT_EQ(res.status, 200) << res.body;
    distinct += solo[i] != solo[0];
    EXPECT_EQ(StreamText(res), solo[i]) << "request " << i;
  }
  // Prompts differ, so a batching bug that mixes sequences up would show.
  EXPECT_GT(distinct, 0);
  EXPECT_EQ(Metric(port_, "snug_active_requests{model=\"tiny\"}"), 0);
}

// --- Servers with their own configuration -------------------------------------------------

TEST(ServeAloneTest, DisconnectFreesTheSlot) {
  ServeProcess server;
  ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "4096", "--parallel", "1", "--threads", "2"}))
      << server.Stderr();
  // A long stream, abandoned after its first bytes.
  std::string got = PostAndHangUp(server.port(), "/v1/chat/completions",
                                  Chat("Go on for a long time", 4000, true), 600);
  EXPECT_NE(got.find("data: "), std::string::npos) << got;
  // The only slot must come free long before 4000 tokens could have been generated.
  const bool freed = WaitForMetric(server.port(), "snug_active_requests{model=\"tiny\"}", 0,
                                   std::chrono::milliseconds(10000));
  EXPECT_TRUE(freed);
  EXPECT_LT(Metric(server.port(), "snug_model_completion_tokens_total{model=\"tiny\"}"), 3000);
  auto next = Post(server.port(), "/v1/chat/completions", Chat("next", 3, false));
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(ServeAloneTest, DisconnectDuringANonStreamedRequestFreesTheSlot) {
  ServeProcess server;
  ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "4096", "--parallel", "1", "--threads", "2"}))
      << server.Stderr();
  for (bool reset : {true, false}) {
    int fd =
        SendPost(server.port(), "/v1/chat/completions", Chat("Go on for a long time", 4000, false));
    ASSERT_GE(fd, 0);
    const bool running = WaitForMetric(server.port(), "snug_active_requests{model=\"tiny\"}", 1,
                                       std::chrono::milliseconds(2000));
    ASSERT_TRUE(running);
    const double before =
        Metric(server.port(), "snug_model_completion_tokens_total{model=\"tiny\"}");
    if (reset) {
      HangUp(fd);  // RST, as a killed client
    } else {
      close(fd);  // FIN, as a client that gave up
    }
    const bool freed = WaitForMetric(server.port(), "snug_active_requests{model=\"tiny\"}", 0,
                                     std::chrono::milliseconds(5000));
    EXPECT_TRUE(freed) << (reset ? "reset" : "closed") << server.Stderr();
    // Long before 4000 tokens.
    EXPECT_LT(Metric(server.port(), "snug_model_completion_tokens_total{model=\"tiny\"}") - before,
              3000)
        << (reset ? "reset" : "closed");
  }
  auto next = Post(server.port(), "/v1/chat/completions", Chat("next", 3, false));
  EXPECT_EQ(next.status, 200) << next.body;
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

// The next turn of a chat finds the earlier turns in its slot's kept KV cells and decodes only
// the new part; the answer is the one a server without that history gives.
TEST(ServeAloneTest, NextChatTurnReusesTheEarlierTurnsCells) {
  ServeProcess server;
  ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "1024", "--parallel", "2", "--threads", "2"}))
      << server.Stderr();
  json turn = {{"model", "tiny"},
               {"messages", {{{"role", "user"}, {"content", "Tell me about the sea"}}}},
               {"max_tokens", 8},
               {"temperature", 0}};
  auto first = Post(server.port(), "/v1/chat/completions", turn.dump());
  ASSERT_EQ(first.status, 200) << first.body;
  const json first_body = ParseBody(first);
  const int first_prompt = first_body["usage"]["prompt_tokens"];
  turn["messages"].push_back(first_body["choices"][0]["message"]);
  turn["messages"].push_back({{"role", "user"}, {"content", "And the sky?"}});
  const double reused_before =
      Metric(server.port(), "snug_model_prompt_tokens_reused_total{model=\"tiny\"}");
  auto second = Post(server.port(), "/v1/chat/completions", turn.dump());
  ASSERT_EQ(second.status, 200) << second.body;
  const double reused =
      Metric(server.port(), "snug_model_prompt_tokens_reused_total{model=\"tiny\"}") -
      reused_before;
  EXPECT_GE(reused, first_prompt) << "the first turn's prompt was decoded again";
  // OpenAI's usage.prompt_tokens_details.cached_tokens says the same.
  EXPECT_EQ(ParseBody(second)["usage"]["prompt_tokens_details"]["cached_tokens"].get<double>(),
            reused);
  const std::string answer = ParseBody(second)["choices"][0]["message"]["content"];
  EXPECT_EQ(server.Stop(SIGTERM), 0);

  ServeProcess fresh;
  ASSERT_TRUE(fresh.Start({TinyModel(), "--ctx", "1024", "--parallel", "2", "--threads", "2"}));
  auto again = Post(fresh.port(), "/v1/chat/completions", turn.dump());
  ASSERT_EQ(again.status, 200) << again.body;
  EXPECT_EQ(ParseBody(again)["choices"][0]["message"]["content"], answer);
  EXPECT_EQ(Metric(fresh.port(), "snug_model_prompt_tokens_reused_total{model=\"tiny\"}"), 0);
  EXPECT_EQ(fresh.Stop(SIGTERM), 0);
}

TEST(ServeAloneTest, QueueOverflowIs503WithRetryAfter) {
  ServeProcess server;
  ASSERT_TRUE(server.Start(
      {TinyModel(), "--ctx", "4096", "--parallel", "1", "--queue", "1", "--threads", "2"}))
      << server.Stderr();
  HeldStream slot;  // takes the only slot
  ASSERT_TRUE(slot.Open(server.port(), "/v1/chat/completions", Chat("hold", 4000, true)));
  std::vector<std::future<HttpResponse>> futures;
  for (int i = 0; i < 3; ++i) {
    futures.push_back(std::async(std::launch::async, [&] {
      return Post(server.port(), "/v1/chat/completions", Chat("wait", 2, false));
    }));
  }
  // One of the three fits the queue (limit 1); the others are refused at once.
  int overloaded = 0;
  for (auto& f : futures) {
    if (f.wait_for(std::chrono::seconds(5)) != std::future_status::ready) continue;
    auto res = f.get();
    ExpectError(res, 503, "queue full");
    EXPECT_FALSE(res.headers["retry-after"].empty());
    EXPECT_NE(res.body.find("busy"), std::string::npos) << res.body;
    ++overloaded;
  }
  EXPECT_EQ(overloaded, 2);
  EXPECT_EQ(Metric(server.port(), "snug_queue_depth{model=\"tiny\"}"), 1);
  slot.Close();  // the queued request runs now
  int ok = 0;
  for (auto& f : futures) {
    if (f.valid()) ok += f.get().status == 200;
  }
  EXPECT_EQ(ok, 1);
  EXPECT_EQ(Get(server.port(), "/health").status, 200);
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(ServeAloneTest, AQueuedClientThatLeavesIsDropped) {
  ServeProcess server;
  ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "4096", "--parallel", "1", "--queue", "4",
                            "--queue-timeout", "60", "--threads", "2"}))
      << server.Stderr();
  HeldStream slot;
  ASSERT_TRUE(slot.Open(server.port(), "/v1/chat/completions", Chat("hold", 4000, true)));
  int fd = SendPost(server.port(), "/v1/chat/completions", Chat("waiting", 2, false));
  ASSERT_GE(fd, 0);
  const bool queued = WaitForMetric(server.port(), "snug_queue_depth{model=\"tiny\"}", 1,
                                    std::chrono::milliseconds(2000));
  ASSERT_TRUE(queued);
  HangUp(fd);
  // Gone from the queue long before the 60 s queue timeout.
  const bool dropped = WaitForMetric(server.port(), "snug_queue_depth{model=\"tiny\"}", 0,
                                     std::chrono::milliseconds(5000));
  EXPECT_TRUE(dropped);
  EXPECT_EQ(Metric(server.port(), "snug_active_requests{model=\"tiny\"}"), 1);  // still held
  slot.Close();
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(ServeAloneTest, QueueTimeoutIs503) {
  ServeProcess server;
  ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "4096", "--parallel", "1", "--queue", "4",
                            "--queue-timeout", "0.3", "--threads", "2"}))
      << server.Stderr();
  HeldStream slot;
  ASSERT_TRUE(slot.Open(server.port(), "/v1/chat/completions", Chat("hold", 4000, true)));
  const auto start = std::chrono::steady_clock::now();
  auto waited = Post(server.port(), "/v1/chat/completions", Chat("short", 2, false));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  ExpectError(waited, 503, "queue timeout");
  EXPECT_NE(waited.body.find("waited"), std::string::npos) << waited.body;
  EXPECT_GE(seconds, 0.25);
  EXPECT_LT(seconds, 10);
  slot.Close();
  for (int i = 0; i < 100; ++i) {  // the server notices the hang-up at its next write
    if (Metric(server.port(), "snug_active_requests{model=\"tiny\"}") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(Post(server.port(), "/v1/chat/completions", Chat("short", 2, false)).status, 200);
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(ServeAloneTest, ApiKeyGuardsEverythingButHealth) {
  ServeProcess server;
  ASSERT_TRUE(server.Start({TinyModel(), "--api-key", "s3cret", "--ctx", "512"}))
      << server.Stderr();
  EXPECT_EQ(Get(server.port(), "/health").status, 200);
  ExpectError(Get(server.port(), "/v1/models"), 401, "no key");
  ExpectError(Get(server.port(), "/v1/models", {{"Authorization", "Bearer wrong"}}), 401,
              "wrong key");
  ExpectError(Get(server.port(), "/metrics", {{"Authorization", "s3cret"}}), 401, "no Bearer");
  EXPECT_EQ(Get(server.port(), "/v1/models", {{"Authorization", "Bearer s3cret"}}).status, 200);
  auto chat = Post(server.port(), "/v1/chat/completions", Chat("hi", 2, false),
                   {{"Authorization", "Bearer s3cret"}});
  EXPECT_EQ(chat.status, 200) << chat.body;
  ExpectError(Post(server.port(), "/v1/chat/completions", Chat("hi", 2, false)), 401, "post");
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

TEST(ServeAloneTest, CorsOnlyWhenConfigured) {
  ServeProcess plain;
  ASSERT_TRUE(plain.Start({TinyModel(), "--ctx", "512"})) << plain.Stderr();
  EXPECT_EQ(Get(plain.port(), "/health").headers.count("access-control-allow-origin"), 0u);
  EXPECT_EQ(plain.Stop(SIGTERM), 0);

  ServeProcess cors;
  ASSERT_TRUE(
      cors.Start({TinyModel(), "--ctx", "512", "--cors", "http://app.example", "--api-key", "k"}))
      << cors.Stderr();
  auto health = Get(cors.port(), "/health");
  EXPECT_EQ(health.headers["access-control-allow-origin"], "http://app.example");
  // Browsers send the preflight without credentials: it must pass without the key.
  auto preflight = Http(cors.port(), "OPTIONS", "/v1/chat/completions");
  EXPECT_EQ(preflight.status, 204);
  EXPECT_NE(preflight.headers["access-control-allow-headers"].find("Authorization"),
            std::string::npos);
  // The allowed site's page may call the API (with the key); another site's may not.
  auto allowed = Get(cors.port(), "/v1/models",
                     {{"Origin", "http://app.example"}, {"Authorization", "Bearer k"}});
  EXPECT_EQ(allowed.status, 200) << allowed.body;
  auto other = Get(cors.port(), "/v1/models",
                   {{"Origin", "http://other.example"}, {"Authorization", "Bearer k"}});
  EXPECT_EQ(other.status, 403) << other.body;
  EXPECT_EQ(cors.Stop(SIGTERM), 0);
}

TEST(ServeAloneTest, RefusesNonLoopbackWithoutKey) {
  ServeProcess refused;
  EXPECT_FALSE(refused.Start({TinyModel(), "--host", "0.0.0.0"}));
  EXPECT_EQ(refused.Wait(), 2);
  EXPECT_NE(refused.Stderr().find("--api-key"), std::string::npos) << refused.Stderr();

  ServeProcess insecure;
  ASSERT_TRUE(insecure.Start({TinyModel(), "--host", "0.0.0.0", "--insecure", "--ctx", "512"}))
      << insecure.Stderr();
  EXPECT_EQ(Get(insecure.port(), "/health").status, 200);
  EXPECT_EQ(insecure.Stop(SIGTERM), 0);
}

// SIGHUP (the terminal closed) ends the server as SIGTERM does: open streams get a final event.
TEST(ServeAloneTest, SigtermAndSighupEndStreamsWithAnErrorAndExitZero) {
  for (int sig : {SIGTERM, SIGHUP}) {
    SCOPED_TRACE(strsignal(sig));
    ServeProcess server;
    ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "4096", "--parallel", "2", "--threads", "2"}))
        << server.Stderr();
    auto stream = std::async(std::launch::async, [&] {
      return Post(server.port(), "/v1/chat/completions", Chat("never ending", 4000, true));
    });
    // Wait until tokens flow, then stop the server under the stream.
    for (int i = 0; i < 100; ++i) {
      if (Metric(server.port(), "snug_model_completion_tokens_total{model=\"tiny\"}") > 5) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(server.Stop(sig), 0) << server.Stderr();
    auto res = stream.get();
    EXPECT_EQ(res.status, 200);
    auto events = SseData(res.body);
    ASSERT_GE(events.size(), 2u) << res.body.substr(0, 500);
    EXPECT_EQ(events.back(), "[DONE]");
    json last = json::parse(events[events.size() - 2], nullptr, false);
    ASSERT_TRUE(last.contains("error")) << events[events.size() - 2];
    EXPECT_NE(last["error"]["message"].get<std::string>().find("shutting down"), std::string::npos);
  }
}

// A second server on a port another one listens on is refused at once, before loading anything:
// with SO_REUSEPORT it would take half the connections, past the first one's --api-key.
TEST(ServeAloneTest, APortInUseIsRefusedBeforeLoading) {
  ServeProcess guarded;
  ASSERT_TRUE(guarded.Start({TinyModel(), "--ctx", "512", "--api-key", "secret"}))
      << guarded.Stderr();
  const auto start = std::chrono::steady_clock::now();
  ServeProcess second;
  EXPECT_FALSE(
      second.Start({TinyModel(), "--ctx", "512", "--port", std::to_string(guarded.port())}));
  EXPECT_EQ(second.Wait(), 1);
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  EXPECT_NE(second.Stderr().find("in use"), std::string::npos) << second.Stderr();
  EXPECT_EQ(second.Stderr().find("loaded"), std::string::npos) << second.Stderr();
  // Every key-less request to the port meets the first server's key check.
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(Get(guarded.port(), "/v1/models").status, 401);
  EXPECT_EQ(guarded.Stop(SIGTERM), 0);
}

TEST(ServeAloneTest, IdleModelUnloadsAfterKeepAlive) {
  ServeProcess server;
  ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "512", "--keep-alive", "1s"})) << server.Stderr();
  EXPECT_EQ(ParseBody(Get(server.port(), "/v1/ps"))["models"].size(), 1u);
  std::this_thread::sleep_for(std::chrono::milliseconds(2000));
  EXPECT_EQ(ParseBody(Get(server.port(), "/v1/ps"))["models"].size(), 0u);
  // Named on the command line, so a request loads it again.
  auto res = Post(server.port(), "/v1/chat/completions", Chat("again", 2, false));
  EXPECT_EQ(res.status, 200) << res.body;
  EXPECT_EQ(Metric(server.port(), "snug_model_loads_total"), 2);
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

// The budget is re-read before each load: memory another process took since start-up is not
// planned for twice. In a real 768 MiB cgroup (budget about 500 MiB after headroom) a 500 MiB hog
// leaves too little for tiny even at the 2048-token minimum; once the hog is gone the load works.
TEST(ServeAloneTest, LoadsRespectMemoryOthersTookSinceStartUp) {
  MemoryCgroup cgroup(768ull << 20);
  if (!cgroup.ok()) GTEST_SKIP() << "memory cgroup unavailable: " << cgroup.error();
  ServeProcess server;
  server.JoinCgroup(cgroup.procs_file());
  ASSERT_TRUE(server.Start({TinyModel(), "--keep-alive", "-1", "--threads", "2"}))
      << server.Stderr();
  const uint64_t budget_at_start = ParseBody(Get(server.port(), "/v1/ps"))["budget_bytes"];
  ASSERT_EQ(Post(server.port(), "/v1/models/unload", R"({"model":"tiny"})").status, 200);

  const uint64_t usage_before = cgroup.UsageBytes();
  const pid_t hog = StartMemoryHog(cgroup, 500ull << 20);
  ASSERT_GT(hog, 0);
  for (int i = 0; i < 100 && cgroup.UsageBytes() < usage_before + (490ull << 20); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));  // past the 1 s re-read interval
  auto refused = Post(server.port(), "/v1/models/load", R"({"model":"tiny"})");
  EXPECT_EQ(refused.status, 507) << refused.body;
  EXPECT_NE(refused.body.find("re-read"), std::string::npos) << refused.body;
  EXPECT_LT(ParseBody(Get(server.port(), "/v1/ps"))["budget_bytes"].get<uint64_t>(),
            budget_at_start - (400ull << 20));

  kill(hog, SIGKILL);
  waitpid(hog, nullptr, 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  auto loaded = Post(server.port(), "/v1/models/load", R"({"model":"tiny"})");
  EXPECT_EQ(loaded.status, 200) << loaded.body;
  EXPECT_LE(ParseBody(Get(server.port(), "/v1/ps"))["budget_bytes"].get<uint64_t>(),
            budget_at_start);
  EXPECT_EQ(cgroup.OomKills(), 0);
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

uint64_t PeakRssBytes(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  uint64_t kib = 0;
  while (in >> key) {
    if (key == "VmHWM:" && in >> kib) return kib * 1024;
  }
  return 0;
}

// An embedding context is measured (llama.cpp's dry run), held against the budget, and small:
// llama.cpp computes logits for every token of an embedding context, which took a 3.6k-token input
// of tiny's 128k vocabulary to 3.7 GB before snug averaged token states 128 tokens at a time.
TEST(ServeAloneTest, EmbeddingContextsAreSmallAndBudgeted) {
  {
    ServeProcess server;
    ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "4096", "--parallel", "1", "--threads", "2"}))
        << server.Stderr();
    std::string text;
    for (int i = 0; i < 1800; ++i)
      text += " w" + std::to_string(i % 97);
    const uint64_t before = PeakRssBytes(server.pid());
    auto res =
        Post(server.port(), "/v1/embeddings", json{{"model", "tiny"}, {"input", text}}.dump());
    ASSERT_EQ(res.status, 200) << res.body;
    EXPECT_GT(ParseBody(res)["usage"]["prompt_tokens"].get<int>(), 3000);
    EXPECT_LT(PeakRssBytes(server.pid()), before + (200ull << 20));
    EXPECT_EQ(server.Stop(SIGTERM), 0);
  }
  // 480 MiB limit: a 224 MiB budget, 184 MiB planned for tiny (grammar memory included), too
  // little left for the ~66 MB embedding context; 600 MiB leaves room.
  for (const char* limit : {"480MiB", "600MiB"}) {
    ServeProcess server;
    ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "512", "--parallel", "1", "--threads", "2",
                              "--memory-limit", limit}))
        << server.Stderr();
    auto res = Post(server.port(), "/v1/embeddings", R"({"model":"tiny","input":"the cat sat"})");
    if (std::string(limit) == "480MiB") {
      ExpectError(res, 507, "embedding beyond the budget");
      EXPECT_NE(res.body.find("embedding context"), std::string::npos) << res.body;
      EXPECT_EQ(Get(server.port(), "/health").status, 200);
    } else {
      EXPECT_EQ(res.status, 200) << res.body;
    }
    EXPECT_EQ(server.Stop(SIGTERM), 0);
  }
}

TEST(ServeAloneTest, ManualLoadAndUnload) {
  ServeProcess server;
  ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "512", "--keep-alive", "-1"})) << server.Stderr();
  EXPECT_EQ(Post(server.port(), "/v1/models/unload", R"({"model":"tiny"})").status, 200);
  EXPECT_EQ(ParseBody(Get(server.port(), "/v1/ps"))["models"].size(), 0u);
  auto load = Post(server.port(), "/v1/models/load", R"({"model":"tiny"})");
  EXPECT_EQ(load.status, 200) << load.body;
  EXPECT_EQ(ParseBody(load)["plan"]["n_ctx"], 512);
  EXPECT_EQ(ParseBody(Get(server.port(), "/v1/ps"))["models"].size(), 1u);

  // `snug ps` reads the same endpoint.
  std::string cmd =
      std::string(SNUG_BINARY) + " ps --port " + std::to_string(server.port()) + " 2>&1";
  std::string out;
  if (FILE* pipe = popen(cmd.c_str(), "r")) {
    char buf[4096];
    size_t n;
    while ((n = fread(buf, 1, sizeof buf, pipe)) > 0)
      out.append(buf, n);
    pclose(pipe);
  }
  if (out.find("not available") != std::string::npos) {
    std::cout << "snug ps is not registered in this build yet: " << out;
  } else {
    EXPECT_NE(out.find("tiny"), std::string::npos) << out;
    EXPECT_NE(out.find("512"), std::string::npos) << out;
  }
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

// Two models under a memory limit that holds either but not both: loading one evicts the other
// when it is idle; when it is busy the request gets 507 with the numbers. Real-sized presets:
// the engine also checks llama.cpp's own dry-run figure (which counts the whole logits buffer)
// against the free budget, so the toy model's numbers cannot make this case.
TEST(ServeAloneTest, MultiModelEvictionUnderMemoryLimit) {
  const std::string a = TestModel("qwen2.5-0.5b-q8_0", "qwen-a.gguf");
  const std::string b = TestModel("qwen2.5-0.5b-q4_k_m", "qwen-b.gguf");
  ASSERT_FALSE(a.empty());
  ASSERT_FALSE(b.empty());
  // Learn both planned peaks (a plan loads nothing).
  uint64_t peak_a = 0, peak_b = 0;
  {
    ServeProcess probe;
    ASSERT_TRUE(probe.Start({a, "--ctx", "1024", "--parallel", "2", "--keep-alive", "-1"}))
        << probe.Stderr();
    peak_a = ParseBody(
        Post(probe.port(), "/v1/plan", R"({"model":"qwen-a"})"))["summary"]["peak_host_bytes"];
    probe.Stop(SIGTERM);
  }
  {
    ServeProcess probe;
    ASSERT_TRUE(probe.Start({b, "--ctx", "1024", "--parallel", "2"})) << probe.Stderr();
    peak_b = ParseBody(
        Post(probe.port(), "/v1/plan", R"({"model":"qwen-b"})"))["summary"]["peak_host_bytes"];
    probe.Stop(SIGTERM);
  }
  ASSERT_GT(peak_a, 0u);
  ASSERT_GT(peak_b, 0u);
  const uint64_t limit = std::max(peak_a, peak_b) + std::min(peak_a, peak_b) / 2;

  ServeProcess server;
  ASSERT_TRUE(server.Start({a, b, "--ctx", "1024", "--parallel", "2", "--memory-limit",
                            std::to_string(limit), "--headroom", "0", "--keep-alive", "-1",
                            "--threads", "2"}))
      << server.Stderr();
  auto loaded = [&] {
    std::vector<std::string> names;
    const json ps = ParseBody(Get(server.port(), "/v1/ps"));
    for (const auto& m : ps["models"]) {
      names.push_back(m["name"]);
    }
    return names;
  };
  // Start-up loaded a, then b evicted it.
  EXPECT_EQ(loaded(), std::vector<std::string>{"qwen-b"});
  auto use_a = Post(server.port(), "/v1/chat/completions", Chat("use a", 2, false, "qwen-a"));
  EXPECT_EQ(use_a.status, 200) << use_a.body;
  EXPECT_EQ(loaded(), std::vector<std::string>{"qwen-a"});
  EXPECT_EQ(Metric(server.port(), "snug_model_evictions_total"), 2);

  {
    HeldStream busy;  // a is busy: b cannot be loaded now
    ASSERT_TRUE(
        busy.Open(server.port(), "/v1/chat/completions", Chat("keep a busy", 900, true, "qwen-a")));
    auto refused = Post(server.port(), "/v1/chat/completions", Chat("use b", 2, false, "qwen-b"));
    ExpectError(refused, 507, "does not fit beside a busy model");
    const std::string message = ParseBody(refused)["error"]["message"];
    EXPECT_NE(message.find("qwen-b"), std::string::npos) << message;
    EXPECT_NE(message.find("busy"), std::string::npos) << message;
    EXPECT_EQ(loaded(), std::vector<std::string>{"qwen-a"});
  }
  // Once a is idle again, b loads (evicting a).
  EXPECT_TRUE(WaitForMetric(server.port(), "snug_active_requests{model=\"qwen-a\"}", 0,
                            std::chrono::milliseconds(10000)));
  auto use_b = Post(server.port(), "/v1/chat/completions", Chat("use b", 2, false, "qwen-b"));
  EXPECT_EQ(use_b.status, 200) << use_b.body;
  EXPECT_EQ(loaded(), std::vector<std::string>{"qwen-b"});
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

// Issue 15: a model loaded and unloaded 100 times in a 768 MiB cgroup. glibc used to keep each
// freed model in some thread's arena (+62 MiB per cycle, OOM-killed at cycle 17); malloc_trim
// after each unload returns it. Not flat yet: about 0.8 MiB per cycle remains (28 -> 108 MiB in
// CI), most of it fragmentation across the threads that load and free (0.2 MiB per cycle with
// glibc's thresholds fixed, which cost grammar decoding too much). The bound holds the fix.
TEST(ServeAloneTest, LoadUnloadCyclesKeepResidentMemoryFlat) {
  MemoryCgroup cgroup(768ull << 20);
  ServeProcess server;
  if (cgroup.ok()) {
    server.JoinCgroup(cgroup.procs_file());
  } else {
    std::cout << "running without a memory cgroup (" << cgroup.error() << ")\n";
  }
  ASSERT_TRUE(server.Start({TinyModel(), "--ctx", "2048", "--keep-alive", "-1", "--threads", "2"}))
      << server.Stderr();
  auto rss = [&] {
    std::ifstream status("/proc/" + std::to_string(server.pid()) + "/status");
    std::string key;
    uint64_t kib = 0;
    while (status >> key)
      if (key == "VmRSS:" && (status >> kib)) break;
    return kib << 10;
  };
  uint64_t settled = 0;
  for (int cycle = 1; cycle <= 100; ++cycle) {
    ASSERT_EQ(Post(server.port(), "/v1/models/load", R"({"model":"tiny"})").status, 200)
        << "cycle " << cycle << server.Stderr();
    if (cycle % 10 == 1) {  // a generation too: its compute buffers are allocated on first use
      auto chat = Post(server.port(), "/v1/chat/completions", Chat("hi", 2, false));
      ASSERT_EQ(chat.status, 200) << "cycle " << cycle << ": " << chat.body;
    }
    ASSERT_EQ(Post(server.port(), "/v1/models/unload", R"({"model":"tiny"})").status, 200);
    if (cycle == 5) settled = rss();
  }
  const uint64_t last = rss();
  std::cout << "RSS after cycle 5: " << (settled >> 20) << " MiB, after cycle 100: " << (last >> 20)
            << " MiB\n";
  // Measured: +4 MiB over 95 cycles with one heap arena and models loaded and freed on the
  // pool's loader thread (+21 MiB with the loader alone, +80 MiB before either).
  EXPECT_LT(last, settled + (16ull << 20))
      << "RSS after cycle 5: " << (settled >> 20) << " MiB, after 100: " << (last >> 20) << " MiB";
  if (cgroup.ok()) {
    EXPECT_EQ(cgroup.OomKills(), 0);
  }
  EXPECT_EQ(server.Stop(SIGTERM), 0);
}

}  // namespace
}  // namespace snug::testing
