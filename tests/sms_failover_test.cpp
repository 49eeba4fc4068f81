// The failover sender and its circuit breakers (otp/sms.h) over the real
// Twilio and Vonage senders, against fake providers on 127.0.0.1 with
// run-time certificates; the breaker's cool-off on a FakeClock.
#include <doctest/doctest.h>

#include <chrono>

#include "core/provider_metrics.h"
#include "fake_twilio.h"
#include "fake_vonage.h"
#include "otp/sms.h"
#include "otp_stack.h"
#include "sms/circuit_breaker.h"
#include "test_tls.h"
#include "test_util.h"

namespace otpd {
namespace {

using Result = ProviderMetrics::Result;

constexpr char kTo[] = "+12135554567";
constexpr int64_t kCooloffMs = 30000;

struct Providers {
  TempDir dir;
  TestCa ca{dir.path(), "ca"};
  PemFiles pem = ca.Issue("provider", "IP:127.0.0.1");
  FakeTwilio twilio{pem};
  FakeVonage vonage{pem};
  FakeClock clock;

  // twilio then vonage, breakers opening after two faults in a row.
  std::unique_ptr<FailoverSmsSender> Failover(int timeout_ms = 4000) {
    TwilioOptions t;
    t.account_sid = "AC0123456789abcdef0123456789abcdef";
    t.auth_token = "token-0123456789abcdef";
    t.from = "+12085551111";
    t.api_base = twilio.base();
    t.ca_file = ca.cert_file();
    t.timeout_ms = 60000;  // the failover's deadline must be what stops a hang
    VonageOptions v;
    v.api_key = "key123";
    v.api_secret = "secret-0123456789";
    v.from = "otpd";
    v.api_base = vonage.base();
    v.ca_file = ca.cert_file();
    std::vector<SmsProvider> list(2);
    list[0].name = "twilio";
    list[1].name = "vonage";
    REQUIRE(NewTwilioSmsSender(t, &list[0].sender).ok());
    REQUIRE(NewVonageSmsSender(v, &list[1].sender).ok());
    FailoverOptions o;
    o.timeout_ms = timeout_ms;
    o.breaker_failures = 2;
    o.breaker_cooloff_ms = kCooloffMs;
    std::unique_ptr<FailoverSmsSender> f;
    REQUIRE(FailoverSmsSender::New(std::move(list), o, &clock, &f).ok());
    return f;
  }
  void TwilioAnswers(int code, int http) {
    twilio.Respond([code, http](int, httplib::Response& res) {
      res.status = http;
      res.set_content(TwilioErrorJson(code, http), "application/json");
    });
  }
};

std::string StateOf(FailoverSmsSender* f, const std::string& name) {
  for (const SmsProviderState& p : f->ProviderStates()) {
    if (p.name == name) return p.state;
  }
  return "";
}

TEST_CASE("failover: a provider fault moves the send to the next provider") {
  Providers p;
  auto sender = p.Failover();
  struct Fault {
    const char* what;
    int code, http;
    size_t twilio_requests;  // 5xx and 429 are retried by the Twilio sender first
  };
  for (const Fault& f : {Fault{"500", 20500, 500, 3}, Fault{"401", 20003, 401, 1},
                         Fault{"suspended", 20005, 403, 1}, Fault{"429", 20429, 429, 3}}) {
    CAPTURE(f.what);
    p.TwilioAnswers(f.code, f.http);
    const size_t t0 = p.twilio.requests().size();
    const size_t v0 = p.vonage.requests().size();
    const uint64_t failovers = sender->metrics().Failovers("twilio");
    const uint64_t accepted = sender->metrics().Attempts("vonage", Result::kAccepted);
    SmsReceipt r;
    Status s = sender->Send(kTo, "code 1", &r);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    CHECK(r.provider == "vonage");
    CHECK(r.provider_id == "0C0000001");
    CHECK(p.twilio.requests().size() - t0 == f.twilio_requests);
    REQUIRE(p.vonage.requests().size() - v0 == 1);
    CHECK(p.vonage.requests().back().at("to") == "12135554567");
    CHECK(sender->metrics().Failovers("twilio") - failovers == 1);
    CHECK(sender->metrics().Attempts("vonage", Result::kAccepted) - accepted == 1);
    // Twilio working again closes its circuit before the next case.
    p.twilio.Respond(nullptr);
    REQUIRE(sender->Send(kTo, "code 2", &r).ok());
    CHECK(r.provider == "twilio");
  }
}

TEST_CASE("failover: a hanging provider is abandoned within the send's deadline") {
  Providers p;
  auto sender = p.Failover(1500);
  p.twilio.Hang();
  SmsReceipt r;
  const auto start = std::chrono::steady_clock::now();
  Status s = sender->Send(kTo, "code 1", &r);
  const auto took = std::chrono::steady_clock::now() - start;
  p.twilio.Release();
  // A figure for the README, not a bound: Twilio gets half of 1500 ms.
  MESSAGE("send with a hanging first provider took ",
          std::chrono::duration_cast<std::chrono::milliseconds>(took).count(), " ms");
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  CHECK(r.provider == "vonage");
  CHECK(p.twilio.requests().size() == 1);
  CHECK(p.vonage.requests().size() == 1);
}

TEST_CASE("failover: a refusal of the number is answered at once, not failed over") {
  Providers p;
  auto sender = p.Failover();
  for (int code : {21211, 21610, 21614, 21408}) {
    CAPTURE(code);
    p.TwilioAnswers(code, 400);
    const uint64_t refused = sender->metrics().Attempts("twilio", Result::kNumberRefused);
    SmsReceipt r;
    Status s = sender->Send(kTo, "code 1", &r);
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK(r.number_refused);
    CHECK(r.provider == "twilio");
    CHECK(r.provider_code == code);
    CHECK(sender->metrics().Attempts("twilio", Result::kNumberRefused) - refused == 1);
  }
  CHECK(p.vonage.requests().empty());
  // Refusals are the provider working: its circuit stays closed.
  CHECK(StateOf(sender.get(), "twilio") == "closed");
  // Vonage's own refusal of the number ends the send too.
  p.TwilioAnswers(20003, 401);
  p.vonage.Respond(
      [](int, httplib::Response& res) { res.set_content(VonageAnswer("6"), "application/json"); });
  SmsReceipt r;
  CHECK(sender->Send(kTo, "code 1", &r).code() == Status::Code::kInvalidArgument);
  CHECK(r.provider == "vonage");
  CHECK(r.number_refused);
}

TEST_CASE("failover: the breaker opens, skips, lets one trial through, and closes") {
  Providers p;
  auto sender = p.Failover();
  p.TwilioAnswers(20003, 401);
  SmsReceipt r;
  REQUIRE(sender->Send(kTo, "1", &r).ok());
  CHECK(StateOf(sender.get(), "twilio") == "closed");  // one fault: not yet
  REQUIRE(sender->Send(kTo, "2", &r).ok());
  CHECK(StateOf(sender.get(), "twilio") == "open");
  CHECK(StateOf(sender.get(), "vonage") == "closed");
  CHECK(p.twilio.requests().size() == 2);

  // Open: Twilio is not asked at all, even once it works again.
  p.twilio.Respond(nullptr);
  const uint64_t skipped = sender->metrics().Attempts("twilio", Result::kCircuitOpen);
  REQUIRE(sender->Send(kTo, "3", &r).ok());
  CHECK(r.provider == "vonage");
  CHECK(p.twilio.requests().size() == 2);
  CHECK(sender->metrics().Attempts("twilio", Result::kCircuitOpen) - skipped == 1);
  p.clock.AdvanceMonotonicMicros((kCooloffMs - 1) * 1000);
  REQUIRE(sender->Send(kTo, "4", &r).ok());
  CHECK(r.provider == "vonage");
  CHECK(p.twilio.requests().size() == 2);

  SUBCASE("a successful trial closes the circuit") {
    p.clock.AdvanceMonotonicMicros(1000);
    CHECK(StateOf(sender.get(), "twilio") == "half_open");
    REQUIRE(sender->Send(kTo, "5", &r).ok());
    CHECK(r.provider == "twilio");
    CHECK(p.twilio.requests().size() == 3);
    CHECK(StateOf(sender.get(), "twilio") == "closed");
    REQUIRE(sender->Send(kTo, "6", &r).ok());
    CHECK(r.provider == "twilio");
  }
  SUBCASE("a failed trial opens it for another cool-off") {
    p.TwilioAnswers(20003, 401);
    p.clock.AdvanceMonotonicMicros(1000);
    REQUIRE(sender->Send(kTo, "5", &r).ok());
    CHECK(r.provider == "vonage");
    CHECK(p.twilio.requests().size() == 3);  // the one trial
    CHECK(StateOf(sender.get(), "twilio") == "open");
    REQUIRE(sender->Send(kTo, "6", &r).ok());
    CHECK(p.twilio.requests().size() == 3);
  }
}

TEST_CASE("failover: with every circuit open the send fails at once") {
  Providers p;
  auto sender = p.Failover();
  p.TwilioAnswers(20003, 401);
  p.vonage.Respond([](int, httplib::Response& res) { res.status = 401; });
  SmsReceipt r;
  CHECK(sender->Send(kTo, "1", &r).code() == Status::Code::kUnavailable);
  CHECK(r.provider == "vonage");
  CHECK_FALSE(r.number_refused);
  CHECK(sender->Send(kTo, "2", &r).code() == Status::Code::kUnavailable);
  CHECK(StateOf(sender.get(), "twilio") == "open");
  CHECK(StateOf(sender.get(), "vonage") == "open");
  const size_t t0 = p.twilio.requests().size(), v0 = p.vonage.requests().size();
  Status s = sender->Send(kTo, "3", &r);
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("circuit") != std::string::npos);
  CHECK(p.twilio.requests().size() == t0);
  CHECK(p.vonage.requests().size() == v0);
}

TEST_CASE("circuit breaker: one trial at a time while half open") {
  FakeClock clock;
  CircuitBreaker b(&clock, 3, 1000);
  CHECK(b.Allow());
  CHECK_FALSE(b.RecordFault());
  CHECK_FALSE(b.RecordFault());
  b.RecordSuccess();  // the count restarts
  CHECK_FALSE(b.RecordFault());
  CHECK_FALSE(b.RecordFault());
  CHECK(b.RecordFault());
  CHECK(b.state() == CircuitBreaker::State::kOpen);
  CHECK_FALSE(b.Allow());
  CHECK(b.Blocked());
  clock.AdvanceMonotonicMicros(1000 * 1000);
  CHECK_FALSE(b.Blocked());
  CHECK(b.Allow());        // the trial
  CHECK_FALSE(b.Allow());  // no second one while it runs
  CHECK(b.Blocked());
  CHECK(b.RecordFault());  // a failed trial opens it again
  CHECK_FALSE(b.Allow());
  clock.AdvanceMonotonicMicros(1000 * 1000);
  CHECK(b.Allow());
  b.RecordSuccess();
  CHECK(b.state() == CircuitBreaker::State::kClosed);
  CHECK(b.Allow());
  CHECK(b.Allow());
}

TEST_CASE("failover: the factory refuses empty, null and repeated providers") {
  FakeClock clock;
  std::unique_ptr<FailoverSmsSender> f;
  CHECK_FALSE(FailoverSmsSender::New({}, FailoverOptions(), &clock, &f).ok());
  std::vector<SmsProvider> list(1);
  list[0].name = "twilio";
  CHECK_FALSE(FailoverSmsSender::New(std::move(list), FailoverOptions(), &clock, &f).ok());
  std::vector<SmsProvider> twice(2);
  for (SmsProvider& p : twice) {
    p.name = "console";
    REQUIRE(NewConsoleSmsSender("", &p.sender).ok());
  }
  Status s = FailoverSmsSender::New(std::move(twice), FailoverOptions(), &clock, &f);
  CHECK(s.message().find("twice") != std::string::npos);
}

class FixedHealth : public SmsHealth {
 public:
  std::vector<SmsProviderState> states;
  std::vector<SmsProviderState> ProviderStates() override { return states; }
  std::string RenderMetrics() override { return ""; }
};

TEST_CASE("readyz: degraded providers are named; all open fails") {
  OtpStack stack;
  HttpAnswer a = stack.Get("/readyz");
  CHECK(a.status == 200);
  CHECK(a.body == R"({"status":"ready"})");
  FixedHealth health;
  stack.api->SetSmsHealth(&health);
  health.states = {{"twilio", "closed"}, {"vonage", "closed"}};
  a = stack.Get("/readyz");
  CHECK(a.status == 200);
  CHECK(a.body == R"({"status":"ready"})");
  health.states = {{"twilio", "open"}, {"vonage", "closed"}};
  a = stack.Get("/readyz");
  CHECK(a.status == 200);
  CHECK(a.body == R"({"status":"ready","degraded_providers":["twilio"]})");
  health.states = {{"twilio", "open"}, {"vonage", "half_open"}};
  a = stack.Get("/readyz");
  CHECK(a.status == 200);  // a trial send may go to vonage
  CHECK(a.body == R"({"status":"ready","degraded_providers":["twilio","vonage"]})");
  health.states = {{"twilio", "open"}, {"vonage", "open"}};
  a = stack.Get("/readyz");
  CHECK(a.status == 503);
  CHECK(a.body.find(R"("degraded_providers":["twilio","vonage"])") != std::string::npos);
  CHECK(HeaderValue(a, "Retry-After") == "1");
}

TEST_CASE("readyz: the failover sender's real circuits") {
  Providers p;
  auto sender = p.Failover();
  OtpStack stack;
  stack.api->SetSmsHealth(sender.get());
  p.TwilioAnswers(20003, 401);
  SmsReceipt r;
  REQUIRE(sender->Send(kTo, "1", &r).ok());
  REQUIRE(sender->Send(kTo, "2", &r).ok());
  HttpAnswer a = stack.Get("/readyz");
  CHECK(a.status == 200);
  CHECK(a.body.find(R"("degraded_providers":["twilio"])") != std::string::npos);
  p.clock.AdvanceMonotonicMicros(kCooloffMs * 1000);
  p.twilio.Respond(nullptr);
  REQUIRE(sender->Send(kTo, "3", &r).ok());
  CHECK(r.provider == "twilio");
  CHECK(stack.Get("/readyz").body == R"({"status":"ready"})");
}

}  // namespace
}  // namespace otpd
