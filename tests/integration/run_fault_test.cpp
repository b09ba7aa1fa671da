// The runtime guard end to end: an injected decode failure or NaN logits mid-answer ends `snug
// run` with exit 1, a clear error, and not one token after the fault.
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "engine/engine.h"
#include "run_support.h"

namespace snug::testing {
namespace {

class RunFaultTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    model_ = SharedTinyModel(&error);
    ASSERT_FALSE(model_.empty()) << error;
    ProcessResult clean =
        RunProcess({SNUG_BINARY, "run", model_, "Once upon a time", "--raw", "--temp", "0", "-n",
                    "12", "--ctx", "512", "--ignore-eos", "--json", "--token-ids"});
    ASSERT_EQ(clean.exit_code, 0) << clean.err;
    ids_ = nlohmann::json::parse(clean.out)["token_ids"].get<std::vector<engine::Token>>();
    ASSERT_EQ(ids_.size(), 12u);
    auto model = engine::Model::Load({model_});
    ASSERT_TRUE(model.ok());
    vocab_ = std::move(model).value();
  }

  ProcessResult RunWithFault(const std::string& fault) {
    return RunProcess({SNUG_BINARY, "run", model_, "Once upon a time", "--raw", "--temp", "0", "-n",
                       "12", "--ctx", "512", "--ignore-eos"},
                      {"SNUG_FAULT=" + fault});
  }
  std::string TextOfFirst(size_t n) const {
    return vocab_->Detokenize({ids_.begin(), ids_.begin() + n});
  }

  std::string model_;
  std::vector<engine::Token> ids_;
  std::unique_ptr<engine::Model> vocab_;
};

TEST_F(RunFaultTest, DecodeFailureMidAnswer) {
  ProcessResult r = RunWithFault("decode_fail@5");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("backend compute failed (out of memory?)"), std::string::npos) << r.err;
  // Decodes 1-4 produced tokens 1-4; the 5th decode failed: nothing after it.
  EXPECT_EQ(r.out, TextOfFirst(4));
}

TEST_F(RunFaultTest, NanLogitsMidAnswer) {
  ProcessResult r = RunWithFault("nan_logits@3");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_NE(r.err.find("non-finite logits"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, TextOfFirst(2));
}

TEST_F(RunFaultTest, FailureWhileReadingThePromptEmitsNothing) {
  ProcessResult r = RunWithFault("decode_fail@1");
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("llama_decode failed"), std::string::npos) << r.err;
}

TEST_F(RunFaultTest, JsonModePrintsNoAnswerLineOnFailure) {
  ProcessResult r = RunProcess({SNUG_BINARY, "run", model_, "Once upon a time", "--raw", "--temp",
                                "0", "-n", "12", "--ctx", "512", "--json"},
                               {"SNUG_FAULT=nan_logits@2"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_EQ(r.out, "");
}

}  // namespace
}  // namespace snug::testing
