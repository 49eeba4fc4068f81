#include "http/http_api.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <nlohmann/json.hpp>

#include "otp_stack.h"

namespace otpd {
namespace {

// The contract tests below go over a real loopback socket to an in-process
// server on an ephemeral port, so they see exactly what a client sees.
struct HttpStack : OtpStack {
  explicit HttpStack(const OtpOptions& o = OtpOptions(), const HttpApiOptions& a = HttpApiOptions())
      : OtpStack(o, a, Transport::kHttp) {}
};

const char kMissingUserId[] =
    R"({"detail":[{"loc":["body","user_id"],"msg":"field required","type":"value_error.missing"}]})";

}  // namespace

TEST_CASE("POST /send-code 200: the contract body, phone masked by default") {
  HttpStack s;
  HttpAnswer a = s.Post("/send-code", R"({"user_id": "ABC"})");
  CHECK(a.status == 200);
  CHECK(a.body ==
        R"({"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+1*******111"})");
}

TEST_CASE("POST /send-code 200 with expose_phone = full returns the stored number") {
  HttpApiOptions full;
  full.expose_full_phone = true;
  HttpStack s(OtpOptions(), full);
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"abc"})");
  CHECK(a.body ==
        R"({"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+12015551111"})");
}

TEST_CASE("POST /send-code 404 user_not_found and phone_not_found") {
  HttpStack s;
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"Nobody"})");
  CHECK(a.status == 404);
  CHECK(a.body ==
        R"({"detail":{"success":false,"message":"User not found in database","user_id":"nobody",)"
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
  HttpStack s;
  s.failing.FailWith(21610);
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"abc"})");
  CHECK(a.status == 500);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Failed to send SMS","user_id":"abc",)"
                  R"("error_type":"sms_failed","provider_code":21610}})");
}

TEST_CASE("POST /verify-code 200, then 404 for the same code") {
  HttpStack s;
  const std::string code = s.SendAndRead("abc");
  HttpAnswer a = s.Post("/verify-code", VerifyJson("ABC", code));
  CHECK(a.status == 200);
  CHECK(a.body == R"({"success":true,"message":"OTP verified successfully","user_id":"abc"})");
  a = s.Post("/verify-code", VerifyJson("abc", code));
  CHECK(a.status == 404);
  CHECK(a.body == R"({"detail":{"success":false,"message":"No OTP found for this user or OTP )"
                  R"(has expired","user_id":"abc","error_type":"not_found"}})");
}

TEST_CASE("POST /verify-code 400 x3 counting down, then 429 with Retry-After") {
  HttpStack s;
  const std::string code = s.SendAndRead("abc");
  for (int left = 2; left >= 0; left--) {
    HttpAnswer a = s.Post("/verify-code", VerifyJson("abc", WrongCode(code)));
    CHECK(a.status == 400);
    CHECK(a.body == R"({"detail":{"success":false,"message":"Invalid OTP. )" +
                        std::to_string(left) +
                        R"( attempts remaining","user_id":"abc","error_type":"invalid_code",)"
                        R"("attempts_remaining":)" +
                        std::to_string(left) + "}}");
  }
  HttpAnswer a = s.Post("/verify-code", VerifyJson("abc", code));  // the right code
  CHECK(a.status == 429);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Too many failed attempts",)"
                  R"("user_id":"abc","error_type":"too_many_attempts","retry_after":300}})");
  CHECK(HeaderValue(a, "Retry-After") == "300");
}

TEST_CASE("POST /send-code 429 rate_limited with Retry-After and retry_after; no SMS") {
  OtpStack s;
  s.SendAndRead("abc");
  s.clock.Advance(10500);
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"ABC"})");
  CHECK(a.status == 429);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Too many requests. Try again in 20 )"
                  R"(seconds","user_id":"abc","error_type":"rate_limited","retry_after":20}})");
  CHECK(HeaderValue(a, "Retry-After") == "20");
  CHECK(s.sms.count() == 1);
}

