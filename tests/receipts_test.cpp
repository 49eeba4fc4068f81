// Delivery receipts through the API: POST /twilio/status with Twilio's
// signature (made by Python, tests/twilio_sign.h), GET /send-status, and
// the whole path over sockets: a send through the Twilio sender to the fake
// Twilio, which then calls otpd's callback the way Twilio does.
#include <doctest/doctest.h>
#include <otpd_httplib.h>

#include "core/delivery_metrics.h"
#include "fake_twilio.h"
#include "http/twilio_signature.h"
#include "otp/deliveries.h"
#include "otp_stack.h"
#include "test_tls.h"
#include "twilio_sign.h"

namespace otpd {
namespace {

constexpr char kToken[] = "receipt-token-0123456789abcdef";
constexpr char kUrl[] = "https://otp.example.com/otp/twilio/status";

std::string FormOf(const FormFields& fields) {
  httplib::Params params;
  for (const auto& [k, v] : fields) params.emplace(k, v);
  return httplib::detail::params_to_query_str(params);
}

struct LateSender : SmsSender {
  SmsSender* target = nullptr;
  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override {
    return target->Send(to, body, receipt);
  }
};

// The stack with receipts on: the service records each send, and a second
// HttpApi serves the receipt routes.
struct ReceiptStack {
  explicit ReceiptStack(const std::string& api_keys = "") {
    REQUIRE(NewSqliteDeliveryLog(stack.db, &log).ok());
    tracker.reset(new DeliveryTracker(log.get(), &stack.clock, stack.audit.get(), DeliveryOptions(),
                                      &stack.delivery_metrics));
    stack.service->SetDeliveries(tracker.get());
    HttpApiOptions o;
    o.twilio_status_url = kUrl;
    o.twilio_auth_token = kToken;
    REQUIRE(ApiKeys::Load(api_keys, "", &o.api_keys).ok());
    api.reset(new HttpApi(stack.service.get(), o, nullptr, tracker.get()));
  }
  HttpAnswer Callback(const FormFields& fields, const std::string& signature) {
    HttpRequest r{"POST", "/twilio/status", FormOf(fields), "198.51.100.7"};
    r.twilio_signature = signature;
    return api->Handle(r);
  }
  HttpAnswer SignedCallback(const FormFields& fields) {
    return Callback(fields, PythonTwilioSignature(kToken, kUrl, fields));
  }
  HttpAnswer Status(const std::string& user, const std::string& auth = "") {
    HttpRequest r{"GET", "/send-status", "", "127.0.0.1", auth};
    r.query = {{"user_id", user}};
    return api->Handle(r);
  }
  std::vector<AuditEvent> Audit(const std::string& event) {
    std::vector<AuditEvent> all, out;
    REQUIRE(stack.audit->Query(AuditQuery{}, &all).ok());
    for (const AuditEvent& e : all) {
      if (e.event == event) out.push_back(e);
    }
    return out;
  }
  OtpStack stack;
  std::unique_ptr<DeliveryLog> log;
  std::unique_ptr<DeliveryTracker> tracker;
  std::unique_ptr<HttpApi> api;
};

TEST_CASE("receipts: a signed callback is recorded; unsigned, forged and replayed change nothing") {
  ReceiptStack r;
  const std::string code = r.stack.SendAndRead("abc");
  CHECK(!code.empty());
  HttpAnswer s = r.Status("ABC");
  REQUIRE(s.status == 200);
  CHECK(s.body.find("\"status\":\"accepted\"") != std::string::npos);
  const std::string sid = r.stack.sms.messages().size() == 1 ? "fake-1" : "";
  REQUIRE(sid == "fake-1");
  const FormFields delivered = {{"MessageSid", sid},
                                {"MessageStatus", "delivered"},
                                {"AccountSid", "AC1"},
                                {"SmsStatus", "delivered"}};
  REQUIRE(r.stack.delivery_metrics.StatusCount("delivered") == 0);

  CHECK(r.Callback(delivered, "").status == 403);
  CHECK(r.Callback(delivered, "0/KCTR6DLpKmkAf8muzZqo1nDgQ=").status == 403);
  CHECK(r.Callback(delivered, PythonTwilioSignature("another-token", kUrl, delivered)).status ==
        403);
  // Signed for another URL (the proxy trap): refused too.
  CHECK(r.Callback(delivered,
                   PythonTwilioSignature(kToken, "http://10.0.0.5:8000/twilio/status", delivered))
            .status == 403);
  // A signed "undelivered" with one field changed after signing.
  FormFields forged = {{"MessageSid", sid}, {"MessageStatus", "undelivered"}};
  const std::string sig = PythonTwilioSignature(kToken, kUrl, forged);
  forged[1].second = "delivered";
  CHECK(r.Callback(forged, sig).status == 403);
  s = r.Status("abc");
  CHECK(s.body.find("\"status\":\"accepted\"") != std::string::npos);
  CHECK(r.Audit("delivery").empty());
  CHECK(r.stack.delivery_metrics.StatusCount("delivered") == 0);

  HttpAnswer ok = r.SignedCallback(delivered);
  CHECK(ok.status == 200);
  CHECK(ok.body == R"({"status":"recorded"})");
  CHECK(r.SignedCallback(delivered).status == 200);  // replay
  CHECK(r.SignedCallback({{"MessageSid", sid}, {"MessageStatus", "sent"}}).status == 200);
  CHECK(r.stack.delivery_metrics.StatusCount("delivered") == 1);
  s = r.Status("abc");
  CHECK(s.body.find("\"status\":\"delivered\"") != std::string::npos);
  CHECK(s.body.find("\"provider\":") != std::string::npos);
  REQUIRE(r.Audit("delivery").size() == 1);
  CHECK(r.Audit("delivery")[0].outcome.rfind("delivered", 0) == 0);
  CHECK(r.SignedCallback({{"MessageSid", "SMnotours"}, {"MessageStatus", "delivered"}}).body ==
        R"({"status":"ignored"})");
  CHECK(r.SignedCallback({{"MessageStatus", "delivered"}}).status == 400);
  CHECK(r.SignedCallback({{"MessageSid", "SM 1\n"}, {"MessageStatus", "delivered"}}).status == 400);
}

TEST_CASE("receipts: undelivered for a live code is audited with Twilio's error code") {
  ReceiptStack r;
  r.stack.SendAndRead("abc");
  CHECK(r.SignedCallback(
             {{"MessageSid", "fake-1"}, {"MessageStatus", "undelivered"}, {"ErrorCode", "30003"}})
            .status == 200);
  REQUIRE(r.Audit("delivery").size() == 1);
  CHECK(r.Audit("delivery")[0].outcome.rfind("undelivered:30003", 0) == 0);
  HttpAnswer s = r.Status("abc");
  CHECK(s.body.find("\"status\":\"undelivered\",\"error_code\":30003") != std::string::npos);
}

TEST_CASE("receipts: /send-status needs the API key, the callback needs the signature instead") {
  const std::string key = "k-0123456789abcdef";
  ReceiptStack r(key);
  CHECK(r.Status("abc").status == 401);
  CHECK(r.Status("abc", "Bearer " + key).status == 404);  // nothing sent yet
  HttpRequest q{"GET", "/send-status", "", "127.0.0.1", "Bearer " + key};
  CHECK(r.api->Handle(q).status == 422);
  CHECK(r.SignedCallback({{"MessageSid", "SM1"}, {"MessageStatus", "sent"}}).status == 200);
  CHECK(r.Callback({{"MessageSid", "SM1"}, {"MessageStatus", "sent"}}, "").status == 403);
}

TEST_CASE("receipts: without public_url the callback answers 404") {
  OtpStack stack;
  HttpRequest r{"POST", "/twilio/status", "MessageSid=SM1&MessageStatus=sent", "127.0.0.1"};
  r.twilio_signature = "x";
  CHECK(stack.api->Handle(r).status == 404);
}

TEST_CASE(
    "receipts end to end: send via Twilio, Twilio calls back signed, audit and metrics show it") {
  TempDir dir;
  TestCa ca(dir.path(), "ca");
  PemFiles pem = ca.Issue("twilio", "IP:127.0.0.1");
  FakeTwilio fake(pem);
  OtpStack stack;
  std::unique_ptr<DeliveryLog> log;
  REQUIRE(NewSqliteDeliveryLog(stack.db, &log).ok());
  DeliveryTracker tracker(log.get(), &stack.clock, stack.audit.get(), DeliveryOptions(),
                          &stack.delivery_metrics);
  // The callback URL holds otpd's port, known once the server is bound; the
  // Twilio sender needs it, so the service sends through a late-bound proxy.
  LateSender late;
  OtpService service(OtpOptions(), stack.storage.get(), stack.users.get(), &late, &stack.clock,
                     &stack.random, &stack.hasher, stack.audit.get(), &stack.metrics,
                     &stack.delivery_metrics);
  service.SetDeliveries(&tracker);
  HttpApi api(&service, HttpApiOptions(), nullptr, &tracker);
  HttpServerOptions server_options;
  server_options.port = 0;
  HttpServer server(server_options, &api);
  REQUIRE(server.Bind().ok());
  const std::string callback =
      "http://127.0.0.1:" + std::to_string(server.port()) + "/twilio/status";
  TwilioOptions o;
  o.account_sid = "AC0123456789abcdef0123456789abcdef";
  o.auth_token = "e2e-token-0123456789";
  o.from = "+15550001111";
  o.api_base = fake.base();
  o.ca_file = ca.cert_file();
  o.status_callback = callback;
  std::unique_ptr<SmsSender> twilio;
  REQUIRE(NewTwilioSmsSender(o, &twilio).ok());
  late.target = twilio.get();
  HttpApiOptions api_options;
  api_options.twilio_status_url = callback;
  api_options.twilio_auth_token = o.auth_token;
  api.SetOptions(api_options);
  std::thread run([&] { server.Run(); });

  httplib::Client client("127.0.0.1", server.port());
  auto sent = client.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(sent);
  CHECK(sent->status == 200);
  REQUIRE(fake.requests().size() == 1);
  CHECK(fake.requests()[0].form.at("StatusCallback") == callback);
  REQUIRE(stack.delivery_metrics.StatusCount("delivered") == 0);
  stack.clock.AdvanceSeconds(7);
  // What Twilio does: a form POST signed with the auth token over the URL
  // it was given and the sorted fields.
  const FormFields fields = {{"MessageSid", "SM0123456789abcdef0123456789abcdef"},
                             {"MessageStatus", "delivered"},
                             {"AccountSid", o.account_sid},
                             {"To", "+11111111111"},
                             {"ApiVersion", "2010-04-01"}};
  httplib::Headers headers = {
      {"X-Twilio-Signature", PythonTwilioSignature(o.auth_token, callback, fields)}};
  auto cb =
      client.Post("/twilio/status", headers, FormOf(fields), "application/x-www-form-urlencoded");
  REQUIRE(cb);
  CHECK(cb->status == 200);
  auto forged = client.Post("/twilio/status", FormOf(fields), "application/x-www-form-urlencoded");
  REQUIRE(forged);
  CHECK(forged->status == 403);

  std::vector<AuditEvent> events;
  REQUIRE(stack.audit->Query(AuditQuery{}, &events).ok());
  REQUIRE(events.size() == 2);
  CHECK(events[0].event == "send");
  CHECK(events[1].event == "delivery");
  CHECK(events[1].outcome == "delivered via twilio");
  auto metrics = client.Get("/metrics");
  REQUIRE(metrics);
  std::map<std::string, double> series;
  REQUIRE(ParsePrometheus(metrics->body, &series, nullptr));
  CHECK(series.at("otpd_sms_delivery_total{status=\"delivered\"}") == 1);
  CHECK(series.at("otpd_sms_delivery_seconds_count") == 1);
  CHECK(stack.delivery_metrics.StatusCount("delivered") == 1);
  auto status = client.Get("/send-status?user_id=abc");
  REQUIRE(status);
  CHECK(status->body.find("\"provider\":\"twilio\",\"status\":\"delivered\"") != std::string::npos);
  server.Stop();
  run.join();
}

}  // namespace
}  // namespace otpd
