#include "core/phone.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <set>

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
  CHECK_FALSE(
      IsE164(std::string("+1111\0"
                         "111",
                         9)));
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

TEST_CASE("NormalizePhone: every written form of a number becomes its E.164") {
  for (const char* written : {"+1 (415) 555-0123", "+14155550123", "+1-415-555-0123",
                              "+1.415.555.0123", " +1 415 555 0123"}) {
    CAPTURE(written);
    std::string e164;
    REQUIRE(NormalizePhone(written, &e164).ok());
    CHECK(e164 == "+14155550123");
  }
  std::string e164;
  REQUIRE(NormalizePhone("+44 020 7946 0018", &e164).ok());  // trunk 0 dropped
  CHECK(e164 == "+442079460018");
}

TEST_CASE("NormalizePhone refuses invalid numbers, extensions, premium-rate and shared-cost") {
  std::string e164 = "unchanged";
  for (const char* bad : {"+11111111111",                            // area code 111 does not exist
                          "4155550123",                              // no country code
                          "+1 415 555 0123 ext. 5", "+19005550111",  // premium rate
                          "+448712345678",                           // GB shared cost (087)
                          "", "+", "not a phone", "+1 415 555 01234567"}) {
    CAPTURE(bad);
    Status s = NormalizePhone(bad, &e164);
    CHECK(s.IsInvalidArgument());
    CHECK(e164 == "unchanged");
  }
}

TEST_CASE("ParsePhone tells the region apart inside one calling code") {
  PhoneInfo info;
  REQUIRE(ParsePhone("+18762101234", &info).ok());
  CHECK(info.region == "JM");  // +1 876: Jamaica, not the US
  REQUIRE(ParsePhone("+14155550123", &info).ok());
  CHECK(info.region == "US");
  REQUIRE(ParsePhone("+445612345678", &info).ok());
  CHECK(info.type == PhoneType::kVoip);
  REQUIRE(ParsePhone("+447640123456", &info).ok());
  CHECK(info.type == PhoneType::kPager);
  REQUIRE(ParsePhone("+447012345678", &info).ok());
  CHECK(info.type == PhoneType::kPersonal);
}

TEST_CASE("ParseRegions and ParsePhoneTypes: known names only, each bad one named") {
  std::vector<std::string> regions;
  REQUIRE(ParseRegions("US, ca", &regions).ok());
  CHECK(regions == std::vector<std::string>{"US", "CA"});
  for (const char* bad : {"", "US,", "USA", "XX", "1"}) {
    CAPTURE(bad);
    CHECK(ParseRegions(bad, &regions).IsInvalidArgument());
  }
  std::vector<PhoneType> types;
  REQUIRE(ParsePhoneTypes("voip, pager,personal", &types).ok());
  CHECK(types == std::vector<PhoneType>{PhoneType::kVoip, PhoneType::kPager, PhoneType::kPersonal});
  Status s = ParsePhoneTypes("voip,mobile", &types);
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("'mobile'") != std::string::npos);
}

TEST_CASE("RegionsOfCountryCode: '1' is many regions, '33' one") {
  const std::vector<std::string> nanp = RegionsOfCountryCode("1");
  CHECK(nanp.size() > 10);
  CHECK(std::count(nanp.begin(), nanp.end(), "JM") == 1);
  CHECK(RegionsOfCountryCode("33") == std::vector<std::string>{"FR"});
  CHECK(RegionsOfCountryCode("x").empty());
}

TEST_CASE("PlausiblePhone: a valid mobile of the region, as long as real ones, stable per seed") {
  for (const char* region : {"US", "GB", "DE", "FR", "IN", "BR", "CA"}) {
    CAPTURE(region);
    std::set<std::string> seen;
    for (int i = 0; i < 20; i++) {
      const std::string seed = "seed" + std::to_string(i);
      const std::string phone = PlausiblePhone(region, seed);
      CHECK(PlausiblePhone(region, seed) == phone);
      PhoneInfo info;
      REQUIRE(ParsePhone(phone, &info).ok());
      CHECK(info.region == region);
      seen.insert(phone);
    }
    CHECK(seen.size() > 10);  // the digits vary with the seed
  }
  CHECK(PlausiblePhone("GB", "x").size() == std::string("+447400123456").size());
}

}  // namespace otpd

TEST_CASE("ParsePhone answers a number it parsed before the same way, and still refuses") {
  otpd::PhoneInfo first, again;
  REQUIRE(otpd::ParsePhone("+44 20 7946 0018", &first).ok());
  REQUIRE(otpd::ParsePhone("+44 20 7946 0018", &again).ok());
  CHECK(again.e164 == "+442079460018");
  CHECK(again.e164 == first.e164);
  CHECK(again.region == "GB");
  CHECK(again.type == first.type);
  // A refusal is not remembered as a success, however often it is asked.
  for (int i = 0; i < 3; i++) {
    otpd::PhoneInfo info;
    CHECK(!otpd::ParsePhone("+11111111111", &info).ok());
    CHECK(info.e164.empty());
  }
  // Many distinct numbers (more than the cache holds) all parse right.
  for (int i = 0; i < 20000; i++) {
    char text[32];
    snprintf(text, sizeof(text), "+1415555%04d", i % 10000);
    otpd::PhoneInfo info;
    REQUIRE(otpd::ParsePhone(text, &info).ok());
    CHECK(info.e164 == text);
  }
}
