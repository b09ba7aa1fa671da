// `snug run` as a user meets it: the summary line, the JSON contract, stdin prompts, and clear
// errors for prompts that do not fit the context.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "run_support.h"

namespace snug::testing {
namespace {

class RunCliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    model_ = SharedTinyModel(&error);
    ASSERT_FALSE(model_.empty()) << error;
  }
  std::string model_;
};

TEST_F(RunCliTest, JsonLineFollowsTheContract) {
  ProcessResult r = RunProcess({SNUG_BINARY, "run", model_, "Hello", "-n", "5", "--temp", "0.7",
                                "--seed", "3", "--json", "--ctx", "1024"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Only the JSON line on stdout.
  ASSERT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 1) << r.out;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_ctx"], 1024);
  EXPECT_EQ(j["kv_type"], "f16");
  EXPECT_GE(j["tokens"].get<int>(), 1);
  EXPECT_LE(j["tokens"].get<int>(), 5);
  EXPECT_TRUE(j["text"].is_string());
  EXPECT_TRUE(j["finish_reason"] == "length" || j["finish_reason"] == "stop");
  EXPECT_GT(j["timings"]["decode_tokens_per_s"].get<double>(), 0.0);
  // One summary line on stderr before loading: context, KV type, offload, peak vs budget.
  EXPECT_NE(r.err.find("ctx 1024, f16 KV, 0/"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("planned peak"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("budget"), std::string::npos) << r.err;
}

TEST_F(RunCliTest, DefaultContextIsChosenByThePlanner) {
  ProcessResult r = RunProcess({SNUG_BINARY, "run", model_, "Hi", "-n", "2", "--json"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["n_ctx"], 4096);  // tiny's n_ctx_train (below the 8192 default cap)
}

TEST_F(RunCliTest, PromptFromPipedStdin) {
  TempDir dir;
  const std::string prompt_file = dir.path() + "/prompt.txt";
  std::ofstream(prompt_file) << "Tell me a story";
  ProcessResult piped =
      RunProcess({SNUG_BINARY, "run", model_, "--temp", "0", "-n", "6", "--json", "--token-ids"},
                 {}, prompt_file);
  ProcessResult arg = RunProcess({SNUG_BINARY, "run", model_, "Tell me a story", "--temp", "0",
                                  "-n", "6", "--json", "--token-ids"});
  ASSERT_EQ(piped.exit_code, 0) << piped.err;
  ASSERT_EQ(arg.exit_code, 0) << arg.err;
  EXPECT_EQ(nlohmann::json::parse(piped.out)["token_ids"],
            nlohmann::json::parse(arg.out)["token_ids"]);
}

TEST_F(RunCliTest, PromptLongerThanTheContextIsAClearErrorBeforeDecoding) {
  std::string prompt;
  for (int i = 0; i < 400; ++i)
    prompt += " lorem";
  ProcessResult r = RunProcess(
      {SNUG_BINARY, "run", model_, prompt, "--raw", "--ctx", "256", "-n", "4", "--json"});
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("tokens but the context holds 256; raise --ctx"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("the largest context that fits here is"), std::string::npos) << r.err;
}

TEST_F(RunCliTest, MissingModelFileIsAnError) {
  ProcessResult r = RunProcess({SNUG_BINARY, "run", "/nonexistent/model.gguf", "hi"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_NE(r.err.find("/nonexistent/model.gguf"), std::string::npos) << r.err;
}

TEST_F(RunCliTest, ExplicitContextThatDoesNotFitExitsThree) {
  ProcessResult r =
      RunProcess({SNUG_BINARY, "run", model_, "hi", "--ctx", "4096", "--memory-limit", "64MiB"});
  EXPECT_EQ(r.exit_code, 3) << r.err;
  EXPECT_EQ(r.out, "");
}

// --json-schema: the answer is JSON valid for the schema, even from random weights; --chat-template
// replaces the GGUF's template (a template that does not parse is a usage error with the reason).
TEST_F(RunCliTest, JsonSchemaAndChatTemplateFlags) {
  TempDir dir;
  const std::string schema = dir.path() + "/schema.json";
  std::ofstream(schema) << R"({"type":"object","properties":{"n":{"type":"integer","minimum":0,
      "maximum":9},"ok":{"type":"boolean"}},"required":["n","ok"],"additionalProperties":false})";
  ProcessResult r =
      RunProcess({SNUG_BINARY, "run", model_, "A count please", "--json-schema", schema, "--temp",
                  "0.9", "--seed", "4", "-n", "60", "--json", "--ctx", "1024"});
  ASSERT_EQ(r.exit_code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  auto answer = nlohmann::json::parse(j["text"].get<std::string>(), nullptr, false);
  ASSERT_TRUE(answer.is_object()) << j["text"];
  EXPECT_TRUE(answer["n"].is_number_integer());
  EXPECT_TRUE(answer["ok"].is_boolean());
  EXPECT_EQ(j["finish_reason"], "stop");

  const std::string tmpl =
      std::string(SNUG_LLAMA_SRC) + "/models/templates/" + "meta-llama-Llama-3.2-3B-Instruct.jinja";
  ProcessResult with_template = RunProcess({SNUG_BINARY, "run", model_, "Hi", "--chat-template",
                                            tmpl, "-n", "2", "--json", "--ctx", "1024"});
  EXPECT_EQ(with_template.exit_code, 0) << with_template.err;
  const std::string broken = dir.path() + "/broken.jinja";
  std::ofstream(broken) << "{% for m in messages %}{{ m.content ";
  ProcessResult bad = RunProcess(
      {SNUG_BINARY, "run", model_, "Hi", "--chat-template", broken, "-n", "2", "--ctx", "1024"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_NE(bad.err.find("chat template"), std::string::npos) << bad.err;
}

// Sampling flags that are not finite numbers in range are usage errors; a thread count above the
// usable CPUs is lowered to them with a warning (100000 threads crashed ggml's pool).
TEST_F(RunCliTest, FlagBounds) {
  for (const std::vector<std::string>& bad : {std::vector<std::string>{"--temp", "nan"},
                                              {"--temp", "-1"},
                                              {"--top-p", "inf"},
                                              {"--min-p", "2"},
                                              {"--threads", "-3"},
                                              {"--repeat-penalty", "nan"}}) {
    std::vector<std::string> argv = {SNUG_BINARY, "run", model_, "Hi", "-n", "1"};
    argv.insert(argv.end(), bad.begin(), bad.end());
    ProcessResult r = RunProcess(argv);
    EXPECT_EQ(r.exit_code, 2) << bad[0] << " " << bad[1] << ": " << r.err;
  }
  ProcessResult many = RunProcess({SNUG_BINARY, "run", model_, "Hi", "-n", "2", "--threads",
                                   "100000", "--json", "--ctx", "512"});
  ASSERT_EQ(many.exit_code, 0) << many.err;
  EXPECT_NE(many.err.find("more than the"), std::string::npos) << many.err;
}

// mkmodel renames a finished file over OUT: it must never replace a device, a FIFO or a symlink.
TEST_F(RunCliTest, MkmodelWritesOnlyOverRegularFiles) {
  TempDir dir;
  const std::string target = dir.path() + "/target.txt";
  std::ofstream(target) << "keep me";
  const std::string link = dir.path() + "/link.gguf";
  ASSERT_EQ(symlink(target.c_str(), link.c_str()), 0);
  const std::string fifo = dir.path() + "/fifo.gguf";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  for (const std::string& out : {link, fifo, std::string("/dev/null"), dir.path()}) {
    ProcessResult r = RunProcess({SNUG_BINARY, "mkmodel", "tiny", out});
    EXPECT_EQ(r.exit_code, 1) << out << ": " << r.err;
    EXPECT_NE(r.err.find("not a regular file"), std::string::npos) << r.err;
  }
  struct stat st {};
  ASSERT_EQ(lstat(link.c_str(), &st), 0);
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  ASSERT_EQ(lstat(fifo.c_str(), &st), 0);
  EXPECT_TRUE(S_ISFIFO(st.st_mode));
  ASSERT_EQ(stat("/dev/null", &st), 0);
  EXPECT_TRUE(S_ISCHR(st.st_mode));
  std::ifstream kept(target);
  std::string text;
  std::getline(kept, text);
  EXPECT_EQ(text, "keep me");
  // A regular file is replaced as before.
  const std::string regular = dir.path() + "/model.gguf";
  std::ofstream(regular) << "old";
  EXPECT_EQ(RunProcess({SNUG_BINARY, "mkmodel", "tiny", regular}).exit_code, 0);
}

}  // namespace
}  // namespace snug::testing
