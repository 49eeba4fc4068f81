#include "core/metrics.h"

#include <doctest/doctest.h>
#include <otpd_httplib.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <vector>

#include "http/http_api.h"
#include "otp_stack.h"
#include "test_util.h"

namespace otpd {
namespace {

std::map<std::string, double> Parse(const std::string& text) {
  std::map<std::string, double> series;
  std::string bad;
  const bool ok = ParsePrometheus(text, &series, &bad);
  REQUIRE_MESSAGE(ok, "bad exposition line: " << bad);
  return series;
}

double Value(const std::map<std::string, double>& series, const std::string& name) {
  auto it = series.find(name);
  return it == series.end() ? 0 : it->second;
}

std::map<std::string, double> Scrape(OtpStack* stack) {
  HttpAnswer a = stack->Get("/metrics");
  REQUIRE(a.status == 200);
  return Parse(a.body);
}

std::string Header(const HttpAnswer& a, const std::string& name) {
  for (const auto& h : a.headers) {
    if (h.first == name) return h.second;
  }
  return "";
}

}  // namespace

TEST_CASE("Metrics: requests by route and status; unknown paths count as other") {
  Metrics m({"/send-code", "/verify-code"});
  m.RecordRequest("/send-code", 200, 300);
  m.RecordRequest("/send-code", 200, 2000);
  m.RecordRequest("/send-code", 404, 100);
  m.RecordRequest("/secret/../etc", 404, -1);
  auto s = Parse(m.Render(-1));
  CHECK(Value(s, R"(otpd_http_requests_total{route="/send-code",status="200"})") == 2);
  CHECK(Value(s, R"(otpd_http_requests_total{route="/send-code",status="404"})") == 1);
  CHECK(Value(s, R"(otpd_http_requests_total{route="other",status="404"})") == 1);
  CHECK(s.count(R"(otpd_http_requests_total{route="/verify-code",status="200"})") == 0);
  // Cumulative buckets; the unknown latency was not observed.
  CHECK(Value(s, R"(otpd_http_request_duration_seconds_bucket{route="/send-code",le="0.0005"})") ==
        2);
  CHECK(Value(s, R"(otpd_http_request_duration_seconds_bucket{route="/send-code",le="0.001"})") ==
        2);
  CHECK(Value(s, R"(otpd_http_request_duration_seconds_bucket{route="/send-code",le="0.0025"})") ==
        3);
  CHECK(Value(s, R"(otpd_http_request_duration_seconds_bucket{route="/send-code",le="+Inf"})") ==
        3);
  CHECK(Value(s, R"(otpd_http_request_duration_seconds_count{route="/send-code"})") == 3);
  CHECK(Value(s, R"(otpd_http_request_duration_seconds_sum{route="/send-code"})") ==
        doctest::Approx(0.0024));
  CHECK(s.count(R"(otpd_http_request_duration_seconds_count{route="other"})") == 0);
  CHECK(s.count("otpd_active_codes") == 0);
  CHECK(Parse(m.Render(7)).at("otpd_active_codes") == 7);
}

TEST_CASE("Metrics: every outcome is listed from the start and counts") {
  Metrics m({});
  auto s = Parse(m.Render(0));
  for (const char* o : {"sent", "user_not_found", "phone_not_found", "sms_failed", "error"}) {
    CHECK(s.count(std::string("otpd_sends_total{outcome=\"") + o + "\"}") == 1);
  }
  for (const char* o : {"ok", "invalid", "expired", "not_found", "locked", "error"}) {
    CHECK(s.count(std::string("otpd_verifies_total{outcome=\"") + o + "\"}") == 1);
  }
  m.RecordSend(SendMetric::kSmsFailed);
  m.RecordVerify(VerifyMetric::kLocked);
  m.RecordVerify(VerifyMetric::kLocked);
  m.RecordSmsLatency(40000, true);
  m.RecordSmsLatency(3000000, false);
  s = Parse(m.Render(0));
  CHECK(Value(s, R"(otpd_sends_total{outcome="sms_failed"})") == 1);
  CHECK(Value(s, R"(otpd_verifies_total{outcome="locked"})") == 2);
  CHECK(Value(s, R"(otpd_sms_send_duration_seconds_bucket{result="ok",le="0.05"})") == 1);
  CHECK(Value(s, R"(otpd_sms_send_duration_seconds_bucket{result="ok",le="0.025"})") == 0);
  CHECK(Value(s, R"(otpd_sms_send_duration_seconds_bucket{result="failed",le="5"})") == 1);
  CHECK(Value(s, R"(otpd_sms_send_duration_seconds_count{result="failed"})") == 1);
}

TEST_CASE("Metrics: rate-limit rejections by limit name, lock-free from many threads") {
  Metrics m({});
  CHECK(Parse(m.Render(0)).count(R"(otpd_rate_limited_total{limit="ip"})") == 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&m] {
      for (int i = 0; i < 1000; i++) m.RecordRateLimited(i % 2 ? "ip" : "user_cooldown");
    });
  }
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < Metrics::kMaxRateLimits + 3; i++) {
    m.RecordRateLimited("limit" + std::to_string(i));
  }
  auto s = Parse(m.Render(0));
  CHECK(Value(s, R"(otpd_rate_limited_total{limit="ip"})") == 2000);
  CHECK(Value(s, R"(otpd_rate_limited_total{limit="user_cooldown"})") == 2000);
  // Two names are taken, so 14 more get a series and the last 5 are "other".
  CHECK(Value(s, R"(otpd_rate_limited_total{limit="limit13"})") == 1);
  CHECK(s.count(R"(otpd_rate_limited_total{limit="limit14"})") == 0);
  CHECK(Value(s, R"(otpd_rate_limited_total{limit="other"})") == 5);
}

