// The Twilio sender against a fake Twilio: an in-process HTTPS server on
// 127.0.0.1 with certificates made at run time (tests/test_tls.h).
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <otpd_httplib.h>

#include <atomic>
#include <cstdio>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_twilio.h"
#include "otp/sms.h"
#include "otp_stack.h"
#include "test_tls.h"
#include "test_util.h"

namespace otpd {
namespace {

constexpr char kSid[] = "AC0123456789abcdef0123456789abcdef";
constexpr char kToken[] = "token-0123456789abcdef";

// One CA, a good server certificate, a certificate from another CA and
// one with the wrong host name, made once per test.
struct Certs {
  TempDir dir;
  TestCa ca{dir.path(), "good"};
  TestCa other_ca{dir.path(), "other"};
  PemFiles good = ca.Issue("server", "IP:127.0.0.1,DNS:localhost");
  PemFiles foreign = other_ca.Issue("foreign", "IP:127.0.0.1,DNS:localhost");
  PemFiles wrong_name = ca.Issue("wrong-name", "DNS:api.example.invalid");
};

TwilioOptions Options(const FakeTwilio& fake, const Certs& certs) {
  TwilioOptions o;
  o.account_sid = kSid;
  o.auth_token = kToken;
  o.from = "+12085551111";
  o.api_base = fake.base();
  o.ca_file = certs.ca.cert_file();
  o.connect_timeout_ms = 1000;
  o.timeout_ms = 3000;
  return o;
}

std::unique_ptr<SmsSender> MustSender(const TwilioOptions& o) {
  std::unique_ptr<SmsSender> sender;
  Status s = NewTwilioSmsSender(o, &sender);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return sender;
}

std::string Basic(const std::string& user, const std::string& password) {
  const std::string plain = user + ":" + password;
  std::string out(4 * ((plain.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                                reinterpret_cast<const unsigned char*>(plain.data()),
                                static_cast<int>(plain.size()));
  out.resize(static_cast<size_t>(n));
  return "Basic " + out;
}

// True while a loopback connection to `port` is in CLOSE_WAIT on our side
// (/proc/net/tcp): the server closed it, and the client has not yet.
bool ServerClosedOn(int port) {
  char remote[32];
  snprintf(remote, sizeof remote, "0100007F:%04X", port);
  std::ifstream tcp("/proc/net/tcp");
  std::string line;
  std::getline(tcp, line);  // the header
  while (std::getline(tcp, line)) {
    std::istringstream fields(line);
    std::string slot, local, peer, state;
    fields >> slot >> local >> peer >> state;
    if (peer == remote && state == "08") return true;  // TCP_CLOSE_WAIT
  }
  return false;
}

TEST_CASE("twilio: a send posts the exact form with Basic auth and keeps the sid") {
  Certs certs;
  FakeTwilio fake(certs.good);
  auto sender = MustSender(Options(fake, certs));
  SmsReceipt receipt;
  Status s = sender->Send("+12135554567", "Tu código es 123456", &receipt);
  REQUIRE(s.ok());
  CHECK(receipt.provider_id == "SM0123456789abcdef0123456789abcdef");
  CHECK(receipt.provider_code == 0);
  auto reqs = fake.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].path == std::string("/2010-04-01/Accounts/") + kSid + "/Messages.json");
  CHECK(reqs[0].authorization == Basic(kSid, kToken));
  CHECK(reqs[0].content_type == "application/x-www-form-urlencoded");
  CHECK(reqs[0].body ==
        "To=%2B12135554567&Body=Tu%20c%C3%B3digo%20es%20123456&From=%2B12085551111");
  CHECK(reqs[0].form["Body"] == "Tu código es 123456");
  CHECK(reqs[0].form.count("MessagingServiceSid") == 0);
  CHECK(reqs[0].form.count("StatusCallback") == 0);
}

TEST_CASE("twilio: API key auth, messaging service and status callback") {
  Certs certs;
  FakeTwilio fake(certs.good);
  TwilioOptions o = Options(fake, certs);
  o.auth_token.clear();
  o.api_key_sid = "SK0123456789abcdef0123456789abcdef";
  o.api_key_secret = "key-secret-abcdef";
  o.messaging_service_sid = "MG0123456789abcdef0123456789abcdef";
  o.status_callback = "https://example.com/twilio/status?x=1";
  auto sender = MustSender(o);
  SmsReceipt receipt;
  REQUIRE(sender->Send("+12135554567", "code 1", &receipt).ok());
  auto reqs = fake.requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].path == std::string("/2010-04-01/Accounts/") + kSid + "/Messages.json");
  CHECK(reqs[0].authorization == Basic(o.api_key_sid, o.api_key_secret));
  CHECK(reqs[0].form["MessagingServiceSid"] == o.messaging_service_sid);
  CHECK(reqs[0].form.count("From") == 0);
  CHECK(reqs[0].form["StatusCallback"] == o.status_callback);
}