TEST_CASE("POST /send-code: the per-IP cap uses the request's client IP") {
  OtpOptions options;
  options.send_limits.per_ip = 1;
  OtpStack s(options);
  REQUIRE(s.users->Upsert("def", "+12025552222").ok());
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
  HttpApi api(s.service.get(), HttpApiOptions(), &limiter);
  HttpRequest health{"GET", "/healthz", "", "192.0.2.1"};
  HttpRequest send{"POST", "/send-code", R"({"user_id":"abc"})", "192.0.2.1"};
  CHECK(api.Handle(health).status == 200);
  CHECK(api.Handle(send).status == 200);
  HttpAnswer a = api.Handle(send);
  CHECK(a.status == 429);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Too many requests. Try again in 1 )"
                  R"(seconds","user_id":"","error_type":"rate_limited","retry_after":1}})");
  CHECK(HeaderValue(a, "Retry-After") == "1");
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
  CHECK(HeaderValue(a, "WWW-Authenticate") == "Bearer");
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
  CHECK(s.Post("/verify-code", VerifyJson("abc", WrongCode(code))).status == 400);
  CHECK(s.Post("/verify-code", VerifyJson("abc", WrongCode(code))).status == 400);
  s.clock.AdvanceSeconds(100);
  HttpAnswer a = s.Post("/verify-code", VerifyJson("abc", code));
  CHECK(a.status == 429);
  CHECK(a.body == R"({"detail":{"success":false,"message":"Too many failed attempts",)"
                  R"("user_id":"abc","error_type":"too_many_attempts","retry_after":3500}})");
  CHECK(HeaderValue(a, "Retry-After") == "3500");
}

TEST_CASE("POST /verify-code 410 while an expired code is remembered, then 404") {
  HttpStack s;
  const std::string code = s.SendAndRead("abc");
  s.clock.AdvanceSeconds(300);
  HttpAnswer a = s.Post("/verify-code", VerifyJson("abc", code));
  CHECK(a.status == 410);
  CHECK(a.body == R"({"detail":{"success":false,"message":"OTP has expired","user_id":"abc",)"
                  R"("error_type":"expired"}})");
  s.clock.AdvanceSeconds(600);
  CHECK(s.Post("/verify-code", VerifyJson("abc", code)).status == 404);
}

TEST_CASE("POST /verify-code: a non-digit passcode is a wrong code, not a 422") {
  HttpStack s;
  s.SendAndRead("abc");
  HttpAnswer a = s.Post("/verify-code", VerifyJson("abc", "12ab56"));
  CHECK(a.status == 400);
  CHECK(a.body.find("\"attempts_remaining\":2") != std::string::npos);
}

TEST_CASE("422: the body is not JSON, or not an object") {
  HttpStack s;
  for (const char* body : {"", "not json", "{\"user_id\":", "\xff\xfe"}) {
    HttpAnswer a = s.Post("/send-code", body);
    CHECK(a.status == 422);
    CHECK(a.body == R"({"detail":[{"loc":["body"],"msg":"Invalid JSON body",)"
                    R"("type":"value_error.jsondecode"}]})");
  }
  for (const char* body : {"[]", "\"abc\"", "42", "null"}) {
    HttpAnswer a = s.Post("/verify-code", body);
    CHECK(a.status == 422);
    CHECK(
        a.body ==
        R"({"detail":[{"loc":["body"],"msg":"value is not a valid dict","type":"type_error.dict"}]})");
  }
}

