#include "store/ref.h"

#include <gtest/gtest.h>

namespace snug::store {
namespace {

TEST(NormalizeName, LowercasesValidNames) {
  EXPECT_EQ(*NormalizeName("Qwen/Qwen2.5-0.5B-Instruct-GGUF:Q8_0"),
            "qwen/qwen2.5-0.5b-instruct-gguf:q8_0");
  EXPECT_EQ(*NormalizeName("tiny"), "tiny");
  EXPECT_EQ(*NormalizeName("a/b/c:d"), "a/b/c:d");
}

TEST(NormalizeName, RejectsTraversalControlAndOddCharacters) {
  for (const char* bad :
       {"", "../x", "a/../b", "a/./b", "/abs", "a//b", "a/", ".hidden", "a:b:c", "a:", "with space",
        "tab\tname", "nl\nname", "semi;colon", "a\\b", "x:..", "x:.y"}) {
    auto result = NormalizeName(bad);
    EXPECT_FALSE(result.ok()) << "accepted '" << bad << "'";
    if (!result.ok()) {
      EXPECT_EQ(result.status().code(), Code::kInvalidArgument);
    }
  }
  EXPECT_FALSE(NormalizeName(std::string(201, 'a')).ok());
  EXPECT_TRUE(NormalizeName(std::string(200, 'a')).ok());
}

TEST(NameFromText, MakesValidNames) {
  EXPECT_EQ(NameFromText("Llama-3.2-3B-Instruct-Q4_K_M"), "llama-3.2-3b-instruct-q4_k_m");
  EXPECT_EQ(NameFromText("my model+v2"), "my-model-v2");
  EXPECT_EQ(NameFromText("..x"), "x");
  EXPECT_EQ(NameFromText("???"), "model");
  EXPECT_TRUE(NormalizeName(NameFromText("  A weird/../name\x01 ")).ok());
}

TEST(ParseRef, HubForms) {
  auto ref = ParseRef("hf.co/bartowski/Llama-3.2-3B-Instruct-GGUF:Q4_K_M");
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  EXPECT_EQ(ref->kind, PullRef::Kind::kHub);
  EXPECT_EQ(ref->owner, "bartowski");
  EXPECT_EQ(ref->repo, "Llama-3.2-3B-Instruct-GGUF");
  EXPECT_EQ(ref->quant, "Q4_K_M");

  ref = ParseRef("huggingface.co/Qwen/Qwen2.5-0.5B-Instruct-GGUF");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->owner, "Qwen");
  EXPECT_EQ(ref->quant, "");

  ref = ParseRef("owner/repo:q8_0");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->kind, PullRef::Kind::kHub);
  EXPECT_EQ(ref->quant, "q8_0");
  EXPECT_EQ(DefaultName(*ref, "Q8_0"), "owner/repo:q8_0");
}

TEST(ParseRef, UrlsAndLocalFiles) {
  auto ref = ParseRef("https://example.com/x/Llama-3.2-3B-Q4_K_M.gguf?download=true");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(ref->kind, PullRef::Kind::kUrl);
  EXPECT_EQ(DefaultName(*ref, ""), "llama-3.2-3b-q4_k_m");

  ref = ParseRef("http://127.0.0.1:8080/a/b/resolve/main/m-00001-of-00003.gguf");
  ASSERT_TRUE(ref.ok());
  EXPECT_EQ(DefaultName(*ref, ""), "m");

  for (const char* local : {"./model.gguf", "/data/x.gguf", "../y.bin", "dir/Model.GGUF"}) {
    ref = ParseRef(local);
    ASSERT_TRUE(ref.ok()) << local;
    EXPECT_EQ(ref->kind, PullRef::Kind::kLocalFile) << local;
  }
}

TEST(ParseRef, RejectsMalformed) {
  for (const char* bad :
       {"", "justaname", "a/b/c", "owner/", "/", "owner/repo:", "ow ner/repo", "owner/repo:Q4 K"}) {
    auto ref = ParseRef(bad);
    EXPECT_FALSE(ref.ok() && ref->kind == PullRef::Kind::kHub) << "accepted '" << bad << "'";
  }
  auto ref = ParseRef("justaname");
  ASSERT_FALSE(ref.ok());
  EXPECT_NE(ref.status().message().find("OWNER/REPO"), std::string::npos);
}