TEST_CASE("twilio: 4xx errors are answered at once with Twilio's code, never retried") {
  Certs certs;
  FakeTwilio fake(certs.good);
  for (auto [code, http] : std::vector<std::pair<int, int>>{
           {21211, 400}, {21408, 400}, {21608, 400}, {21610, 400}, {21614, 400}, {20003, 401}}) {
    CAPTURE(code);
    const size_t before = fake.requests().size();
    fake.Respond([code = code, http = http](int, httplib::Response& res) {
      res.status = http;
      res.set_content(TwilioErrorJson(code, http), "application/json");
    });
    auto sender = MustSender(Options(fake, certs));
    SmsReceipt receipt;
    Status s = sender->Send("+12135554567", "code 1", &receipt);
    CHECK_FALSE(s.ok());
    CHECK(receipt.provider_code == code);
    CHECK(receipt.provider_id.empty());
    // The number's own refusals; a trial-account limit or bad credentials
    // are the provider's.
    CHECK(receipt.number_refused == (code != 21608 && code != 20003));
    CHECK(s.message().find(std::to_string(code)) != std::string::npos);
    CHECK(s.message().find("+12135554567") == std::string::npos);  // masked
    CHECK(fake.requests().size() - before == 1);
  }
}

TEST_CASE("twilio: 429 and 5xx are retried, at most twice") {
  Certs certs;
  FakeTwilio fake(certs.good);
  auto sender = MustSender(Options(fake, certs));
  SUBCASE("429 then 503 then success") {
    fake.Respond([](int n, httplib::Response& res) {
      if (n == 0) {
        res.status = 429;
        res.set_content(TwilioErrorJson(20429, 429), "application/json");
      } else if (n == 1) {
        res.status = 503;
        res.set_content("busy", "text/plain");
      }
    });
    SmsReceipt receipt;
    CHECK(sender->Send("+12135554567", "code 1", &receipt).ok());
    CHECK(receipt.provider_code == 0);
    CHECK(!receipt.provider_id.empty());
    CHECK(fake.requests().size() == 3);
  }
  SUBCASE("always 500: three requests, then the failure") {
    fake.Respond([](int, httplib::Response& res) {
      res.status = 500;
      res.set_content(TwilioErrorJson(20500, 500), "application/json");
    });
    SmsReceipt receipt;
    CHECK_FALSE(sender->Send("+12135554567", "code 1", &receipt).ok());
    CHECK(receipt.provider_code == 20500);
    CHECK(fake.requests().size() == 3);
  }
}

TEST_CASE("twilio: an oversized answer is dropped, not read whole") {
  Certs certs;
  FakeTwilio fake(certs.good);
  fake.Respond([](int, httplib::Response& res) {
    res.status = 400;
    res.set_content(std::string(1 << 20, 'x'), "application/json");
  });
  auto sender = MustSender(Options(fake, certs));
  SmsReceipt receipt;
  Status s = sender->Send("+12135554567", "code 1", &receipt);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("larger than") != std::string::npos);
  CHECK(fake.requests().size() == 1);
}

TEST_CASE("twilio: a refused connection is retried, then fails within the deadline") {
  Certs certs;
  int port = 0;
  {
    FakeTwilio closed(certs.good);
    port = closed.port();
  }  // nothing listens on `port` now
  TwilioOptions o;
  o.account_sid = kSid;
  o.auth_token = kToken;
  o.from = "+12085551111";
  o.api_base = "https://127.0.0.1:" + std::to_string(port);
  o.ca_file = certs.ca.cert_file();
  o.timeout_ms = 2000;
  FakeClock clock;  // the backoffs move it instead of waiting
  o.clock = &clock;
  auto sender = MustSender(o);
  SmsReceipt receipt;
  Status s = sender->Send("+12135554567", "code 1", &receipt);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("Could not establish connection") != std::string::npos);
  CHECK(receipt.provider_code == 0);
  // Two backoffs, 100 then 300 ms: both retries happened, and no third.
  CHECK(clock.slept_micros() == 400 * 1000);
}

