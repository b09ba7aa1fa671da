#include "core/size.h"

#include <gtest/gtest.h>

namespace snug {
namespace {

TEST(ParseSize, AcceptsTheSpecForms) {
  EXPECT_EQ(*ParseSize("6GiB"), 6 * kGiB);
  EXPECT_EQ(*ParseSize("512MiB"), 512 * kMiB);
  EXPECT_EQ(*ParseSize("6G"), 6 * kGiB);
  EXPECT_EQ(*ParseSize("4096"), 4096u);
  EXPECT_EQ(*ParseSize(" 1.5 gib "), 3 * kGiB / 2);
  EXPECT_EQ(*ParseSize("2GB"), 2000000000u);
  EXPECT_EQ(*ParseSize("0"), 0u);
}

TEST(ParseSize, RejectsGarbageWithASentence) {
  for (const char* bad : {"", "GiB", "-1G", "6XB", "1.2.3G", "1e999", "1.5", "99999999999T"}) {
    Result<uint64_t> r = ParseSize(bad);
    EXPECT_FALSE(r.ok()) << bad;
    if (!r.ok()) {
      EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
      EXPECT_NE(r.status().message().find("invalid size"), std::string::npos);
    }
  }
}

TEST(FormatSize, UsesBinaryUnitsWithOneDecimal) {
  EXPECT_EQ(FormatSize(6 * kGiB), "6.0 GiB");
  EXPECT_EQ(FormatSize(512 * kMiB), "512.0 MiB");
  EXPECT_EQ(FormatSize(830), "830 B");
  EXPECT_EQ(FormatSignedSize(-static_cast<int64_t>(kGiB)), "-1.0 GiB");
}

}  // namespace
}  // namespace snug
