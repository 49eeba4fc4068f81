// sms_backend as a failover list, the Vonage keys and its credential.
#include <doctest/doctest.h>

#include <fstream>

#include "config/config.h"
#include "config/credentials.h"
#include "test_util.h"

namespace otpd {
namespace {

Status ParseArgs(std::vector<std::string> args, Invocation* inv) {
  std::vector<std::string> env = {"OTPD_DEFAULT_CONFIG="};
  std::vector<const char*> argv = {"otpd"};
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return ParseInvocation(static_cast<int>(argv.size() - 1), argv.data(), &env, inv);
}

const std::vector<std::string> kTwilio = {"--twilio-account-sid",  "AC1",
                                          "--twilio-auth-token",   "tok",
                                          "--twilio-phone-number", "+12085551111"};
const std::vector<std::string> kVonage = {"--vonage-api-key", "k",   "--vonage-api-secret", "s",
                                          "--vonage-from",    "otpd"};

std::vector<std::string> Join(std::vector<std::string> a, const std::vector<std::string>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

TEST_CASE("sms_backend: one provider, a failover list, auto") {
  Invocation inv;
  REQUIRE(ParseArgs(Join(Join({"--sms-backend", "twilio, vonage"}, kTwilio), kVonage), &inv).ok());
  CHECK(EffectiveSmsBackend(inv.config) == "twilio,vonage");
  CHECK(SmsBackends(inv.config) == std::vector<std::string>{"twilio", "vonage"});
  REQUIRE(ParseArgs(Join({"--sms-backend", "vonage"}, kVonage), &inv).ok());
  CHECK(SmsBackends(inv.config) == std::vector<std::string>{"vonage"});
  REQUIRE(ParseArgs(kVonage, &inv).ok());
  CHECK(EffectiveSmsBackend(inv.config) == "vonage");
  REQUIRE(ParseArgs(Join(kTwilio, kVonage), &inv).ok());
  CHECK(EffectiveSmsBackend(inv.config) == "twilio,vonage");
  REQUIRE(ParseArgs(kTwilio, &inv).ok());
  CHECK(EffectiveSmsBackend(inv.config) == "twilio");
  REQUIRE(ParseArgs({}, &inv).ok());
  CHECK(SmsBackends(inv.config) == std::vector<std::string>{"console"});
}

TEST_CASE("sms_backend: bad lists and incomplete providers name the key") {
  Invocation inv;
  for (const char* bad : {"twilio,twilio", "twilio,console", "bird", "twilio,", ""}) {
    CAPTURE(bad);
    Status s = ParseArgs(Join(Join({"--sms-backend", bad}, kTwilio), kVonage), &inv);
    CHECK(s.IsInvalidArgument());
    CHECK(s.message().find("sms_backend") != std::string::npos);
  }
  Status s = ParseArgs(Join({"--sms-backend", "twilio,vonage"}, kTwilio), &inv);
  CHECK(s.message().find("vonage_api_key is not set") != std::string::npos);
  s = ParseArgs({"--sms-backend", "vonage", "--vonage-api-key", "k", "--vonage-from", "o"}, &inv);
  CHECK(s.message().find("vonage_api_secret") != std::string::npos);
  s = ParseArgs({"--sms-backend", "vonage", "--vonage-api-key", "k", "--vonage-api-secret", "s"},
                &inv);
  CHECK(s.message().find("vonage_from is not set") != std::string::npos);
  s = ParseArgs(Join(kVonage, {"--vonage-api-secret-file", "/x"}), &inv);
  CHECK(s.message().find("both set") != std::string::npos);
  s = ParseArgs(Join(kVonage, {"--sms-breaker-failures", "0"}), &inv);
  CHECK(s.message().find("sms_breaker_failures") != std::string::npos);
  s = ParseArgs(Join(kVonage, {"--vonage-api-base", "http://rest.nexmo.com"}), &inv);
  CHECK(s.message().find("vonage_api_base") != std::string::npos);
}

TEST_CASE("vonage_api_secret: from the systemd credential, redacted in check-config") {
  TempDir dir;
  std::ofstream(dir.path() + "/vonage_api_secret") << "cred-secret-0123\n";
  Config c;
  REQUIRE(ReadSystemdCredentials(dir.path(), &c).ok());
  CHECK(c.vonage_api_secret == "cred-secret-0123");
  Config set;
  set.vonage_api_secret = "mine";
  REQUIRE(ReadSystemdCredentials(dir.path(), &set).ok());
  CHECK(set.vonage_api_secret == "mine");
  CHECK(IsSecretKey("vonage_api_secret"));
  CHECK(DescribeConfig(c).find("cred-secret-0123") == std::string::npos);
}

}  // namespace
}  // namespace otpd
