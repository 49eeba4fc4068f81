// The Vonage sender against a fake Vonage on 127.0.0.1 with run-time
// certificates (tests/test_tls.h).
#include <doctest/doctest.h>

#include "fake_vonage.h"
#include "otp/sms.h"
#include "test_tls.h"
#include "test_util.h"

namespace otpd {
namespace {

struct VonageSetup {
  TempDir dir;
  TestCa ca{dir.path(), "ca"};
  TestCa other{dir.path(), "other"};
  PemFiles good = ca.Issue("vonage", "IP:127.0.0.1");
  FakeVonage fake{good};
  VonageOptions Options() {
    VonageOptions o;
    o.api_key = "key123";
    o.api_secret = "secret-0123456789";
    o.from = "otpd";
    o.api_base = fake.base();
    o.ca_file = ca.cert_file();
    o.timeout_ms = 3000;
    return o;
  }
  std::unique_ptr<SmsSender> Sender(const VonageOptions& o) {
    std::unique_ptr<SmsSender> s;
    REQUIRE(NewVonageSmsSender(o, &s).ok());
    return s;
  }
};

TEST_CASE("vonage: a send posts the form and keeps the message id") {
  VonageSetup v;
  auto sender = v.Sender(v.Options());
  SmsReceipt r;
  REQUIRE(sender->Send("+15551234567", "Your code is 123456", &r).ok());
  CHECK(r.provider == "vonage");
  CHECK(r.provider_id == "0C0000001");
  auto req = v.fake.requests();
  REQUIRE(req.size() == 1);
  CHECK(req[0].at("to") == "15551234567");
  CHECK(req[0].at("text") == "Your code is 123456");
  CHECK(req[0].at("api_key") == "key123");
  CHECK(req[0].at("api_secret") == "secret-0123456789");
  CHECK(req[0].at("from") == "otpd");
  CHECK(req[0].count("type") == 0);
  REQUIRE(sender
              ->Send("+15551234567",
                     "C\xC3\xB3"
                     "digo 1",
                     &r)
              .ok());
  CHECK(v.fake.requests()[1].at("type") == "unicode");
}

TEST_CASE("vonage: number refusals answer at once and say so; throttling is retried") {
  VonageSetup v;
  auto sender = v.Sender(v.Options());
  for (const char* status : {"3", "6", "7"}) {
    CAPTURE(status);
    v.fake.Respond([status](int, httplib::Response& res) {
      res.set_content(VonageAnswer(status), "application/json");
    });
    const size_t before = v.fake.requests().size();
    SmsReceipt r;
    Status s = sender->Send("+15551234567", "x", &r);
    CHECK(s.code() == Status::Code::kInvalidArgument);
    CHECK(r.number_refused);
    CHECK(r.provider_code == std::stoi(status));
    CHECK(v.fake.requests().size() - before == 1);
  }
  v.fake.Respond([](int, httplib::Response& res) {
    res.set_content(VonageAnswer("4"), "application/json");  // bad credentials
  });
  SmsReceipt r;
  Status s = sender->Send("+15551234567", "x", &r);
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK_FALSE(r.number_refused);
  CHECK(s.message().find("secret-0123456789") == std::string::npos);
  const size_t before = v.fake.requests().size();
  v.fake.Respond([before](int n, httplib::Response& res) {
    if (static_cast<size_t>(n) < before + 2) res.set_content(VonageAnswer("1"), "application/json");
  });
  REQUIRE(sender->Send("+15551234567", "x", &r).ok());
  CHECK(v.fake.requests().size() - before == 3);
  v.fake.Respond([](int, httplib::Response& res) { res.status = 500; });
  CHECK(sender->Send("+15551234567", "x", &r).code() == Status::Code::kUnavailable);
}

TEST_CASE("vonage: a hanging server is abandoned at the deadline; foreign CAs refused") {
  VonageSetup v;
  VonageOptions o = v.Options();
  o.timeout_ms = 300;
  auto sender = v.Sender(o);
  v.fake.Hang();
  SmsReceipt r;
  CHECK(sender->Send("+15551234567", "x", &r).code() == Status::Code::kUnavailable);
  v.fake.Release();
  o = v.Options();
  o.ca_file = v.other.cert_file();
  auto foreign = v.Sender(o);
  Status s = foreign->Send("+15551234567", "x", &r);
  CHECK(s.message().find("certificate") != std::string::npos);
}

TEST_CASE("vonage: the factory refuses unusable options") {
  std::unique_ptr<SmsSender> s;
  VonageOptions o;
  CHECK_FALSE(NewVonageSmsSender(o, &s).ok());
  o.api_key = "k";
  o.api_secret = "s";
  o.from = "otpd";
  o.api_base = "http://rest.nexmo.com";
  CHECK_FALSE(NewVonageSmsSender(o, &s).ok());
  o.api_base = "https://rest.nexmo.com/path";
  CHECK_FALSE(NewVonageSmsSender(o, &s).ok());
  o.api_base = "https://rest.nexmo.com";
  CHECK(NewVonageSmsSender(o, &s).ok());
}

}  // namespace
}  // namespace otpd
