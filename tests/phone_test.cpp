#include "core/phone.h"

#include <doctest/doctest.h>

namespace otpd {

TEST_CASE("IsE164 accepts '+', a non-zero digit, and 2..15 digits in all") {
  CHECK(IsE164("+11111111111"));
  CHECK(IsE164("+12"));
  CHECK(IsE164("+123456789012345"));
  CHECK_FALSE(IsE164("+1234567890123456"));  // 16 digits
  CHECK_FALSE(IsE164("+1"));
  CHECK_FALSE(IsE164("11111111111"));
  CHECK_FALSE(IsE164("+01111111111"));
  CHECK_FALSE(IsE164("+1 111 111"));
  CHECK_FALSE(IsE164("+1-111-1111"));
  CHECK_FALSE(IsE164(""));
  CHECK_FALSE(IsE164("+"));
  CHECK_FALSE(IsE164(std::string("+1111\0" "111", 9)));
}

TEST_CASE("MaskPhone keeps '+', the first digit and the last three") {
  CHECK(MaskPhone("+11111111111") == "+1*******111");
  CHECK(MaskPhone("+447911123456") == "+4********456");
  CHECK(MaskPhone("+12345") == "+1*345");
  CHECK(MaskPhone("+1234") == "+1***");  // too short to show a tail
  CHECK(MaskPhone("+12") == "+1*");
  CHECK(MaskPhone("not a phone") == "***");
}

TEST_CASE("NormalizeUserId lowers ASCII letters only") {
  CHECK(NormalizeUserId("ABC") == "abc");
  CHECK(NormalizeUserId("John.Doe_42") == "john.doe_42");
  CHECK(NormalizeUserId("\xC3\x89lise") == "\xC3\x89lise");  // UTF-8 kept intact
  CHECK(NormalizeUserId("") == "");
}

TEST_CASE("ParseCountryCodes: 1 to 3 digits, comma-separated, spaces allowed") {
  std::vector<std::string> codes;
  REQUIRE(ParseCountryCodes("1, 44,358 ", &codes).ok());
  CHECK(codes == std::vector<std::string>{"1", "44", "358"});
  for (const char* bad : {"", "1,", ",1", "044", "1234", "+1", "1;44", "4 4", "x"}) {
    INFO(bad);
    CHECK(ParseCountryCodes(bad, &codes).IsInvalidArgument());
  }
}

}  // namespace otpd
