#include "http_api.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include "otp_stack.h"

namespace otpd {
namespace {

std::string Header(const HttpAnswer& a, const std::string& name) {
  for (const auto& h : a.headers) {
    if (h.first == name) return h.second;
  }
  return "";
}

std::string VerifyBody(const std::string& user, const std::string& code) {
  return "{\"user_id\":\"" + user + "\",\"passcode\":\"" + code + "\"}";
}

std::string Wrong(const std::string& code) {
  std::string w = code;
  w[0] = w[0] == '9' ? '0' : static_cast<char>(w[0] + 1);
  return w;
}

// Forwards to a real store until told to fail (leveldb's ErrorEnv).
class FailingStorage : public Storage {
 public:
  explicit FailingStorage(Storage* target) : target_(target) {}
  Status fail;
  Status PutCode(const StoredCode& c) override { return fail.ok() ? target_->PutCode(c) : fail; }
  Status DeleteCode(const std::string& u, const std::string& h) override {
    return fail.ok() ? target_->DeleteCode(u, h) : fail;
  }
  Status VerifyCode(const std::string& u, const std::string& h, const VerifyLimits& l,
                    VerifyResult* r) override {
    return fail.ok() ? target_->VerifyCode(u, h, l, r) : fail;
  }
  Status ReserveSend(const SendRequest& q, const SendLimits& l, SendDecision* d) override {
    return fail.ok() ? target_->ReserveSend(q, l, d) : fail;
  }
  Status PurgeExpired(int64_t g, int64_t h, int64_t* n) override {
    return fail.ok() ? target_->PurgeExpired(g, h, n) : fail;
  }
  Status CheckWritable() override { return fail.ok() ? target_->CheckWritable() : fail; }

 private:
  Storage* target_;
};

const char kMissingUserId[] =
    R"({"detail":[{"loc":["body","user_id"],"msg":"field required","type":"value_error.missing"}]})";

}  // namespace

TEST_CASE("POST /send-code 200: the contract body, phone masked by default") {
  OtpStack s;
  HttpAnswer a = s.Post("/send-code", R"({"user_id": "ABC"})");
  CHECK(a.status == 200);
  CHECK(a.body ==
        R"({"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+1*******111"})");
}

TEST_CASE("POST /send-code 200 with expose_phone = full returns the stored number") {
  HttpApiOptions full;
  full.expose_full_phone = true;
  OtpStack s(OtpOptions(), full);
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"abc"})");
  CHECK(a.body ==
        R"({"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+11111111111"})");
}

TEST_CASE("POST /send-code 404 user_not_found and phone_not_found") {
  OtpStack s;
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"Nobody"})");
  CHECK(a.status == 404);
  CHECK(a.body == R"({"detail":{"success":false,"message":"User not found","user_id":"nobody",)"
                  R"("error_type":"user_not_found"}})");
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(s.dir.File("otpd.db").c_str(), &db) == SQLITE_OK);
  REQUIRE(sqlite3_exec(db, "INSERT INTO users(user_id, phone) VALUES ('nophone', NULL)", nullptr,
                       nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
  a = s.Post("/send-code", R"({"user_id":"nophone"})");
  CHECK(a.status == 404);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Phone number not found for user",)"
                  R"("user_id":"nophone","error_type":"phone_not_found"}})");
}

TEST_CASE("POST /send-code 500 sms_failed carries the provider's code") {
  OtpStack s;
  s.failing.FailWith(21610);
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"abc"})");
  CHECK(a.status == 500);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Failed to send SMS","user_id":"abc",)"
                  R"("error_type":"sms_failed","provider_code":21610}})");
}

TEST_CASE("POST /verify-code 200, then 404 for the same code") {
  OtpStack s;
  const std::string code = s.SendAndRead("abc");
  HttpAnswer a = s.Post("/verify-code", VerifyBody("ABC", code));
  CHECK(a.status == 200);
  CHECK(a.body == R"({"success":true,"message":"OTP verified successfully","user_id":"abc"})");
  a = s.Post("/verify-code", VerifyBody("abc", code));
  CHECK(a.status == 404);
  CHECK(a.body == R"({"detail":{"success":false,"message":"No OTP found for this user or OTP )"
                  R"(has expired","user_id":"abc","error_type":"not_found"}})");
}

