// X-Twilio-Signature against vectors made outside otpd: Twilio's documented
// example and Python's hmac (tests/twilio_sign.h).
#include "http/twilio_signature.h"

#include <doctest/doctest.h>

#include "twilio_sign.h"

namespace otpd {
namespace {

// Twilio's own example (docs "Webhooks security"): token 12345, this URL and
// these parameters sign as 0/KCTR6DLpKmkAf8muzZqo1nDgQ=.
const FormFields kDocParams = {{"CallSid", "CA1234567890ABCDE"},
                               {"Caller", "+12349013030"},
                               {"Digits", "1234"},
                               {"From", "+12349013030"},
                               {"To", "+18005551212"}};
constexpr char kDocUrl[] = "https://mycompany.com/myapp.php?foo=1&bar=2";
constexpr char kDocSignature[] = "0/KCTR6DLpKmkAf8muzZqo1nDgQ=";

TEST_CASE("twilio signature: Twilio's documented example") {
  CHECK(TwilioSignature("12345", kDocUrl, kDocParams) == kDocSignature);
  CHECK(TwilioSignatureValid("12345", kDocUrl, kDocParams, kDocSignature));
  // Parameter order does not matter: they are sorted.
  FormFields reversed(kDocParams.rbegin(), kDocParams.rend());
  CHECK(TwilioSignatureValid("12345", kDocUrl, reversed, kDocSignature));
}

TEST_CASE("twilio signature: agrees with Python's hmac on receipts") {
  const std::vector<std::pair<std::string, FormFields>> cases = {
      {"https://otp.example.com/twilio/status",
       {{"MessageSid", "SM0123456789abcdef0123456789abcdef"},
        {"MessageStatus", "delivered"},
        {"AccountSid", "AC0123"},
        {"SmsStatus", "delivered"},
        {"ApiVersion", "2010-04-01"}}},
      {"https://example.com:8443/otp/twilio/status",
       {{"MessageSid", "SMabc"},
        {"MessageStatus", "undelivered"},
        {"ErrorCode", "30003"},
        {"To", "+15551234567"},
        {"Body", "caf\xC3\xA9 & more = 100%"}}},
      {"http://127.0.0.1:9/twilio/status", {{"B", "2"}, {"A", "1"}, {"A", "0"}, {"a", "x"}}},
      {"https://example.com/twilio/status", {}},
  };
  const std::string token = "f00dfeedf00dfeedf00dfeedf00dfeed";
  for (const auto& [url, params] : cases) {
    CAPTURE(url);
    const std::string python = PythonTwilioSignature(token, url, params);
    CHECK(python.size() == 28);
    CHECK(TwilioSignature(token, url, params) == python);
    CHECK(TwilioSignatureValid(token, url, params, python));
  }
}

TEST_CASE("twilio signature: anything changed is refused") {
  const std::string good = TwilioSignature("12345", kDocUrl, kDocParams);
  CHECK_FALSE(TwilioSignatureValid("12346", kDocUrl, kDocParams, good));
  CHECK_FALSE(TwilioSignatureValid("12345", "https://mycompany.com/myapp.php?foo=1&bar=3",
                                   kDocParams, good));
  CHECK_FALSE(TwilioSignatureValid("12345", "http://mycompany.com/myapp.php?foo=1&bar=2",
                                   kDocParams, good));
  FormFields changed = kDocParams;
  changed[2].second = "1235";
  CHECK_FALSE(TwilioSignatureValid("12345", kDocUrl, changed, good));
  FormFields added = kDocParams;
  added.emplace_back("Extra", "");
  CHECK_FALSE(TwilioSignatureValid("12345", kDocUrl, added, good));
  CHECK_FALSE(TwilioSignatureValid("12345", kDocUrl, kDocParams, ""));
  CHECK_FALSE(TwilioSignatureValid("12345", kDocUrl, kDocParams, good.substr(0, 27)));
  CHECK_FALSE(TwilioSignatureValid("12345", kDocUrl, kDocParams, good + "="));
  CHECK_FALSE(
      TwilioSignatureValid("", kDocUrl, kDocParams, TwilioSignature("", kDocUrl, kDocParams)));
}

TEST_CASE("form bodies: '+' is a space, %XX a byte, bad escapes refused") {
  FormFields f;
  REQUIRE(ParseFormBody("MessageSid=SM1&Body=a+b%2Bc%20d&Empty=&Flag&To=%2B1555", &f).ok());
  const FormFields want = {
      {"MessageSid", "SM1"}, {"Body", "a b+c d"}, {"Empty", ""}, {"Flag", ""}, {"To", "+1555"}};
  CHECK(f == want);
  CHECK(ParseFormBody("", &f).ok());
  CHECK(f.empty());
  CHECK_FALSE(ParseFormBody("a=%2", &f).ok());
  CHECK_FALSE(ParseFormBody("a=%zz", &f).ok());
}

}  // namespace
}  // namespace otpd
