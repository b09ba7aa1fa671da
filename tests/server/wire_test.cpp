// The request parsers on their own: every malformed body is an InvalidArgument sentence.
#include <gtest/gtest.h>

#include <map>

#include "server/api_error.h"
#include "server/wire.h"

namespace snug::server {
namespace {

using nlohmann::json;

TEST(WireTest, ParsesChatWithAllFields) {
  auto r = ParseChatRequest(json::parse(R"({"model":"org/m:q4","stream":true,
      "stream_options":{"include_usage":true},"max_completion_tokens":7,"temperature":0,
      "top_p":0.5,"seed":3,"stop":["a","b"],
      "messages":[{"role":"developer","content":"s"},
                  {"role":"user","content":[{"type":"text","text":"x"},{"type":"text","text":"y"}]}]})"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(r->params.model, "org/m:q4");
  EXPECT_TRUE(r->params.stream);
  EXPECT_TRUE(r->params.include_usage);
  EXPECT_EQ(r->params.max_tokens, 7);
  EXPECT_EQ(r->params.temperature, 0.0f);
  EXPECT_EQ(r->params.seed, 3u);
  EXPECT_EQ(r->params.stop, (std::vector<std::string>{"a", "b"}));
  ASSERT_EQ(r->input.messages.size(), 2u);
  EXPECT_EQ(r->input.messages[0].role, "system");
  EXPECT_EQ(r->input.messages[1].content, "xy");
}

TEST(WireTest, ParsesToolsHistoryAndFormats) {
  auto r = ParseChatRequest(json::parse(R"({"model":"m",
      "tools":[{"type":"function","function":{"name":"get_weather","description":"d",
                "parameters":{"type":"object","properties":{"city":{"type":"string"}}}}},
               {"type":"function","function":{"name":"noop"}}],
      "tool_choice":{"type":"function","function":{"name":"get_weather"}},
      "parallel_tool_calls":false,
      "response_format":{"type":"json_schema","json_schema":{"name":"x","schema":{"type":"object"}}},
      "chat_template_kwargs":{"enable_thinking":false},
      "messages":[{"role":"user","content":"w?"},
        {"role":"assistant","content":null,"tool_calls":[{"id":"call_1","type":"function",
          "function":{"name":"get_weather","arguments":"{\"city\":\"Paris\"}"}}]},
        {"role":"tool","tool_call_id":"call_1","content":"sunny"}]})"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  const engine::ChatInput& in = r->input;
  // A named choice keeps that tool alone and makes the call required.
  ASSERT_EQ(in.tools.size(), 1u);
  EXPECT_EQ(in.tools[0].name, "get_weather");
  EXPECT_EQ(json::parse(in.tools[0].parameters)["properties"]["city"]["type"], "string");
  EXPECT_EQ(in.tool_choice, engine::ToolChoice::kRequired);
  EXPECT_EQ(in.parallel_tool_calls, false);
  EXPECT_EQ(json::parse(in.json_schema), json::parse(R"({"type":"object"})"));
  EXPECT_FALSE(in.enable_thinking);
  ASSERT_EQ(in.messages.size(), 3u);
  ASSERT_EQ(in.messages[1].tool_calls.size(), 1u);
  EXPECT_EQ(in.messages[1].tool_calls[0].id, "call_1");
  EXPECT_EQ(in.messages[1].tool_calls[0].arguments, R"({"city":"Paris"})");
  EXPECT_EQ(in.messages[2].tool_call_id, "call_1");
  EXPECT_EQ(in.messages[2].tool_name, "get_weather");  // named after the call it answers
}

TEST(WireTest, RejectsBadToolsAndFormats) {
  const char* bad[] = {
      // tools with a non-object parameters schema
      R"({"model":"m","messages":[{"role":"user","content":"x"}],
          "tools":[{"type":"function","function":{"name":"f","parameters":"object"}}]})",
      // tool_choice naming an unknown function
      R"({"model":"m","messages":[{"role":"user","content":"x"}],
          "tools":[{"type":"function","function":{"name":"f"}}],
          "tool_choice":{"type":"function","function":{"name":"g"}}})",
      // a tool result without tool_call_id
      R"({"model":"m","messages":[{"role":"user","content":"x"},{"role":"tool","content":"r"}]})",
      // required with no tools, an unknown choice, legacy functions
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"required"})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"always"})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"functions":[{"name":"f"}]})",
      // response_format: unknown type, non-object schema; grammar with a schema or tools
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"xml"}})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],
          "response_format":{"type":"json_schema","json_schema":{"schema":12}}})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"grammar":"root ::= \"a\"",
          "response_format":{"type":"json_object"}})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"grammar":"root ::= \"a\"",
          "tools":[{"type":"function","function":{"name":"f"}}]})",
      // two tools with one name; a NUL in content
      R"({"model":"m","messages":[{"role":"user","content":"x"}],
          "tools":[{"type":"function","function":{"name":"f"}},{"type":"function","function":{"name":"f"}}]})",
      R"({"model":"m","messages":[{"role":"user","content":"a\u0000b"}]})",
  };
  for (const char* body : bad) {
    auto r = ParseChatRequest(json::parse(body));
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << body;
  }
}

