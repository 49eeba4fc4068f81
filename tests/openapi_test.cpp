#include "http/openapi.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <functional>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "otp_stack.h"

namespace otpd {
namespace {

using Json = nlohmann::ordered_json;

// A JSON Schema subset, enough for the document's schemas: $ref, type,
// enum, required, properties, additionalProperties: false, items,
// minLength/maxLength. Returns "" when `v` matches, else what and where not.
std::string Mismatch(const Json& doc, const Json& schema, const Json& v, const std::string& at) {
  if (schema.contains("$ref")) {
    const std::string ref = schema["$ref"];
    const std::string prefix = "#/components/schemas/";
    if (ref.compare(0, prefix.size(), prefix) != 0) return at + ": unsupported $ref " + ref;
    const std::string name = ref.substr(prefix.size());
    if (!doc["components"]["schemas"].contains(name)) return at + ": no schema " + name;
    return Mismatch(doc, doc["components"]["schemas"][name], v, at);
  }
  const std::string type = schema.value("type", "");
  if ((type == "object" && !v.is_object()) || (type == "array" && !v.is_array()) ||
      (type == "string" && !v.is_string()) || (type == "integer" && !v.is_number_integer()) ||
      (type == "boolean" && !v.is_boolean())) {
    return at + ": not a " + type + ": " + v.dump();
  }
  if (schema.contains("enum")) {
    bool found = false;
    for (const Json& e : schema["enum"]) found = found || e == v;
    if (!found) return at + ": " + v.dump() + " not in " + schema["enum"].dump();
  }
  if (v.is_string()) {
    const size_t n = v.get_ref<const std::string&>().size();
    if (n < schema.value("minLength", size_t{0}) || n > schema.value("maxLength", size_t(-1))) {
      return at + ": length " + std::to_string(n) + " out of bounds";
    }
  }
  if (v.is_object()) {
    for (const Json& r : schema.value("required", Json::array())) {
      if (!v.contains(r.get<std::string>())) return at + ": missing " + r.get<std::string>();
    }
    const Json props = schema.value("properties", Json::object());
    for (const auto& kv : v.items()) {
      if (props.contains(kv.key())) {
        std::string m = Mismatch(doc, props[kv.key()], kv.value(), at + "." + kv.key());
        if (!m.empty()) return m;
      } else if (schema.value("additionalProperties", true) == false) {
        return at + ": unexpected field " + kv.key();
      }
    }
  }
  if (v.is_array() && schema.contains("items")) {
    for (size_t i = 0; i < v.size(); i++) {
      std::string m = Mismatch(doc, schema["items"], v[i], at + "[" + std::to_string(i) + "]");
      if (!m.empty()) return m;
    }
  }
  return "";
}

HttpAnswer Get(OtpStack* s, const std::string& path) {
  return s->api->Handle(HttpRequest{"GET", path, "", "127.0.0.1"});
}

// SMS providers in fixed circuit states, for /readyz.
class FixedHealth : public SmsHealth {
 public:
  explicit FixedHealth(std::vector<SmsProviderState> states) : states_(std::move(states)) {}
  std::vector<SmsProviderState> ProviderStates() override { return states_; }
  std::string RenderMetrics() override { return ""; }