TEST_CASE("422: missing, ill-typed, empty and overlong fields") {
  HttpStack s;
  CHECK(s.Post("/send-code", "{}").body == kMissingUserId);
  CHECK(s.Post("/send-code", R"({"user_id":null})").body == kMissingUserId);
  CHECK(s.Post("/send-code", R"({"userid":"abc"})").status == 422);
  for (const char* bad : {"42", "true", "[\"abc\"]", "{\"a\":1}"}) {
    HttpAnswer a = s.Post("/send-code", std::string("{\"user_id\":") + bad + "}");
    CHECK(a.status == 422);
    CHECK(
        a.body ==
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
  HttpStack s;
  HttpAnswer a = s.Post("/verify-code", "{}");
  CHECK(a.status == 422);
  CHECK(a.body == R"({"detail":[{"loc":["body","user_id"],"msg":"field required",)"
                  R"("type":"value_error.missing"},{"loc":["body","passcode"],)"
                  R"("msg":"field required","type":"value_error.missing"}]})");
  CHECK(s.Post("/verify-code", R"({"user_id":"abc","passcode":123456})").status == 422);
  CHECK(s.Post("/verify-code", R"({"user_id":"abc","passcode":""})").status == 422);
  CHECK(
      s.Post("/verify-code", "{\"user_id\":\"abc\",\"passcode\":\"" + std::string(65, '1') + "\"}")
          .status == 422);
}

TEST_CASE("Unknown fields are ignored, as the old service did") {
  HttpStack s;
  CHECK(s.Post("/send-code", R"({"user_id":"abc","extra":[1,2]})").status == 200);
}

TEST_CASE("Unknown path 404 and wrong method 405, both JSON") {
  HttpStack s;
  HttpAnswer a = s.Get("/nope");
  CHECK(a.status == 404);
  CHECK(a.body == R"({"detail":"Not Found"})");
  a = s.Get("/send-code");
  CHECK(a.status == 405);
  CHECK(a.body == R"({"detail":"Method Not Allowed"})");
  CHECK(HeaderValue(a, "Allow") == "POST");
  a = s.Request("DELETE", "/healthz");
  CHECK(a.status == 405);
  CHECK(HeaderValue(a, "Allow") == "GET, HEAD");
}

TEST_CASE("/healthz and /readyz") {
  HttpStack s;
  HttpAnswer a = s.Get("/healthz");
  CHECK(a.status == 200);
  CHECK(a.body == R"({"status":"ok"})");
  CHECK(s.Get("/readyz").status == 200);
}

TEST_CASE("Store failures answer 503 with Retry-After (or 500), never a contract error") {
  HttpStack s;
  FailingStorage failing(s.storage.get());
  OtpService service(OtpOptions(), &failing, s.users.get(), &s.sms, &s.clock, &s.random, &s.hasher);
  HttpApi api(&service, HttpApiOptions());
  failing.fail = Status::Busy("database is locked");
  HttpAnswer a = api.Handle(HttpRequest{"POST", "/verify-code", VerifyJson("abc", "123456"), ""});
  CHECK(a.status == 503);
  CHECK(HeaderValue(a, "Retry-After") == "1");
  CHECK(a.body.find("locked") == std::string::npos);  // no internals leak
  CHECK(api.Handle(HttpRequest{"POST", "/send-code", R"({"user_id":"abc"})", ""}).status == 503);
  CHECK(api.Handle(HttpRequest{"GET", "/readyz", "", ""}).status == 503);
  failing.fail = Status::Internal("boom");
  CHECK(api.Handle(HttpRequest{"POST", "/send-code", R"({"user_id":"abc"})", ""}).status == 500);
}

TEST_CASE("No input, however malformed, produces a 5xx") {
  OtpStack s;  // direct: thousands of requests
  s.SendAndRead("abc");
  SeededRandom random(99);
  const std::string seeds[] = {R"({"user_id":"abc"})", R"({"user_id":"abc","passcode":"123456"})",
                               R"({"user_id":["a"],"passcode":{"x":null}})", "[]", ""};
  const char alphabet[] = "{}[]\",:\\0123456789abcu \x00\xff\xc3\xa9\n";
  for (int i = 0; i < 20000; i++) {
    uint8_t r[4];
    REQUIRE(random.Fill(r, sizeof r).ok());
    std::string body = seeds[r[0] % 5];
    for (int k = 0; k < 1 + r[1] % 4; k++) {  // a few byte edits
      uint8_t e[3];
      REQUIRE(random.Fill(e, sizeof e).ok());
      const size_t at = body.empty() ? 0 : e[0] % body.size();
      const char c = alphabet[e[1] % (sizeof alphabet - 1)];
      if (e[2] % 3 == 0 || body.empty())
        body.insert(at, 1, c);
      else if (e[2] % 3 == 1)
        body[at] = c;
      else
        body.erase(at, 1);
    }
    const char* path = r[2] % 2 ? "/send-code" : "/verify-code";
    HttpAnswer a = s.Post(path, body);
    CAPTURE(body);
    REQUIRE(a.status < 500);
    REQUIRE_FALSE(a.body.empty());
  }
}

TEST_CASE("Answers stay valid JSON for user IDs with quotes, backslashes and control bytes") {
  OtpStack s;
  const std::string id = std::string("a\"b\\c\n\x01\xc3\xa9", 9);
  nlohmann::json request = {{"user_id", id}};
  HttpAnswer a = s.Post("/send-code", request.dump());
  CHECK(a.status == 404);
  nlohmann::json body = nlohmann::json::parse(a.body, nullptr, false);
  REQUIRE_FALSE(body.is_discarded());
  CHECK(body["detail"]["user_id"] == id);
  CHECK(body["detail"]["error_type"] == "user_not_found");
  request["passcode"] = "123456";
  a = s.Post("/verify-code", request.dump());
  body = nlohmann::json::parse(a.body, nullptr, false);
  REQUIRE_FALSE(body.is_discarded());
  CHECK(body["detail"]["user_id"] == id);
}

TEST_CASE("With API keys, the documentation stays open and the API does not") {
  HttpApiOptions options;
  REQUIRE(ApiKeys::Load("doc-test-key-0123456789", "", &options.api_keys).ok());
  OtpStack s(OtpOptions(), options);
  for (const char* open : {"/healthz", "/docs", "/redoc", "/openapi.json"}) {
    CAPTURE(open);
    CHECK(s.Get(open).status == 200);
  }
  CHECK(s.Get("/readyz").status == 401);
  CHECK(s.Get("/metrics").status == 401);
  CHECK(s.Post("/send-code", R"({"user_id":"abc"})").status == 401);
  // The pages describe the bearer scheme and offer a key field.
  CHECK(s.Get("/openapi.json").body.find("bearer") != std::string::npos);
}

}  // namespace otpd