TEST_CASE("twilio: a server that never answers is abandoned at the deadline") {
  Certs certs;
  FakeTwilio fake(certs.good);
  fake.Hang();
  TwilioOptions o = Options(fake, certs);
  o.timeout_ms = 600;
  FakeClock clock;
  o.clock = &clock;
  auto sender = MustSender(o);
  SmsReceipt receipt;
  Status s = sender->Send("+12135554567", "code 1", &receipt);
  // The read timed out: the request went out and the answer was waited
  // for, but not for the fake's 10 s hang, after which it answers 201.
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("Failed to read connection") != std::string::npos);
  // The request was sent: it may have been taken, so it is not repeated.
  CHECK(fake.requests().size() == 1);
  CHECK(clock.slept_micros() == 0);
  fake.Release();
}

TEST_CASE("twilio: a certificate from another CA or for another host is refused") {
  Certs certs;
  SUBCASE("another CA") {
    FakeTwilio fake(certs.foreign);
    auto sender = MustSender(Options(fake, certs));
    SmsReceipt receipt;
    Status s = sender->Send("+12135554567", "code 1", &receipt);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("certificate") != std::string::npos);
    CHECK(fake.requests().empty());
  }
  SUBCASE("host name mismatch") {
    FakeTwilio fake(certs.wrong_name);
    auto sender = MustSender(Options(fake, certs));
    SmsReceipt receipt;
    Status s = sender->Send("+12135554567", "code 1", &receipt);
    CHECK_FALSE(s.ok());
    CHECK(s.message().find("host name") != std::string::npos);
    CHECK(fake.requests().empty());
  }
  SUBCASE("the same server with the right CA works") {
    FakeTwilio fake(certs.good);
    auto sender = MustSender(Options(fake, certs));
    SmsReceipt receipt;
    CHECK(sender->Send("+12135554567", "code 1", &receipt).ok());
  }
}

TEST_CASE("twilio: one thread's sends share one keep-alive connection") {
  Certs certs;
  FakeTwilio fake(certs.good);
  auto sender = MustSender(Options(fake, certs));
  for (int i = 0; i < 20; ++i) {
    SmsReceipt receipt;
    REQUIRE(sender->Send("+12135554567", "code 1", &receipt).ok());
  }
  MESSAGE("connections for 20 sequential sends: ", fake.connections());
  CHECK(fake.requests().size() == 20);
  CHECK(fake.connections() == 1);
}

TEST_CASE("twilio: a pooled connection the server closed is replaced, not failed") {
  Certs certs;
  FakeTwilio fake(certs.good);  // closes idle connections after 1 s
  TwilioOptions o = Options(fake, certs);
  FakeClock clock;  // the pool's idle ages, and any backoff
  o.clock = &clock;
  std::function<void()> idle;
  SUBCASE("dropped from the pool before the server closes it") {
    o.max_idle_ms = 500;
    idle = [&] { clock.AdvanceMonotonicMicros(501 * 1000); };
  }
  SUBCASE("still pooled: the client sees it closed and reconnects") {
    // cpp-httplib 0.53 checks a kept connection before writing on it, so
    // the send goes out on a new one without a failed write and a retry.
    o.max_idle_ms = 60000;
    idle = [&] { REQUIRE(WaitUntil([&] { return ServerClosedOn(fake.port()); })); };
  }
  auto sender = MustSender(o);
  SmsReceipt receipt;
  REQUIRE(sender->Send("+12135554567", "code 1", &receipt).ok());
  idle();
  CHECK(sender->Send("+12135554567", "code 2", &receipt).ok());
  CHECK(clock.slept_micros() == 0);  // no retry (each first waits 100 ms)
  CHECK(fake.requests().size() == 2);
  CHECK(fake.connections() == 2);
}

TEST_CASE("twilio: keep-alive connections are reused across sends") {
  Certs certs;
  FakeTwilio fake(certs.good);
  auto sender = MustSender(Options(fake, certs));
  constexpr int kThreads = 4, kPerThread = 15;
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kPerThread; ++i) {
        SmsReceipt receipt;
        if (sender->Send("+12135554567", "code 1", &receipt).ok()) ++ok;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(ok == kThreads * kPerThread);
  CHECK(fake.requests().size() == kThreads * kPerThread);
  MESSAGE("connections for ", kThreads * kPerThread, " sends: ", fake.connections());
  CHECK(fake.connections() <= 2 * kThreads);
  CHECK(fake.connections() >= 1);
}