 private:
  const std::vector<SmsProviderState> states_;
};

// GET /readyz with `health` as the SMS side.
HttpAnswer GetWithHealth(OtpStack* s, SmsHealth* health) {
  s->api->SetSmsHealth(health);
  HttpAnswer a = Get(s, "/readyz");
  s->api->SetSmsHealth(nullptr);
  return a;
}

using Reproducer = std::function<HttpAnswer(OtpStack*)>;

std::string VerifyBody(const std::string& code) {
  return R"({"user_id":"abc","passcode":")" + code + "\"}";
}

std::string WrongCode(const std::string& code) {
  std::string w = code;
  w[0] = w[0] == '9' ? '0' : static_cast<char>(w[0] + 1);
  return w;
}

// How to make the real server give each documented example, keyed by
// "path status example-name". Each runs on a fresh OtpStack.
std::map<std::string, Reproducer> Reproducers() {
  std::map<std::string, Reproducer> r;
  r["/send-code 200 sent"] = [](OtpStack* s) {
    return s->Post("/send-code", R"({"user_id":"abc"})");
  };
  r["/send-code 404 user_not_found"] = [](OtpStack* s) {
    REQUIRE(s->users->Remove("abc").ok());
    return s->Post("/send-code", R"({"user_id":"abc"})");
  };
  r["/send-code 404 phone_not_found"] = [](OtpStack* s) {
    sqlite3* db = nullptr;
    sqlite3_open(s->dir.File("otpd.db").c_str(), &db);
    sqlite3_exec(db, "UPDATE users SET phone = NULL WHERE user_id = 'abc'", nullptr, nullptr,
                 nullptr);
    sqlite3_close(db);
    return s->Post("/send-code", R"({"user_id":"abc"})");
  };
  r["/send-code 413 too_large"] = [](OtpStack*) {
    return PlainError(413, "Request body too large");
  };
  r["/send-code 422 missing_field"] = [](OtpStack* s) { return s->Post("/send-code", "{}"); };
  r["/send-code 422 not_json"] = [](OtpStack* s) { return s->Post("/send-code", "user_id=abc"); };
  r["/send-code 500 sms_failed"] = [](OtpStack* s) {
    s->failing.FailWith(21211);
    return s->Post("/send-code", R"({"user_id":"abc"})");
  };
  r["/send-code 200 sent_by_voice"] = [](OtpStack* s) {
    OtpOptions o = s->service->options();
    o.channels.voice.enabled = true;
    s->service->SetOptions(o);
    return s->Post("/send-code", R"({"user_id":"abc","channel":"voice"})");
  };
  r["/send-code 422 bad_channel"] = [](OtpStack* s) {
    OtpOptions o = s->service->options();
    o.channels.voice.enabled = true;
    s->service->SetOptions(o);
    return s->Post("/send-code", R"({"user_id":"abc","channel":"whatsapp"})");
  };
  r["/send-code 500 call_failed"] = [](OtpStack* s) {
    OtpOptions o = s->service->options();
    o.channels.voice.enabled = true;
    s->service->SetOptions(o);
    s->failing.FailWith(13224);
    return s->Post("/send-code", R"({"user_id":"abc","channel":"voice"})");
  };
  r["/send-code 503 unavailable"] = [](OtpStack* s) {
    FailingStorage failing(s->storage.get());
    OtpService service(OtpOptions(), &failing, s->users.get(), &s->sms, &s->clock, &s->random,
                       &s->hasher);
    failing.fail = Status::Busy("locked");
    return HttpApi(&service, HttpApiOptions())
        .Handle(HttpRequest{"POST", "/send-code", R"({"user_id":"abc"})", ""});
  };
  r["/verify-code 200 verified"] = [](OtpStack* s) {
    return s->Post("/verify-code", VerifyBody(s->SendAndRead("abc")));
  };
  r["/verify-code 400 invalid_code"] = [](OtpStack* s) {
    return s->Post("/verify-code", VerifyBody(WrongCode(s->SendAndRead("abc"))));
  };
  r["/verify-code 404 not_found"] = [](OtpStack* s) {
    return s->Post("/verify-code", VerifyBody("123456"));
  };
  r["/verify-code 410 expired"] = [](OtpStack* s) {
    const std::string code = s->SendAndRead("abc");
    s->clock.AdvanceSeconds(301);
    return s->Post("/verify-code", VerifyBody(code));
  };
  r["/verify-code 413 too_large"] = r["/send-code 413 too_large"];
  r["/verify-code 422 missing_field"] = [](OtpStack* s) {
    return s->Post("/verify-code", R"({"passcode":"123456"})");
  };
  r["/verify-code 422 not_json"] = [](OtpStack* s) {
    return s->Post("/verify-code", "user_id=abc");
  };
  r["/verify-code 429 too_many_attempts"] = [](OtpStack* s) {
    const std::string wrong = WrongCode(s->SendAndRead("abc"));
    for (int i = 0; i < 3; i++) s->Post("/verify-code", VerifyBody(wrong));
    return s->Post("/verify-code", VerifyBody(wrong));
  };
  r["/verify-code 503 unavailable"] = [](OtpStack*) {
    return StatusToAnswer(Status::Unavailable("down"), "abc");
  };
  r["/healthz 200 ok"] = [](OtpStack* s) { return Get(s, "/healthz"); };
  r["/readyz 200 ready"] = [](OtpStack* s) { return Get(s, "/readyz"); };
  r["/readyz 200 degraded"] = [](OtpStack* s) {
    FixedHealth health({{"twilio", "open"}, {"vonage", "closed"}});
    return GetWithHealth(s, &health);
  };
  r["/readyz 503 providers_open"] = [](OtpStack* s) {
    FixedHealth health({{"twilio", "open"}, {"vonage", "open"}});
    return GetWithHealth(s, &health);
  };
  r["/readyz 503 not_ready"] = [](OtpStack* s) {
    FailingStorage failing(s->storage.get());
    OtpService service(OtpOptions(), &failing, s->users.get(), &s->sms, &s->clock, &s->random,
                       &s->hasher);
    failing.fail = Status::IOError("read-only");
    return HttpApi(&service, HttpApiOptions()).Handle(HttpRequest{"GET", "/readyz", "", ""});
  };
  return r;
}

// Documented in CONTRACT.md but not produced by this build (no send rate
// limits yet): checked against the schema only.
const std::set<std::string> kNotProducedYet = {"/send-code 429 rate_limited"};

}  // namespace

