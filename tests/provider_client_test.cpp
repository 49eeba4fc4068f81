// The shared provider client (sms/provider_client.h) against a fake
// provider on 127.0.0.1 with run-time certificates.
#include "sms/provider_client.h"

#include <doctest/doctest.h>

#include "fake_vonage.h"
#include "test_tls.h"
#include "test_util.h"

namespace otpd {
namespace {

struct ClientSetup {
  TempDir dir;
  TestCa ca{dir.path(), "ca"};
  TestCa other{dir.path(), "other"};
  PemFiles good = ca.Issue("provider", "IP:127.0.0.1");
  FakeVonage fake{good};
  std::unique_ptr<ProviderClient> Client(const std::string& ca_file) {
    ProviderClientOptions o;
    o.name = "acme";
    o.api_base = fake.base();
    o.ca_file = ca_file;
    std::unique_ptr<ProviderClient> c;
    Status s = ProviderClient::New(o, &c);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    return c;
  }
};

TEST_CASE("provider client: posts the form, retries what the reader calls retryable") {
  ClientSetup t;
  auto client = t.Client(t.ca.cert_file());
  t.fake.Respond([](int n, httplib::Response& res) {
    if (n < 2) res.status = 503;
  });
  std::vector<int> seen;
  const ProviderPost post{"/sms/json", FormEncode({{"to", "15551234567"}, {"text", "a b+"}}),
                          ProviderDeadlineIn(3000), "+15551234567"};
  Status s = client->PostForm(post, [&seen](const ProviderAnswer& a, bool* retryable) {
    seen.push_back(a.http_status);
    *retryable = a.http_status >= 500;
    return a.http_status == 200 ? Status::OK() : Status::Unavailable("acme down");
  });
  CHECK(s.ok());
  CHECK(seen == std::vector<int>{503, 503, 200});
  auto req = t.fake.requests();
  REQUIRE(req.size() == 3);
  CHECK(req[2].at("text") == "a b+");
  // Not retryable: one request only.
  t.fake.Respond([](int, httplib::Response& res) { res.status = 400; });
  s = client->PostForm(
      post, [](const ProviderAnswer&, bool*) { return Status::InvalidArgument("refused"); });
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(t.fake.requests().size() == 4);
}

TEST_CASE("provider client: a foreign CA is refused, a bad base or CA file at once") {
  ClientSetup t;
  auto client = t.Client(t.other.cert_file());
  int reads = 0;
  Status s = client->PostForm({"/sms/json", "", ProviderDeadlineIn(2000), ""},
                              [&reads](const ProviderAnswer&, bool*) {
                                ++reads;
                                return Status::OK();
                              });
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK(s.message().find("acme TLS certificate rejected") == 0);
  CHECK(reads == 0);
  ProviderClientOptions o;
  o.name = "acme";
  std::unique_ptr<ProviderClient> c;
  o.api_base = "http://127.0.0.1";
  CHECK(ProviderClient::New(o, &c).message().find("acme_api_base") != std::string::npos);
  o.api_base = "https://127.0.0.1";
  o.ca_file = t.dir.path() + "/missing.pem";
  CHECK(ProviderClient::New(o, &c).message().find("acme_ca_file") != std::string::npos);
  o.ca_file.clear();
  o.basic_password = "x\ny";
  CHECK_FALSE(ProviderClient::New(o, &c).ok());
}

TEST_CASE("provider client: form encoding") {
  CHECK(FormEncode({{"To", "+1 555"}, {"B", "ó~"}}) == "To=%2B1%20555&B=%C3%B3~");
  CHECK(HasControlChar("a\x7f"));
  CHECK_FALSE(HasControlChar("abc"));
}

}  // namespace
}  // namespace otpd