TEST_CASE("POST /verify-code 400 x3 counting down, then 429 with Retry-After") {
  OtpStack s;
  const std::string code = s.SendAndRead("abc");
  for (int left = 2; left >= 0; left--) {
    HttpAnswer a = s.Post("/verify-code", VerifyBody("abc", Wrong(code)));
    CHECK(a.status == 400);
    CHECK(a.body == R"({"detail":{"success":false,"message":"Invalid OTP. )" + std::to_string(left) +
                        R"( attempts remaining","user_id":"abc","error_type":"invalid_code",)"
                        R"("attempts_remaining":)" + std::to_string(left) + "}}");
  }
  HttpAnswer a = s.Post("/verify-code", VerifyBody("abc", code));  // the right code
  CHECK(a.status == 429);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Too many failed attempts",)"
                  R"("user_id":"abc","error_type":"too_many_attempts","retry_after":300}})");
  CHECK(Header(a, "Retry-After") == "300");
}

TEST_CASE("POST /send-code 429 rate_limited with Retry-After and retry_after; no SMS") {
  OtpStack s;
  s.SendAndRead("abc");
  s.clock.Advance(10500);
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"ABC"})");
  CHECK(a.status == 429);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Too many requests. Try again in 20 )"
                  R"(seconds","user_id":"abc","error_type":"rate_limited","retry_after":20}})");
  CHECK(Header(a, "Retry-After") == "20");
  CHECK(s.sms.count() == 1);
}

TEST_CASE("POST /send-code: the per-IP cap uses the request's client IP") {
  OtpOptions options;
  options.send_limits.per_ip = 1;
  OtpStack s(options);
  REQUIRE(s.users->Upsert("def", "+12222222222").ok());
  HttpRequest request{"POST", "/send-code", R"({"user_id":"abc"})", "192.0.2.7"};
  CHECK(s.api->Handle(request).status == 200);
  request.body = R"({"user_id":"def"})";
  CHECK(s.api->Handle(request).status == 429);
  request.client_ip = "192.0.2.8";
  CHECK(s.api->Handle(request).status == 200);
}

TEST_CASE("Per-IP limit: every endpoint takes a token; 429 rate_limited before any work") {
  OtpStack s;
  RateLimiter limiter(RateLimiterOptions{60, 2, 1024}, &s.clock);
  HttpApi api(s.service.get(), s.storage.get(), HttpApiOptions(), &limiter);
  HttpRequest health{"GET", "/healthz", "", "192.0.2.1"};
  HttpRequest send{"POST", "/send-code", R"({"user_id":"abc"})", "192.0.2.1"};
  CHECK(api.Handle(health).status == 200);
  CHECK(api.Handle(send).status == 200);
  HttpAnswer a = api.Handle(send);
  CHECK(a.status == 429);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Too many requests. Try again in 1 )"
                  R"(seconds","user_id":"","error_type":"rate_limited","retry_after":1}})");
  CHECK(Header(a, "Retry-After") == "1");
  CHECK(api.Handle(HttpRequest{"GET", "/nowhere", "", "192.0.2.1"}).status == 429);
  CHECK(s.sms.count() == 1);
  CHECK(api.Handle(HttpRequest{"GET", "/healthz", "", "192.0.2.2"}).status == 200);
  s.clock.AdvanceSeconds(1);
  CHECK(api.Handle(health).status == 200);
}

TEST_CASE("conceal_unknown_users: an unknown user gets a 200 shaped like a known user's") {
  OtpOptions options;
  options.conceal_unknown_users = true;
  OtpStack s(options);
  HttpAnswer known = s.Post("/send-code", R"({"user_id":"abc"})");
  HttpAnswer unknown = s.Post("/send-code", R"({"user_id":"nobody"})");
  CHECK(known.status == 200);
  CHECK(unknown.status == 200);
  const std::string shape = R"({"message":"OTP sent successfully via SMS","user_id":")";
  CHECK(unknown.body.rfind(shape + "nobody\",\"phone\":\"+1*******", 0) == 0);
  CHECK(unknown.body.size() == known.body.size() + std::string("nobody").size() - 3);
  CHECK(unknown.headers == known.headers);
  CHECK(s.sms.count() == 1);
}

