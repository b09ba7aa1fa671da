// The chat layer on real synthetic models carrying real templates from llama.cpp's source tree:
// rendering with tools, grammar-constrained answers (tool calls, JSON schemas) from random
// weights that still come out valid, reasoning read apart from content, and a grammar that
// dead-ends ending the answer with an error instead of hanging.
#include "engine/chat.h"

#include <gtest/gtest.h>
#include <unistd.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "synth/presets.h"
#include "synth/writer.h"

namespace snug::engine {
namespace {

using nlohmann::json;

std::string ReadTemplate(const std::string& name) {
  std::ifstream in(std::string(SNUG_LLAMA_SRC) + "/models/templates/" + name);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_FALSE(text.str().empty()) << name;
  return text.str();
}

constexpr const char* kWeatherParameters =
    R"({"type":"object","properties":{"city":{"type":"string","enum":["Paris","Tokyo"]},
        "days":{"type":"integer","minimum":1,"maximum":7}},"required":["city","days"],
        "additionalProperties":false})";

class ChatTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new std::string(std::filesystem::temp_directory_path() /
                           ("snug-chat-test-" + std::to_string(getpid())));
    std::filesystem::create_directories(*dir_);
    path_ = new std::string(*dir_ + "/tiny.gguf");
    auto preset = synth::FindPreset("tiny");
    ASSERT_TRUE(preset.ok()) << preset.status().ToString();
    synth::WriteOptions options;
    options.weights = synth::WriteOptions::Weights::kRandom;
    ASSERT_TRUE(synth::WriteModel(*preset, *path_, options).ok());
  }
  static void TearDownTestSuite() {
    std::filesystem::remove_all(*dir_);
    delete path_;
    delete dir_;
  }

  static std::unique_ptr<Model> Load(const std::string& template_file) {
    ModelOptions options;
    options.path = *path_;
    if (!template_file.empty()) options.chat_template = ReadTemplate(template_file);
    auto model = Model::Load(options);
    EXPECT_TRUE(model.ok()) << model.status().ToString();
    return model.ok() ? std::move(model).value() : nullptr;
  }

  // Runs the rendered chat to its end on a fresh context and reads the answer back.
  static Result<ParsedChat> Answer(Model* model, const RenderedChat& chat, float temperature,
                                   int max_tokens = 160,
                                   std::vector<std::pair<Token, float>> logit_bias = {}) {
    ContextOptions options;
    options.n_ctx = 2048;
    options.n_threads = 2;
    SNUG_ASSIGN_OR_RETURN(auto context, Context::Create(model, options));
    SNUG_ASSIGN_OR_RETURN(auto prompt, model->TokenizeChat(chat.prompt));
    SamplingParams sampling;
    sampling.temperature = temperature;
    sampling.seed = 7;
    sampling.max_tokens = max_tokens;
    sampling.grammar = chat.grammar;
    sampling.stop = chat.stops;
    sampling.kept_special_tokens = chat.preserved_tokens;
    sampling.logit_bias = std::move(logit_bias);
    SNUG_ASSIGN_OR_RETURN(Generation gen, Generate(context.get(), prompt, sampling));
    ChatReader reader(chat.parser);
    reader.Append(gen.text, /*final=*/true);
    return reader.message();
  }

  static std::string* dir_;
  static std::string* path_;
};
std::string* ChatTest::dir_ = nullptr;
std::string* ChatTest::path_ = nullptr;

ChatInput WeatherQuestion() {
  ChatInput input;
  input.messages = {{"system", "You are helpful."}, {"user", "Weather in Paris for 3 days?"}};
  input.tools = {{"get_weather", "Forecast for a city", kWeatherParameters}};
  input.tool_choice = ToolChoice::kRequired;
  input.parallel_tool_calls = false;
  return input;
}

