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

TEST_CASE("PhonePlansId names the library loaded: non-empty, versioned, the same every call") {
  const std::string& id = otpd::PhonePlansId();
  CHECK(id.size() == 18);  // "1:" and 16 hex digits of a SHA-256
  CHECK(id.rfind("1:", 0) == 0);
  CHECK(id.find_first_not_of("0123456789abcdef", 2) == std::string::npos);
  CHECK(&otpd::PhonePlansId() == &id);
}

TEST_CASE("PhoneTypeFromName reads back every PhoneTypeName, and nothing else") {
  for (int t = 0; t <= static_cast<int>(otpd::PhoneType::kUnknown); t++) {
    const auto type = static_cast<otpd::PhoneType>(t);
    otpd::PhoneType read = otpd::PhoneType::kUnknown;
    REQUIRE(otpd::PhoneTypeFromName(otpd::PhoneTypeName(type), &read));
    CHECK(read == type);
  }
  otpd::PhoneType read = otpd::PhoneType::kMobile;
  CHECK_FALSE(otpd::PhoneTypeFromName("Mobile", &read));
  CHECK_FALSE(otpd::PhoneTypeFromName("", &read));
  CHECK(read == otpd::PhoneType::kMobile);
}

TEST_CASE("RememberParsedPhone: ParsePhone then answers what was remembered, without parsing") {
  // A number ParsePhone would refuse, so the answer can only be the
  // remembered one (the text is used by no other test: the cache is
  // process-wide).
  otpd::PhoneInfo before;
  REQUIRE_FALSE(otpd::ParsePhone("+11115550199", &before).ok());
  otpd::PhoneInfo remembered;
  remembered.e164 = "+11115550199";
  remembered.region = "US";
  remembered.type = otpd::PhoneType::kVoip;
  otpd::RememberParsedPhone("+11115550199", remembered);
  otpd::PhoneInfo info;
  REQUIRE(otpd::ParsePhone("+11115550199", &info).ok());
  CHECK(info.e164 == "+11115550199");
  CHECK(info.region == "US");
  CHECK(info.type == otpd::PhoneType::kVoip);
}