TEST_CASE("API keys: 401 unauthorized with WWW-Authenticate, except /healthz") {
  HttpApiOptions options;
  REQUIRE(ApiKeys::Load("k1k1k1k1k1k1k1k1k1k1", "", &options.api_keys).ok());
  OtpStack s(OtpOptions(), options);
  HttpRequest send{"POST", "/send-code", R"({"user_id":"abc"})", "127.0.0.1"};
  HttpAnswer a = s.api->Handle(send);
  CHECK(a.status == 401);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Missing or invalid API key",)"
                  R"("error_type":"unauthorized"}})");
  CHECK(Header(a, "WWW-Authenticate") == "Bearer");
  CHECK(s.sms.count() == 0);
  send.authorization = "Bearer k1k1k1k1k1k1k1k1k1k2";
  CHECK(s.api->Handle(send).status == 401);
  send.authorization = "Bearer k1k1k1k1k1k1k1k1k1k1";
  CHECK(s.api->Handle(send).status == 200);
  CHECK(s.api->Handle(HttpRequest{"GET", "/healthz", "", "127.0.0.1"}).status == 200);
  CHECK(s.api->Handle(HttpRequest{"GET", "/readyz", "", "127.0.0.1"}).status == 401);
  CHECK(s.api->Handle(HttpRequest{"GET", "/nowhere", "", "127.0.0.1"}).status == 401);
}

TEST_CASE("POST /verify-code 429 too_many_attempts once the user's failure cap is reached") {
  OtpOptions options;
  options.max_failures = 2;
  OtpStack s(options);
  const std::string code = s.SendAndRead("abc");
  CHECK(s.Post("/verify-code", VerifyBody("abc", Wrong(code))).status == 400);
  CHECK(s.Post("/verify-code", VerifyBody("abc", Wrong(code))).status == 400);
  s.clock.AdvanceSeconds(100);
  HttpAnswer a = s.Post("/verify-code", VerifyBody("abc", code));
  CHECK(a.status == 429);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Too many failed attempts",)"
                  R"("user_id":"abc","error_type":"too_many_attempts","retry_after":3500}})");
  CHECK(Header(a, "Retry-After") == "3500");
}

TEST_CASE("POST /verify-code 410 while an expired code is remembered, then 404") {
  OtpStack s;
  const std::string code = s.SendAndRead("abc");
  s.clock.AdvanceSeconds(300);
  HttpAnswer a = s.Post("/verify-code", VerifyBody("abc", code));
  CHECK(a.status == 410);
  CHECK(a.body == R"({"detail":{"success":false,"message":"OTP has expired","user_id":"abc",)"
                  R"("error_type":"expired"}})");
  s.clock.AdvanceSeconds(600);
  CHECK(s.Post("/verify-code", VerifyBody("abc", code)).status == 404);
}

TEST_CASE("POST /verify-code: a non-digit passcode is a wrong code, not a 422") {
  OtpStack s;
  s.SendAndRead("abc");
  HttpAnswer a = s.Post("/verify-code", VerifyBody("abc", "12ab56"));
  CHECK(a.status == 400);
  CHECK(a.body.find("\"attempts_remaining\":2") != std::string::npos);
}

TEST_CASE("422: the body is not JSON, or not an object") {
  OtpStack s;
  for (const char* body : {"", "not json", "{\"user_id\":", "\xff\xfe"}) {
    HttpAnswer a = s.Post("/send-code", body);
    CHECK(a.status == 422);
    CHECK(a.body == R"({"detail":[{"loc":["body"],"msg":"Invalid JSON body",)"
                    R"("type":"value_error.jsondecode"}]})");
  }
  for (const char* body : {"[]", "\"abc\"", "42", "null"}) {
    HttpAnswer a = s.Post("/verify-code", body);
    CHECK(a.status == 422);
    CHECK(a.body ==
          R"({"detail":[{"loc":["body"],"msg":"value is not a valid dict","type":"type_error.dict"}]})");
  }
}

