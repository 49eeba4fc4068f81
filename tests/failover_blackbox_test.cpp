// The otpd binary with sms_backend = "twilio,vonage" against a failing
// fake Twilio and a working fake Vonage on 127.0.0.1: the send fails over,
// and the audit, the metrics, the log and `otpd sms test --provider` show
// which provider took it.
#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>

#include "fake_twilio.h"
#include "fake_vonage.h"
#include "otpd_process.h"
#include "test_tls.h"
#include "test_util.h"

namespace otpd {
namespace {

std::string FailoverConfig(const TempDir& dir) {
  const std::string path = dir.File("failover.conf");
  std::ofstream(path) << "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" << dir.File("otpd.db")
                      << "\"\nsms_backend = \"twilio,vonage\"\nsms_timeout_ms = 5000\n"
                      << "sms_breaker_failures = 1\nsms_breaker_cooloff = 600\n"
                      << "send_cooldown = 0\nsend_user_cap = 0\nsend_phone_cap = 0\n"
                      << "send_ip_cap = 0\n"
                      << "\n[users]\nabc = \"+12015551111\"\n";
  return path;
}

std::vector<std::string> ProviderEnv(const FakeTwilio& twilio, const FakeVonage& vonage,
                                     const TestCa& ca, const std::string& secret_file) {
  return {"OTPD_TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef",
          "OTPD_TWILIO_AUTH_TOKEN=fo-token-0123456789",
          "OTPD_TWILIO_PHONE_NUMBER=+12085551111",
          "OTPD_TWILIO_API_BASE=" + twilio.base(),
          "OTPD_TWILIO_CA_FILE=" + ca.cert_file(),
          "OTPD_VONAGE_API_KEY=key123",
          "OTPD_VONAGE_API_SECRET_FILE=" + secret_file,
          "OTPD_VONAGE_FROM=otpd",
          "OTPD_VONAGE_API_BASE=" + vonage.base(),
          "OTPD_VONAGE_CA_FILE=" + ca.cert_file()};
}

TEST_CASE("otpd binary: a send fails over from a failing Twilio to Vonage") {
  TempDir dir;
  TestCa ca(dir.path(), "fo");
  PemFiles pem = ca.Issue("provider", "IP:127.0.0.1");
  FakeTwilio twilio(pem);
  FakeVonage vonage(pem);
  const std::string secret_file = dir.File("vonage.secret");
  WriteFile(secret_file, "vonage-secret-0123456789\n");
  REQUIRE(chmod(secret_file.c_str(), 0600) == 0);
  const std::vector<std::string> env = ProviderEnv(twilio, vonage, ca, secret_file);
  twilio.Respond([](int, httplib::Response& res) {
    res.status = 401;
    res.set_content(TwilioErrorJson(20003, 401), "application/json");
  });
  const std::string conf = FailoverConfig(dir);

  // --provider picks one: Twilio's refusal is reported, Vonage sends.
  CommandResult r =
      RunOtpd(dir, {"sms", "test", "+12135554567", "--provider", "twilio", "--config", conf}, env);
  CHECK(r.exit_code == 1);
  CHECK(r.out.find("failed: backend=twilio,vonage provider_code=20003 provider=twilio") == 0);
  r = RunOtpd(dir, {"sms", "test", "+12135554567", "--provider", "vonage", "--config", conf}, env);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "sent: backend=twilio,vonage id=0C0000001 provider=vonage\n");
  REQUIRE(vonage.requests().size() == 1);
  CHECK(vonage.requests()[0].at("api_secret") == "vonage-secret-0123456789");
  r = RunOtpd(dir, {"sms", "test", "+12135554567", "--provider", "bird", "--config", conf}, env);
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("unknown SMS provider") != std::string::npos);

  OtpdProcess otpd(dir, "a", {"serve", "--config", conf}, env);
  auto cli = otpd.Client();
  auto res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(vonage.requests().size() == 2);
  CHECK(vonage.requests()[1].at("to") == "12015551111");
  // One fault opened Twilio's circuit: /readyz names it and stays 200.
  res = cli.Get("/readyz");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find(R"("degraded_providers":["twilio"])") != std::string::npos);
  res = cli.Get("/metrics");
  REQUIRE(res);
  CHECK(res->body.find("otpd_sms_failovers_total{provider=\"twilio\"} 1\n") != std::string::npos);
  CHECK(res->body.find("otpd_sms_sent_total{provider=\"vonage\"} 1\n") != std::string::npos);
  CHECK(res->body.find("otpd_sms_provider_circuit_open{provider=\"twilio\"} 1\n") !=
        std::string::npos);
  // The next send skips Twilio altogether.
  const size_t twilio_before = twilio.requests().size();
  res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(twilio.requests().size() == twilio_before);
  CHECK(otpd.Terminate() == 0);
  const std::string log = otpd.ReadLog();
  CHECK(log.find("msg=\"sms sent after failover\"") != std::string::npos);
  CHECK(log.find("provider=vonage failed=twilio") != std::string::npos);
  CHECK(log.find("vonage-secret-0123456789") == std::string::npos);
  CHECK(log.find("fo-token-0123456789") == std::string::npos);

  r = RunOtpd(dir, {"audit", "--user", "abc", "--config", conf}, env);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("\tsend\tsent via vonage\n") != std::string::npos);
}

}  // namespace
}  // namespace otpd