TEST_CASE("Metrics: every route HttpApi serves is counted by name") {
  for (const Route& r : HttpApi::Routes()) {
    const auto& names = MetricRoutes();
    CHECK_MESSAGE(std::find(names.begin(), names.end(), r.path) != names.end(), r.path);
  }
}

TEST_CASE("Metrics: GET /metrics over HTTP follows a scripted sequence") {
  OtpStack stack(OtpOptions(), HttpApiOptions(), Transport::kHttp);
  const Metrics& m = stack.metrics;  // this stack's own: every count starts at 0
  HttpAnswer page = stack.Get("/metrics");
  CHECK(Header(page, "Content-Type") == "text/plain; version=0.0.4; charset=utf-8");
  auto before = Parse(page.body);
  CHECK(Value(before, "otpd_active_codes") == 0);
  CHECK(Value(before, R"(otpd_sends_total{outcome="sent"})") == 0);

  const std::string code = stack.SendAndRead("abc");
  CHECK(stack.Post("/send-code", R"({"user_id":"nobody"})").status == 404);
  CHECK(stack.Post("/verify-code", VerifyJson("abc", WrongCode(code))).status == 400);
  auto mid = Scrape(&stack);
  CHECK(Value(mid, "otpd_active_codes") == 1);
  CHECK(stack.Post("/verify-code", VerifyJson("abc", code)).status == 200);
  CHECK(stack.Post("/verify-code", VerifyJson("abc", code)).status == 404);
  // A request is counted just after its answer is written, by its own
  // worker thread: wait for that event (the guard only stops a hang).
  REQUIRE(WaitUntil([&] {
    return m.RequestCount("/verify-code", 404) == 1 && m.RequestCount("/verify-code", 200) == 1 &&
           m.RequestCount("/verify-code", 400) == 1 && m.RequestCount("/send-code", 200) == 1 &&
           m.RequestCount("/send-code", 404) == 1 && m.RequestCount("/metrics", 200) == 2;
  }));
  auto after = Scrape(&stack);  // counted after it is rendered: it shows 2 scrapes

  CHECK(m.SendCount(SendMetric::kSent) == 1);
  CHECK(m.SendCount(SendMetric::kUserNotFound) == 1);
  CHECK(m.VerifyCount(VerifyMetric::kInvalid) == 1);
  CHECK(m.VerifyCount(VerifyMetric::kOk) == 1);
  CHECK(m.VerifyCount(VerifyMetric::kNotFound) == 1);
  CHECK(m.SmsLatencyCount(true) == 1);
  CHECK(m.SmsLatencyCount(false) == 0);
  CHECK(Value(after, R"(otpd_sends_total{outcome="sent"})") == 1);
  CHECK(Value(after, R"(otpd_sends_total{outcome="user_not_found"})") == 1);
  CHECK(Value(after, R"(otpd_verifies_total{outcome="invalid"})") == 1);
  CHECK(Value(after, R"(otpd_verifies_total{outcome="ok"})") == 1);
  CHECK(Value(after, R"(otpd_verifies_total{outcome="not_found"})") == 1);
  CHECK(Value(after, R"(otpd_http_requests_total{route="/send-code",status="200"})") == 1);
  CHECK(Value(after, R"(otpd_http_requests_total{route="/send-code",status="404"})") == 1);
  CHECK(Value(after, R"(otpd_http_requests_total{route="/verify-code",status="400"})") == 1);
  CHECK(Value(after, R"(otpd_http_requests_total{route="/metrics",status="200"})") == 2);
  CHECK(Value(after, R"(otpd_sms_send_duration_seconds_count{result="ok"})") == 1);
  CHECK(Value(after, R"(otpd_http_request_duration_seconds_count{route="/verify-code"})") == 3);
  CHECK(Value(after, "otpd_active_codes") == 0);
}

