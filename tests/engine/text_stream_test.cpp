#include "engine/text_stream.h"

#include <gtest/gtest.h>

namespace snug::engine {
namespace {

TEST(TextStreamTest, PassesPlainTextThrough) {
  TextStream s;
  EXPECT_EQ(s.Append("Hello"), "Hello");
  EXPECT_EQ(s.Append(" world"), " world");
  EXPECT_EQ(s.Flush(), "");
}

TEST(TextStreamTest, HoldsIncompleteUtf8UntilComplete) {
  TextStream s;
  const std::string euro = "\xE2\x82\xAC";  // U+20AC in three bytes, split over three pieces
  EXPECT_EQ(s.Append("a" + euro.substr(0, 1)), "a");
  EXPECT_EQ(s.Append(euro.substr(1, 1)), "");
  EXPECT_EQ(s.Append(euro.substr(2, 1) + "b"), euro + "b");
}

TEST(TextStreamTest, FourByteSequenceSplitAcrossPieces) {
  TextStream s;
  const std::string emoji = "\xF0\x9F\x98\x80";
  EXPECT_EQ(s.Append(emoji.substr(0, 3)), "");
  EXPECT_EQ(s.Append(emoji.substr(3)), emoji);
}

TEST(TextStreamTest, InvalidBytesAreNotHeldForever) {
  TextStream s;
  EXPECT_EQ(s.Append("\x80x"), "\x80x");        // stray continuation byte
  EXPECT_EQ(s.Append("\xFF"), "\xFF");          // never a valid lead byte
  EXPECT_EQ(s.Append("\xE2\x41"), "\xE2\x41");  // lead byte followed by ASCII: broken, emitted
}

TEST(TextStreamTest, FlushEmitsHeldIncompleteBytes) {
  TextStream s;
  EXPECT_EQ(s.Append("x\xE2\x82"), "x");
  EXPECT_EQ(s.Flush(), "\xE2\x82");
}

TEST(IncompleteUtf8SuffixTest, CountsOnlyValidPrefixes) {
  EXPECT_EQ(IncompleteUtf8Suffix(""), 0u);
  EXPECT_EQ(IncompleteUtf8Suffix("abc"), 0u);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xC3"), 1u);
  EXPECT_EQ(IncompleteUtf8Suffix("a\xC3\xA9"), 0u);
  EXPECT_EQ(IncompleteUtf8Suffix("\xF0\x9F\x98"), 3u);
  EXPECT_EQ(IncompleteUtf8Suffix("\xF0\x9F\x98\x80"), 0u);
}

TEST(TextStreamTest, StopStringIsNotEmitted) {
  TextStream s({"STOP"});
  EXPECT_EQ(s.Append("one two STOP three"), "one two ");
  EXPECT_TRUE(s.stopped());
  EXPECT_EQ(s.Append("more"), "");
  EXPECT_EQ(s.Flush(), "");
}

TEST(TextStreamTest, StopStringSplitAcrossPieces) {
  TextStream s({"</end>"});
  EXPECT_EQ(s.Append("text </"), "text ");  // "</" may start the stop string: held
  EXPECT_FALSE(s.stopped());
  EXPECT_EQ(s.Append("en"), "");
  EXPECT_EQ(s.Append("d> tail"), "");
  EXPECT_TRUE(s.stopped());
}

TEST(TextStreamTest, HeldPrefixIsReleasedWhenItDiverges) {
  TextStream s({"</end>"});
  EXPECT_EQ(s.Append("a </e"), "a ");
  EXPECT_EQ(s.Append("x"), "</ex");
  EXPECT_FALSE(s.stopped());
}

TEST(TextStreamTest, HeldPrefixIsFlushedAtTheEnd) {
  TextStream s({"###"});
  EXPECT_EQ(s.Append("done ##"), "done ");
  EXPECT_EQ(s.Flush(), "##");
}

TEST(TextStreamTest, EarliestOfSeveralStopStringsWins) {
  TextStream s({"bb", "a"});
  EXPECT_EQ(s.Append("xxbbya"), "xx");
}

}  // namespace
}  // namespace snug::engine