void ExpectValidWeatherCall(const ParsedChat& answer) {
  ASSERT_EQ(answer.tool_calls.size(), 1u) << "content: " << answer.content;
  EXPECT_EQ(answer.tool_calls[0].name, "get_weather");
  EXPECT_FALSE(answer.tool_calls[0].id.empty());
  json args = json::parse(answer.tool_calls[0].arguments, nullptr, false);
  ASSERT_TRUE(args.is_object()) << answer.tool_calls[0].arguments;
  EXPECT_TRUE(args["city"] == "Paris" || args["city"] == "Tokyo") << args.dump();
  ASSERT_TRUE(args["days"].is_number_integer()) << args.dump();
  EXPECT_GE(args["days"].get<int>(), 1);
  EXPECT_LE(args["days"].get<int>(), 7);
  EXPECT_EQ(args.size(), 2u);
}

// llama.cpp's grammars for tool_choice "required" let the model write text before its call (as a
// real model may); random weights would ramble on, so a bias on "{" makes them open the call at
// once. From there on the grammar alone decides: every call must come out valid for its schema.
std::vector<std::pair<Token, float>> OpenBraceBias(const Model& model, float bias) {
  auto brace = model.SingleToken("{");
  EXPECT_TRUE(brace.has_value());
  return {{brace.value_or(0), bias}};
}

TEST_F(ChatTest, RequiredToolCallFromRandomWeightsIsValid) {
  for (const char* tmpl :
       {"meta-llama-Llama-3.1-8B-Instruct.jinja", "meta-llama-Llama-3.2-3B-Instruct.jinja",
        "meta-llama-Llama-3.3-70B-Instruct.jinja"}) {
    SCOPED_TRACE(tmpl);
    auto model = Load(tmpl);
    ASSERT_NE(model, nullptr);
    auto chat = model->chat().Render(WeatherQuestion());
    ASSERT_TRUE(chat.ok()) << chat.status().ToString();
    EXPECT_NE(chat->prompt.find("get_weather"), std::string::npos);  // the tool is described
    EXPECT_FALSE(chat->grammar.empty());
    EXPECT_FALSE(chat->grammar.lazy);
    for (float temperature : {0.0f, 1.0f}) {
      auto answer = Answer(model.get(), *chat, temperature, 160, OpenBraceBias(*model, 30.0f));
      ASSERT_TRUE(answer.ok()) << answer.status().ToString();
      ExpectValidWeatherCall(*answer);
    }
  }
}

// Formats whose calls sit between tags ("<tool_call>...</tool_call>") need their markers as
// single tokens, which the synthetic model's vocabulary lacks: for those the tools are checked
// in the prompt, the grammar, and the parse of an answer in the format.
TEST_F(ChatTest, TaggedToolCallFormatsRenderAndParse) {
  const std::string hermes_call =
      "<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
      "\"days\": 3}}\n</tool_call>";
  const std::pair<const char*, std::string> cases[] = {
      {"NousResearch-Hermes-2-Pro-Llama-3-8B-tool_use.jinja", hermes_call},
      {"Qwen-Qwen2.5-7B-Instruct.jinja", hermes_call},
      {"Qwen-Qwen3-0.6B.jinja", hermes_call},
      {"mistralai-Mistral-Nemo-Instruct-2407.jinja",
       "[TOOL_CALLS][{\"name\": \"get_weather\", \"arguments\": {\"city\": \"Paris\", "
       "\"days\": 3}, \"id\": \"abcdef123\"}]"},
  };
  for (const auto& [tmpl, output] : cases) {
    SCOPED_TRACE(tmpl);
    auto model = Load(tmpl);
    ASSERT_NE(model, nullptr);
    auto chat = model->chat().Render(WeatherQuestion());
    ASSERT_TRUE(chat.ok()) << chat.status().ToString();
    EXPECT_NE(chat->prompt.find("get_weather"), std::string::npos);
    EXPECT_NE(chat->grammar.gbnf.find("get_weather"), std::string::npos);
    ChatReader reader(chat->parser);
    reader.Append(output, /*final=*/true);
    ExpectValidWeatherCall(reader.message());
    EXPECT_EQ(reader.message().content, "");
  }
}