TEST_CASE("OpenAPI paths and methods are exactly HttpApi::Routes()") {
  const Json doc = OpenApiDocument(HttpApiOptions());
  std::set<std::string> documented, served;
  for (const auto& p : doc["paths"].items()) {
    for (const auto& m : p.value().items()) documented.insert(m.key() + " " + p.key());
  }
  for (const Route& r : HttpApi::Routes()) {
    std::string method = r.method;
    for (char& c : method) c = static_cast<char>(tolower(c));
    served.insert(method + " " + r.path);
  }
  CHECK(documented == served);
  CHECK(doc["openapi"].get<std::string>().rfind("3.0", 0) == 0);
}

TEST_CASE("Every OpenAPI example matches its schema and the real answer") {
  const Json doc = OpenApiDocument(HttpApiOptions());
  const auto reproducers = Reproducers();
  int checked = 0;
  for (const auto& p : doc["paths"].items()) {
    for (const auto& op : p.value().items()) {
      for (const auto& resp : op.value()["responses"].items()) {
        if (!resp.value().contains("content")) continue;
        for (const auto& media : resp.value()["content"].items()) {
          const Json examples = media.value().value("examples", Json::object());
          for (const auto& ex : examples.items()) {
            const std::string key = p.key() + " " + resp.key() + " " + ex.key();
            CAPTURE(key);
            const Json& schema = media.value()["schema"];
            CHECK(Mismatch(doc, schema, ex.value()["value"], "example") == "");
            if (kNotProducedYet.count(key)) continue;
            auto it = reproducers.find(key);
            REQUIRE_MESSAGE(it != reproducers.end(), "no way to reproduce " << key);
            OtpStack s;
            HttpAnswer a = it->second(&s);
            CHECK(std::to_string(a.status) == resp.key());
            CHECK(a.content_type == media.key());
            const Json real = Json::parse(a.body);
            CHECK(Mismatch(doc, schema, real, "answer") == "");
            CHECK(real.dump() == ex.value()["value"].dump());
            if (resp.value().contains("headers") &&
                resp.value()["headers"].contains("Retry-After")) {
              CHECK(!HeaderValue(a, "Retry-After").empty());
            }
            checked++;
          }
        }
      }
    }
  }
  CHECK(checked == static_cast<int>(reproducers.size()));
}

TEST_CASE("Every GET answers 200 with the documented content type") {
  const Json doc = OpenApiDocument(HttpApiOptions());
  OtpStack s;
  for (const auto& p : doc["paths"].items()) {
    if (!p.value().contains("get")) continue;
    if (p.value()["get"].contains("parameters")) continue;  // needs a query: tested on its own
    CAPTURE(p.key());
    HttpAnswer a = Get(&s, p.key());
    CHECK(a.status == 200);
    const std::string type = a.content_type.substr(0, a.content_type.find(';'));
    CHECK(p.value()["get"]["responses"]["200"]["content"].contains(type));
  }
  CHECK(Json::parse(Get(&s, "/openapi.json").body) == doc);
}

TEST_CASE("The bearer scheme appears only when API keys are enabled") {
  HttpApiOptions off;
  Json doc = OpenApiDocument(off);
  CHECK_FALSE(doc.contains("security"));
  CHECK_FALSE(doc["components"].contains("securitySchemes"));
  CHECK_FALSE(doc["paths"]["/send-code"]["post"]["responses"].contains("401"));

  HttpApiOptions on;
  on.api_keys_enabled = true;
  doc = OpenApiDocument(on);
  CHECK(doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer");
  CHECK(doc["security"] == Json::parse(R"([{"bearerAuth": []}])"));
  CHECK(doc["paths"]["/healthz"]["get"]["security"] == Json::array());
  CHECK(doc["paths"]["/send-code"]["post"]["responses"].contains("401"));
  CHECK_FALSE(doc["paths"]["/healthz"]["get"]["responses"].contains("401"));
}

TEST_CASE("servers follows the base path; limits follow the options") {
  HttpApiOptions o;
  CHECK(OpenApiDocument(o)["servers"][0]["url"] == "/");
  o.base_path = "/otp";
  o.max_passcode_bytes = 12;
  o.expose_full_phone = true;
  Json doc = OpenApiDocument(o);
  CHECK(doc["servers"][0]["url"] == "/otp");
  CHECK(doc["components"]["schemas"]["VerifyCodeRequest"]["properties"]["passcode"]["maxLength"] ==
        12);
  CHECK(doc["paths"]["/send-code"]["post"]["responses"]["200"]["content"]["application/json"]
           ["examples"]["sent"]["value"]["phone"] == "+12015551111");
}

}  // namespace otpd
