#include "core/status.h"

#include <gtest/gtest.h>

namespace snug {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument("odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  SNUG_ASSIGN_OR_RETURN(int half, Half(x));
  SNUG_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

TEST(Status, OkAndErrorCarryCodeAndMessage) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = Status::DoesNotFit("needs 15.1 GiB");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), Code::kDoesNotFit);
  EXPECT_EQ(s.ToString(), "does not fit: needs 15.1 GiB");
  EXPECT_EQ(s.WithContext("plan").message(), "plan: needs 15.1 GiB");
}

TEST(Result, PropagatesTheFirstError) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);  // 6 -> 3 -> odd
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "odd");
  EXPECT_EQ(r.value_or(-1), -1);
}

}  // namespace
}  // namespace snug