TEST_F(ChatTest, JsonSchemaAnswerFollowsTheSchema) {
  auto model = Load("");
  ChatInput input;
  input.messages = {{"user", "Give me a count."}};
  input.json_schema =
      R"({"type":"object","properties":{"n":{"type":"integer","minimum":0,"maximum":99},
          "ok":{"type":"boolean"},"tag":{"type":"string","enum":["a","b"]}},
          "required":["n","ok","tag"],"additionalProperties":false})";
  auto chat = model->chat().Render(input);
  ASSERT_TRUE(chat.ok()) << chat.status().ToString();
  for (float temperature : {0.0f, 0.8f, 1.5f}) {
    auto answer = Answer(model.get(), *chat, temperature);
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    json value = json::parse(answer->content, nullptr, false);
    ASSERT_TRUE(value.is_object()) << answer->content;
    EXPECT_TRUE(value["n"].is_number_integer());
    EXPECT_TRUE(value["ok"].is_boolean());
    EXPECT_TRUE(value["tag"] == "a" || value["tag"] == "b");
  }
}

std::string Trim(const std::string& s) {
  const size_t begin = s.find_first_not_of(" \n");
  const size_t end = s.find_last_not_of(" \n");
  return begin == std::string::npos ? "" : s.substr(begin, end - begin + 1);
}

TEST_F(ChatTest, ReasoningIsReadApartFromContent) {
  // Random weights never close a thought on their own: a grammar writes the answer's shape, with
  // the thinking tags where each template's model would write them (R1's template opens the
  // thought itself).
  const std::pair<const char*, const char*> cases[] = {
      {"deepseek-ai-DeepSeek-R1-Distill-Llama-8B.jinja",
       R"(root ::= "Two and two." "</think>" "Four.")"},
      {"deepseek-ai-DeepSeek-R1-Distill-Qwen-32B.jinja",
       R"(root ::= "Two and two." "</think>" "Four.")"},
      {"Qwen-Qwen3-0.6B.jinja", R"(root ::= "<think>\nTwo and two.\n</think>\n\nFour.")"},
  };
  for (const auto& [tmpl, grammar] : cases) {
    SCOPED_TRACE(tmpl);
    auto model = Load(tmpl);
    ASSERT_NE(model, nullptr);
    ChatInput input;
    input.messages = {{"user", "What is 2+2?"}};
    input.grammar = grammar;
    auto chat = model->chat().Render(input);
    ASSERT_TRUE(chat.ok()) << chat.status().ToString();
    auto answer = Answer(model.get(), *chat, 0.0f);
    ASSERT_TRUE(answer.ok()) << answer.status().ToString();
    // The newlines around a thought are the format's (llama-server returns them alike).
    EXPECT_EQ(Trim(answer->reasoning_content), "Two and two.");
    EXPECT_EQ(answer->content, "Four.");
  }
}

TEST_F(ChatTest, ThinkingCanBeTurnedOff) {
  auto model = Load("Qwen-Qwen3-0.6B.jinja");
  ASSERT_NE(model, nullptr);
  ChatInput input;
  input.messages = {{"user", "What is 2+2?"}};
  auto thinking = model->chat().Render(input);
  input.enable_thinking = false;
  auto direct = model->chat().Render(input);
  ASSERT_TRUE(thinking.ok() && direct.ok());
  // Qwen3's template closes an empty thought in the prompt when thinking is off.
  EXPECT_EQ(thinking->prompt.find("</think>"), std::string::npos) << thinking->prompt;
  EXPECT_NE(direct->prompt.find("</think>"), std::string::npos) << direct->prompt;
}