TEST_CASE("twilio: the factory refuses unusable options without echoing secrets") {
  TwilioOptions o;
  o.account_sid = kSid;
  o.auth_token = kToken;
  o.from = "+12085551111";
  std::unique_ptr<SmsSender> sender;
  CHECK(NewTwilioSmsSender(o, &sender).ok());
  TwilioOptions bad = o;
  bad.api_base = "http://api.twilio.com";
  CHECK(NewTwilioSmsSender(bad, &sender).IsInvalidArgument());
  bad = o;
  bad.api_base = "https://api.twilio.com/path";
  CHECK(NewTwilioSmsSender(bad, &sender).IsInvalidArgument());
  bad = o;
  bad.api_base = "https://api.dublin.ie1.twilio.com";
  CHECK(NewTwilioSmsSender(bad, &sender).ok());
  bad = o;
  bad.auth_token = "abc\r\nX-Injected: 1";
  Status s = NewTwilioSmsSender(bad, &sender);
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("Injected") == std::string::npos);
  bad = o;
  bad.from.clear();
  CHECK(NewTwilioSmsSender(bad, &sender).IsInvalidArgument());
  bad = o;
  bad.auth_token.clear();
  CHECK(NewTwilioSmsSender(bad, &sender).IsInvalidArgument());
  bad = o;
  bad.ca_file = "/nonexistent/ca.pem";
  CHECK(NewTwilioSmsSender(bad, &sender).IsInvalidArgument());
}

TEST_CASE("twilio: the auth token file is read without its newline") {
  TempDir dir;
  const std::string path = dir.File("token");
  FILE* f = fopen(path.c_str(), "w");
  REQUIRE(f != nullptr);
  fputs("secret-token-value\n", f);
  fclose(f);
  std::string token;
  REQUIRE(ReadTwilioAuthTokenFile(path, &token).ok());
  CHECK(token == "secret-token-value");
  CHECK_FALSE(ReadTwilioAuthTokenFile(dir.File("missing"), &token).ok());
}

TEST_CASE("twilio: the provider code reaches the /send-code answer and no code stays") {
  Certs certs;
  FakeTwilio fake(certs.good);
  auto sender = MustSender(Options(fake, certs));
  OtpStack stack;
  OtpOptions options;
  options.send_limits = SendLimits{0, 0, 0, 0, 0, 3600 * 1000};  // five sends to abc in a row
  OtpService service(options, stack.storage.get(), stack.users.get(), sender.get(), &stack.clock,
                     &stack.random, &stack.hasher);
  HttpApi api(&service, HttpApiOptions());
  for (auto [code, http] : std::vector<std::pair<int, int>>{
           {21211, 400}, {21408, 400}, {21608, 400}, {21610, 400}, {21614, 400}, {20003, 401}}) {
    CAPTURE(code);
    fake.Respond([code = code, http = http](int, httplib::Response& res) {
      res.status = http;
      res.set_content(TwilioErrorJson(code, http), "application/json");
    });
    const size_t before = fake.requests().size();
    HttpAnswer a =
        api.Handle(HttpRequest{"POST", "/send-code", R"({"user_id":"abc"})", "127.0.0.1"});
    CHECK(a.status == 500);
    CHECK(a.body.find("\"error_type\":\"sms_failed\"") != std::string::npos);
    CHECK(a.body.find("\"provider_code\":" + std::to_string(code)) != std::string::npos);
    CHECK(fake.requests().size() - before == 1);
    // No live code: any guess is "not found".
    HttpAnswer v = api.Handle(HttpRequest{"POST", "/verify-code",
                                          R"({"user_id":"abc","passcode":"000000"})", "127.0.0.1"});
    CHECK(v.status == 404);
  }
}

}  // namespace

TEST_CASE("twilio: every form of a phone number in an error message is masked") {
  Certs certs;
  FakeTwilio fake(certs.good);
  fake.Respond([](int, httplib::Response& res) {
    res.status = 400;
    res.set_content(R"({"code":21211,"message":"The 'To' number +1 (415) 555-0123 is not valid; )"
                    R"(also tried 4155550123, 415.555.0123, +1-415-555-0123 and %2B14155550123",)"
                    R"("more_info":"https://www.twilio.com/docs/errors/21211","status":400})",
                    "application/json");
  });
  auto sender = MustSender(Options(fake, certs));
  SmsReceipt receipt;
  Status s = sender->Send("+14155550123", "code 1", &receipt);
  REQUIRE_FALSE(s.ok());
  CHECK(receipt.provider_code == 21211);
  const std::string& m = s.message();
  CHECK(m.find("21211") != std::string::npos);  // the error code stays readable
  CHECK(m.find("is not valid") != std::string::npos);
  for (const char* leak : {"415", "555-0", "5550", "555.0", "2B1"}) {
    CAPTURE(leak);
    CHECK(m.find(leak) == std::string::npos);
  }
  CHECK(m.find("123") != std::string::npos);  // the last three digits, as MaskPhone keeps
}

}  // namespace otpd