TEST_CASE("422: missing, ill-typed, empty and overlong fields") {
  OtpStack s;
  CHECK(s.Post("/send-code", "{}").body == kMissingUserId);
  CHECK(s.Post("/send-code", R"({"user_id":null})").body == kMissingUserId);
  CHECK(s.Post("/send-code", R"({"userid":"abc"})").status == 422);
  for (const char* bad : {"42", "true", "[\"abc\"]", "{\"a\":1}"}) {
    HttpAnswer a = s.Post("/send-code", std::string("{\"user_id\":") + bad + "}");
    CHECK(a.status == 422);
    CHECK(a.body ==
          R"({"detail":[{"loc":["body","user_id"],"msg":"str type expected","type":"type_error.str"}]})");
  }
  CHECK(s.Post("/send-code", R"({"user_id":""})").body ==
        R"({"detail":[{"loc":["body","user_id"],"msg":"ensure this value has at least 1 )"
        R"(characters","type":"value_error.any_str.min_length","ctx":{"limit_value":1}}]})");
  HttpAnswer longer = s.Post("/send-code", "{\"user_id\":\"" + std::string(129, 'a') + "\"}");
  CHECK(longer.status == 422);
  CHECK(longer.body.find("\"ctx\":{\"limit_value\":128}") != std::string::npos);
  // Exactly 128 bytes is allowed: an unknown user, not a validation error.
  CHECK(s.Post("/send-code", "{\"user_id\":\"" + std::string(128, 'a') + "\"}").status == 404);
}

TEST_CASE("422: verify-code lists every bad field, user_id first") {
  OtpStack s;
  HttpAnswer a = s.Post("/verify-code", "{}");
  CHECK(a.status == 422);
  CHECK(a.body == R"({"detail":[{"loc":["body","user_id"],"msg":"field required",)"
                  R"("type":"value_error.missing"},{"loc":["body","passcode"],)"
                  R"("msg":"field required","type":"value_error.missing"}]})");
  CHECK(s.Post("/verify-code", R"({"user_id":"abc","passcode":123456})").status == 422);
  CHECK(s.Post("/verify-code", R"({"user_id":"abc","passcode":""})").status == 422);
  CHECK(s.Post("/verify-code", "{\"user_id\":\"abc\",\"passcode\":\"" + std::string(65, '1') +
                                   "\"}").status == 422);
}

TEST_CASE("Unknown fields are ignored, as the old service did") {
  OtpStack s;
  CHECK(s.Post("/send-code", R"({"user_id":"abc","extra":[1,2]})").status == 200);
}

TEST_CASE("Unknown path 404 and wrong method 405, both JSON") {
  OtpStack s;
  HttpAnswer a = s.api->Handle(HttpRequest{"GET", "/nope", "", "127.0.0.1"});
  CHECK(a.status == 404);
  CHECK(a.body == R"({"detail":"Not Found"})");
  a = s.api->Handle(HttpRequest{"GET", "/send-code", "", "127.0.0.1"});
  CHECK(a.status == 405);
  CHECK(a.body == R"({"detail":"Method Not Allowed"})");
  CHECK(Header(a, "Allow") == "POST");
  a = s.api->Handle(HttpRequest{"DELETE", "/healthz", "", "127.0.0.1"});
  CHECK(a.status == 405);
  CHECK(Header(a, "Allow") == "GET, HEAD");
}

TEST_CASE("/healthz and /readyz") {
  OtpStack s;
  HttpAnswer a = s.api->Handle(HttpRequest{"GET", "/healthz", "", "::1"});
  CHECK(a.status == 200);
  CHECK(a.body == R"({"status":"ok"})");
  CHECK(s.api->Handle(HttpRequest{"GET", "/readyz", "", "::1"}).status == 200);
}

TEST_CASE("Store failures answer 503 with Retry-After (or 500), never a contract error") {
  OtpStack s;
  FailingStorage failing(s.storage.get());
  OtpService service(OtpOptions(), &failing, s.users.get(), &s.sms, &s.clock, &s.random, &s.hasher);
  HttpApi api(&service, &failing, HttpApiOptions());
  failing.fail = Status::Busy("database is locked");
  HttpAnswer a = api.Handle(HttpRequest{"POST", "/verify-code", VerifyBody("abc", "123456"), ""});
  CHECK(a.status == 503);
  CHECK(Header(a, "Retry-After") == "1");
  CHECK(a.body.find("locked") == std::string::npos);  // no internals leak
  CHECK(api.Handle(HttpRequest{"POST", "/send-code", R"({"user_id":"abc"})", ""}).status == 503);
  CHECK(api.Handle(HttpRequest{"GET", "/readyz", "", ""}).status == 503);
  failing.fail = Status::Internal("boom");
  CHECK(api.Handle(HttpRequest{"POST", "/send-code", R"({"user_id":"abc"})", ""}).status == 500);
}

}  // namespace otpd