TEST_F(ChatTest, StreamedDeltasAddUpToTheWholeMessage) {
  auto model = Load("meta-llama-Llama-3.1-8B-Instruct.jinja");
  auto chat = model->chat().Render(WeatherQuestion());
  ASSERT_TRUE(chat.ok());
  ContextOptions options;
  options.n_ctx = 2048;
  options.n_threads = 2;
  auto context = Context::Create(model.get(), options);
  ASSERT_TRUE(context.ok());
  auto prompt = model->TokenizeChat(chat->prompt);
  ASSERT_TRUE(prompt.ok());
  SamplingParams sampling;
  sampling.temperature = 0;
  sampling.max_tokens = 160;
  sampling.logit_bias = OpenBraceBias(*model, 30.0f);
  sampling.grammar = chat->grammar;
  sampling.stop = chat->stops;
  sampling.kept_special_tokens = chat->preserved_tokens;
  ChatReader reader(chat->parser);
  std::map<int, std::string> arguments;
  std::map<int, std::string> names;
  auto collect = [&](const std::vector<ChatDelta>& deltas) {
    for (const auto& d : deltas) {
      if (d.tool_index < 0) continue;
      if (!d.tool_name.empty()) {
        EXPECT_EQ(names.count(d.tool_index), 0u) << "a call is announced once";
        names[d.tool_index] = d.tool_name;
      }
      arguments[d.tool_index] += d.tool_arguments;
    }
  };
  auto gen = Generate(context->get(), *prompt, sampling, [&](std::string_view piece) {
    collect(reader.Append(std::string(piece), false));
    return true;
  });
  ASSERT_TRUE(gen.ok()) << gen.status().ToString();
  collect(reader.Append("", true));
  ExpectValidWeatherCall(reader.message());
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(names[0], "get_weather");
  EXPECT_EQ(json::parse(arguments[0]), json::parse(reader.message().tool_calls[0].arguments));
}

TEST_F(ChatTest, GrammarThatDeadEndsStopsWithAnError) {
  auto model = Load("");
  ContextOptions options;
  options.n_ctx = 512;
  options.n_threads = 2;
  auto context = Context::Create(model.get(), options);
  ASSERT_TRUE(context.ok());
  auto prompt = model->Tokenize("Say a", true, false);
  ASSERT_TRUE(prompt.ok());
  SamplingParams sampling;
  sampling.temperature = 0;
  sampling.max_tokens = 50;
  sampling.ignore_eos = true;  // after "a" the grammar allows only the end, which is banned
  sampling.grammar.gbnf = R"(root ::= "a")";
  auto gen = Generate(context->get(), *prompt, sampling);
  ASSERT_FALSE(gen.ok());
  EXPECT_EQ(gen.status().code(), Code::kRuntime);
  EXPECT_NE(gen.status().message().find("grammar"), std::string::npos);
}

TEST_F(ChatTest, BadSchemasAndGrammarsAreTheRequestsFault) {
  auto model = Load("meta-llama-Llama-3.1-8B-Instruct.jinja");
  ChatInput input;
  input.messages = {{"user", "x"}};
  input.json_schema = R"({"type":12})";
  auto bad_schema = model->chat().Render(input);
  ASSERT_FALSE(bad_schema.ok());
  EXPECT_EQ(bad_schema.status().code(), Code::kInvalidArgument);
  input.json_schema.clear();
  input.grammar = "root ::= (";
  auto bad_grammar = model->chat().Render(input);
  ASSERT_FALSE(bad_grammar.ok());
  EXPECT_EQ(bad_grammar.status().code(), Code::kInvalidArgument);
  EXPECT_FALSE(GrammarForCompletion(*model, "", "root ::= [").ok());
  EXPECT_FALSE(GrammarForCompletion(*model, "{\"type\":\"object\"}", "root ::= \"a\"").ok());
  EXPECT_TRUE(GrammarForCompletion(*model, "{\"type\":\"object\"}", "").ok());
}

TEST_F(ChatTest, OverrideTemplateThatDoesNotParseIsRefused) {
  ModelOptions options;
  options.path = *path_;
  options.chat_template = "{% for m in messages %}{{ m.content ";
  auto model = Model::Load(options);
  ASSERT_FALSE(model.ok());
  EXPECT_EQ(model.status().code(), Code::kInvalidArgument);
}

TEST_F(ChatTest, DescribeNamesTheFormatAndThinkingTags) {
  auto report = DescribeChatTemplate(*path_);
  ASSERT_TRUE(report.ok()) << report.status().ToString();
  EXPECT_TRUE(report->has_template);
  EXPECT_FALSE(report->info.tool_format.empty());
  auto qwen3 = Load("Qwen-Qwen3-0.6B.jinja");
  auto info = qwen3->chat().Describe();
  EXPECT_TRUE(info.supports_thinking);
  EXPECT_EQ(info.thinking_end, "</think>");
}

}  // namespace
}  // namespace snug::engine