TEST(QuantOfFileName, FindsTheQuantToken) {
  EXPECT_EQ(QuantOfFileName("qwen2.5-0.5b-instruct-q8_0.gguf"), "Q8_0");
  EXPECT_EQ(QuantOfFileName("Llama-3.2-3B-Instruct-Q4_K_M.gguf"), "Q4_K_M");
  EXPECT_EQ(QuantOfFileName("Q4_K_M/Model-Q4_K_M-00001-of-00002.gguf"), "Q4_K_M");
  EXPECT_EQ(QuantOfFileName("model-IQ4_XS.gguf"), "IQ4_XS");
  EXPECT_EQ(QuantOfFileName("model.BF16.gguf"), "BF16");
  EXPECT_EQ(QuantOfFileName("model.gguf"), "");
}

TEST(SelectQuantFiles, PicksRequestedQuantIgnoringOthers) {
  std::vector<std::string> files = {
      "README.md",         "Model-Q8_0.gguf",       "Model-Q4_K_M.gguf",
      "Model-IQ4_XS.gguf", "mmproj-Model-F16.gguf", "big/Model-Q4_K_M.gguf"};
  auto selection = SelectQuantFiles(files, "q8_0", "o/r");
  ASSERT_TRUE(selection.ok());
  EXPECT_EQ(selection->files, std::vector<std::string>{"Model-Q8_0.gguf"});
  EXPECT_EQ(selection->quant, "Q8_0");

  // Default: Q4_K_M, the shortest path when a quant appears twice.
  selection = SelectQuantFiles(files, "", "o/r");
  ASSERT_TRUE(selection.ok());
  EXPECT_EQ(selection->files, std::vector<std::string>{"Model-Q4_K_M.gguf"});
  EXPECT_EQ(selection->quant, "Q4_K_M");

  // mmproj is never a model.
  selection = SelectQuantFiles(files, "F16", "o/r");
  ASSERT_FALSE(selection.ok());
  EXPECT_EQ(selection.status().code(), Code::kNotFound);
  EXPECT_NE(selection.status().message().find("Q8_0"), std::string::npos);  // lists what exists
}

TEST(SelectQuantFiles, DefaultFallsBackThroughThePreferenceList) {
  auto selection = SelectQuantFiles({"m-Q6_K.gguf", "m-Q8_0.gguf", "m-F16.gguf"}, "", "o/r");
  ASSERT_TRUE(selection.ok());
  EXPECT_EQ(selection->quant, "Q6_K");
  selection = SelectQuantFiles({"only.gguf"}, "", "o/r");
  ASSERT_TRUE(selection.ok());
  EXPECT_EQ(selection->files, std::vector<std::string>{"only.gguf"});
  selection = SelectQuantFiles({"README.md"}, "", "o/r");
  EXPECT_EQ(selection.status().code(), Code::kNotFound);
}

TEST(SelectQuantFiles, SplitModelsYieldAllPartsInOrder) {
  std::vector<std::string> files = {"Q4_K_M/M-Q4_K_M-00002-of-00003.gguf",
                                    "Q4_K_M/M-Q4_K_M-00001-of-00003.gguf",
                                    "Q4_K_M/M-Q4_K_M-00003-of-00003.gguf", "M-Q8_0.gguf"};
  auto selection = SelectQuantFiles(files, "Q4_K_M", "o/r");
  ASSERT_TRUE(selection.ok()) << selection.status().ToString();
  ASSERT_EQ(selection->files.size(), 3u);
  EXPECT_EQ(selection->files[0], "Q4_K_M/M-Q4_K_M-00001-of-00003.gguf");
  EXPECT_EQ(selection->files[2], "Q4_K_M/M-Q4_K_M-00003-of-00003.gguf");

  files.erase(files.begin());  // part 2 missing
  selection = SelectQuantFiles(files, "Q4_K_M", "o/r");
  ASSERT_FALSE(selection.ok());
  EXPECT_NE(selection.status().message().find("missing part 2 of 3"), std::string::npos);
}

TEST(ParseSplitName, RecognisesLlamaCppSplitNames) {
  int index = 0, count = 0;
  std::string prefix;
  ASSERT_TRUE(ParseSplitName("a/Model-00002-of-00005.gguf", &index, &count, &prefix));
  EXPECT_EQ(index, 2);
  EXPECT_EQ(count, 5);
  EXPECT_EQ(prefix, "a/Model");
  EXPECT_FALSE(ParseSplitName("Model-00006-of-00005.gguf", &index, &count, &prefix));
  EXPECT_FALSE(ParseSplitName("Model.gguf", &index, &count, &prefix));
}

}  // namespace
}  // namespace snug::store