TEST(WireTest, ParsesPenaltiesAndLogitBias) {
  auto r = ParseChatRequest(json::parse(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "frequency_penalty":1.5,"presence_penalty":-0.5,"logit_bias":{"90":100,"13":-100}})"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_FLOAT_EQ(r->params.frequency_penalty, 1.5f);
  EXPECT_FLOAT_EQ(r->params.presence_penalty, -0.5f);
  ASSERT_EQ(r->params.logit_bias.size(), 2u);
  std::map<int64_t, float> bias(r->params.logit_bias.begin(), r->params.logit_bias.end());
  EXPECT_FLOAT_EQ(bias[90], 100.0f);
  EXPECT_FLOAT_EQ(bias[13], -100.0f);
  for (const char* body : {
           R"({"model":"m","prompt":"x","frequency_penalty":3})",
           R"({"model":"m","prompt":"x","presence_penalty":"high"})",
           R"({"model":"m","prompt":"x","logit_bias":{"abc":1}})",
           R"({"model":"m","prompt":"x","logit_bias":{"-4":1}})",
           R"({"model":"m","prompt":"x","logit_bias":{"5":101}})",
           R"({"model":"m","prompt":"x","logit_bias":[5]})",
       }) {
    auto bad = ParseCompletionRequest(json::parse(body));
    ASSERT_FALSE(bad.ok()) << body;
    EXPECT_EQ(bad.status().code(), Code::kInvalidArgument) << body;
  }
}

TEST(WireTest, SchemasKeepTheClientsKeyOrder) {
  // Parsed from the body's text, as the server does: "reasoning" must stay before "answer".
  auto body = ParseJsonBody(R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_schema","json_schema":{"name":"a","schema":{"type":"object",
        "properties":{"reasoning":{"type":"string"},"answer":{"type":"string"}}}}},
      "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object",
        "properties":{"zeta":{"type":"string"},"alpha":{"type":"string"}}}}}]})");
  ASSERT_TRUE(body.ok());
  auto r = ParseChatRequest(*body);
  ASSERT_TRUE(r.ok()) << r.status().message();
  const std::string& schema = r->input.json_schema;
  EXPECT_LT(schema.find("reasoning"), schema.find("answer")) << schema;
  const std::string& params = r->input.tools[0].parameters;
  EXPECT_LT(params.find("zeta"), params.find("alpha")) << params;
}

// 'model' may be left out of generation and embedding requests (the server's only model answers,
// ModelPool::DefaultModel), never out of load/unload/plan.
TEST(WireTest, ModelIsOptionalWhereTheServerCanPickIt) {
  auto chat =
      ParseChatRequest(RequestJson::parse(R"({"messages":[{"role":"user","content":"x"}]})"));
  ASSERT_TRUE(chat.ok()) << chat.status().message();
  EXPECT_EQ(chat->params.model, "");
  auto embed = ParseEmbeddingRequest(RequestJson::parse(R"({"input":"x"})"));
  ASSERT_TRUE(embed.ok()) << embed.status().message();
  EXPECT_FALSE(ParseModelField(RequestJson::parse("{}")).ok());
  EXPECT_FALSE(ParsePlanRequest(RequestJson::parse("{}")).ok());
}

TEST(WireTest, RejectsBadBodies) {
  const char* bad[] = {
      R"({"model":5,"messages":[{"role":"user","content":"x"}]})",      // model type
      R"({"model":"m","messages":"x"})",                                // messages type
      R"({"model":"m","messages":[]})",                                 // empty
      R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})",  // role
      R"({"model":"m","messages":[{"content":"x"}]})",                  // no role
      R"({"model":"m","messages":[{"role":"user","content":5}]})",      // content type
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":-5})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1e30})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":99999999999})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":"5"})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":3})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_p":-1})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":7})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":[1]})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})",
      R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":2})",
      R"({"model":"../../etc/passwd","messages":[{"role":"user","content":"x"}]})",
      R"({"model":"/abs/path.gguf","messages":[{"role":"user","content":"x"}]})",
      R"({"model":"a b","messages":[{"role":"user","content":"x"}]})",
      R"([1,2,3])",
  };
  for (const char* body : bad) {
    auto r = ParseChatRequest(json::parse(body));
    ASSERT_FALSE(r.ok()) << body;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << body;
    EXPECT_FALSE(r.status().message().empty());
  }
}