TEST_CASE("Metrics: rate-limited sends count by limit in the instance passed in") {
  OtpStack stack;  // the default 30 s cooldown between sends to a user
  stack.SendAndRead("abc");
  CHECK(stack.Post("/send-code", R"({"user_id":"abc"})").status == 429);
  CHECK(stack.Post("/send-code", R"({"user_id":"abc"})").status == 429);
  CHECK(stack.metrics.SendCount(SendMetric::kSent) == 1);
  CHECK(stack.metrics.SendCount(SendMetric::kRateLimited) == 2);
  CHECK(stack.metrics.RateLimitedCount("cooldown") == 2);
  CHECK(stack.metrics.RateLimitedCount("ip") == 0);
  // Another stack counts in its own instance.
  OtpStack other;
  CHECK(other.metrics.SendCount(SendMetric::kRateLimited) == 0);
}

TEST_CASE("Metrics: audit records a full queue drops are counted while the file fails") {
  OtpStack stack;
  std::map<std::string, double> m = Scrape(&stack);
  REQUIRE(m.count("otpd_records_dropped_total{records=\"audit\"}") == 1);
  CHECK(m["otpd_records_dropped_total{records=\"audit\"}"] == 0);
  CHECK(m.count("otpd_records_dropped_total{records=\"delivery\"}") == 1);
  // The database replaced under the running stack: audit writes fail and
  // the queue (100 000 records) fills.
  const std::string db = stack.dir.File("otpd.db");
  {
    std::ifstream in(db, std::ios::binary);
    std::ofstream(db + ".copy", std::ios::binary) << in.rdbuf();
  }
  REQUIRE(rename((db + ".copy").c_str(), db.c_str()) == 0);
  int refused = 0;
  for (int i = 0; i < 100050; i++) {
    refused += !stack.audit->Record(AuditEvent{0, "u", "", "10.0.0.1", "send", "sent"}).ok();
  }
  REQUIRE(refused >= 50);
  CHECK(Scrape(&stack)["otpd_records_dropped_total{records=\"audit\"}"] >= refused);
}

TEST_CASE("Server: X-Request-Id is echoed when sane and generated otherwise") {
  OtpStack stack(OtpOptions(), HttpApiOptions(), Transport::kHttp);
  httplib::Client cli("127.0.0.1", stack.server->port());
  auto res = cli.Get("/healthz", httplib::Headers{{"X-Request-Id", "abc.DEF_123-x"}});
  REQUIRE(res);
  CHECK(res->get_header_value("X-Request-Id") == "abc.DEF_123-x");
  for (const std::string& bad :
       {std::string("has space"), std::string(65, 'a'), std::string("semi;colon")}) {
    res = cli.Get("/healthz", httplib::Headers{{"X-Request-Id", bad}});
    REQUIRE(res);
    const std::string id = res->get_header_value("X-Request-Id");
    CHECK(id != bad);
    CHECK(id.size() > 16);
  }
  auto a = cli.Get("/healthz");
  auto b = cli.Get("/healthz");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(a->get_header_value("X-Request-Id") != b->get_header_value("X-Request-Id"));
}

}  // namespace otpd