TEST(WireTest, JsonBodyMustBeAnObject) {
  EXPECT_FALSE(ParseJsonBody("").ok());
  EXPECT_FALSE(ParseJsonBody("{").ok());
  EXPECT_FALSE(ParseJsonBody("[]").ok());
  EXPECT_FALSE(ParseJsonBody("\"x\"").ok());
  EXPECT_TRUE(ParseJsonBody("{}").ok());
}

TEST(WireTest, CompletionAndEmbeddingInputs) {
  EXPECT_TRUE(ParseCompletionRequest(json::parse(R"({"model":"m","prompt":"x"})")).ok());
  EXPECT_TRUE(ParseCompletionRequest(json::parse(R"({"model":"m","prompt":["x"]})")).ok());
  EXPECT_FALSE(ParseCompletionRequest(json::parse(R"({"model":"m","prompt":["x","y"]})")).ok());
  EXPECT_FALSE(ParseCompletionRequest(json::parse(R"({"model":"m","prompt":""})")).ok());
  EXPECT_FALSE(ParseCompletionRequest(json::parse(R"({"model":"m"})")).ok());
  auto e = ParseEmbeddingRequest(json::parse(R"({"model":"m","input":["a","b"]})"));
  ASSERT_TRUE(e.ok());
  EXPECT_EQ(e->inputs.size(), 2u);
  EXPECT_FALSE(ParseEmbeddingRequest(json::parse(R"({"model":"m","input":[]})")).ok());
  // Token ids: one array, or an array of arrays (OpenAI's forms), never empty or negative.
  auto one = ParseEmbeddingRequest(json::parse(R"({"model":"m","input":[1,2,3]})"));
  ASSERT_TRUE(one.ok());
  ASSERT_EQ(one->inputs.size(), 1u);
  EXPECT_TRUE(one->inputs[0].is_tokens);
  EXPECT_EQ(one->inputs[0].tokens, (std::vector<int64_t>{1, 2, 3}));
  auto many = ParseEmbeddingRequest(json::parse(R"({"model":"m","input":[[1],[2,3],"x"]})"));
  ASSERT_TRUE(many.ok());
  ASSERT_EQ(many->inputs.size(), 3u);
  EXPECT_EQ(many->inputs[1].tokens, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(many->inputs[2].text, "x");
  for (const char* bad : {R"([[]])", R"([1,-2])", R"([1,"a"])", R"([[1],[1.5]])", R"([""])",
                          R"("")", R"({"a":1})", R"(7)"}) {
    EXPECT_FALSE(
        ParseEmbeddingRequest(json::parse(std::string(R"({"model":"m","input":)") + bad + "}"))
            .ok())
        << bad;
  }
  auto base64 =
      ParseEmbeddingRequest(json::parse(R"({"model":"m","input":"a","encoding_format":"base64"})"));
  ASSERT_TRUE(base64.ok());
  EXPECT_TRUE(base64->base64);
  EXPECT_FALSE(
      ParseEmbeddingRequest(json::parse(R"({"model":"m","input":"a","encoding_format":"int8"})"))
          .ok());
}

TEST(WireTest, EmbeddingBase64IsLittleEndianFloat32) {
  // 1.0f = 00 00 80 3F, -2.0f = 00 00 00 C0, 0.5f = 00 00 00 3F (little-endian bytes).
  EXPECT_EQ(EmbeddingBase64({1.0f}), "AACAPw==");
  EXPECT_EQ(EmbeddingBase64({1.0f, -2.0f}), "AACAPwAAAMA=");
  EXPECT_EQ(EmbeddingBase64({1.0f, -2.0f, 0.5f}), "AACAPwAAAMAAAAA/");
  EXPECT_EQ(EmbeddingBase64({}), "");
}

TEST(WireTest, ErrorStatusesFollowTheCode) {
  EXPECT_EQ(ErrorFromStatus(Status::InvalidArgument("x")).http_status, 400);
  EXPECT_EQ(ErrorFromStatus(Status::PermissionDenied("x")).http_status, 401);
  EXPECT_EQ(ErrorFromStatus(Status::NotFound("x")).http_status, 404);
  EXPECT_EQ(ErrorFromStatus(Status::Corrupt("x")).http_status, 422);  // a malformed model file
  auto busy = ErrorFromStatus(Status::Unavailable("x"));
  EXPECT_EQ(busy.http_status, 503);
  EXPECT_GT(busy.retry_after_seconds, 0);
  EXPECT_EQ(ErrorFromStatus(Status::DoesNotFit("x")).http_status, 507);
  auto j = ErrorFromStatus(Status::NotFound("no model")).ToJson();
  EXPECT_EQ(j["error"]["message"], "no model");
  EXPECT_EQ(j["error"]["type"], "invalid_request_error");
  EXPECT_EQ(j["error"]["code"], "model_not_found");
}

}  // namespace
}  // namespace snug::server
