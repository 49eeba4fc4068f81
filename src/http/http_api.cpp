#include "http/http_api.h"

#include <functional>
#include <nlohmann/json.hpp>

#include "core/delivery_metrics.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/phone.h"
#include "core/provider_metrics.h"
#include "http/client_ip.h"
#include "http/docs_pages.h"
#include "http/openapi.h"
#include "otp/rules.h"

namespace otpd {
namespace {

using Json = nlohmann::ordered_json;

std::string Dump(const Json& j) {
  // `replace` keeps dump() from throwing on bytes that are not UTF-8.
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

HttpAnswer JsonAnswer(int status, const Json& body) {
  HttpAnswer a;
  a.status = status;
  a.body = Dump(body);
  return a;
}

// `s` as a JSON string literal. The hot answers are written with this
// instead of building a json object: a third of a verify request's cost
// went there. Every string reaching it is valid UTF-8 (user IDs come from
// the JSON parser; the rest are ours), so only quotes, backslashes and
// control characters need escaping.
std::string Quoted(const std::string& s) {
  std::string out;
  out.reserve(s.size() + 2);
  out.push_back('"');
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      static const char kHex[] = "0123456789abcdef";
      out += "\\u00";
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 15]);
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  out.push_back('"');
  return out;
}

HttpAnswer RawAnswer(int status, std::string body) {
  HttpAnswer a;
  a.status = status;
  a.body = std::move(body);
  return a;
}

// The contract's structured error: {"detail": {"success": false, "message":
// ..., "user_id": ..., "error_type": ...<extra>}}. `extra` is either empty
// or starts with a comma.
HttpAnswer DetailError(int status, const std::string& user_id, const std::string& error_type,
                       const std::string& message, const std::string& extra = "") {
  return RawAnswer(status, "{\"detail\":{\"success\":false,\"message\":" + Quoted(message) +
                               ",\"user_id\":" + Quoted(user_id) +
                               ",\"error_type\":" + Quoted(error_type) + extra + "}}");
}

// One entry of a 422 "detail" list, as pydantic v1 wrote them.
Json FieldError(const std::string& field, const std::string& msg, const std::string& type,
                int limit = -1) {
  Json e = {{"loc", Json::array({"body", field})}, {"msg", msg}, {"type", type}};
  if (limit >= 0) e["ctx"] = {{"limit_value", limit}};
  return e;
}

// Checks one required string field; appends a 422 entry when it is bad.
void CheckStringField(const Json& body, const std::string& field, size_t max_bytes, Json* errors,
                      std::string* value) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    errors->push_back(FieldError(field, "field required", "value_error.missing"));
  } else if (!it->is_string()) {
    errors->push_back(FieldError(field, "str type expected", "type_error.str"));
  } else if (it->get_ref<const std::string&>().empty()) {
    errors->push_back(FieldError(field, "ensure this value has at least 1 characters",
                                 "value_error.any_str.min_length", 1));
  } else if (it->get_ref<const std::string&>().size() > max_bytes) {
    errors->push_back(FieldError(
        field, "ensure this value has at most " + std::to_string(max_bytes) + " characters",
        "value_error.any_str.max_length", static_cast<int>(max_bytes)));
  } else {
    *value = it->get<std::string>();
  }
}

// Checks fields beyond the required strings; appends 422 entries.
using ExtraCheck = std::function<void(const Json& body, Json* errors)>;

// Parses the body and checks the named fields (and `extra`, when set).
// Returns false and fills `answer` with a 422 when anything is wrong.
bool ParseBody(const std::string& raw, const std::vector<std::pair<std::string, size_t>>& fields,
               std::vector<std::string>* values, HttpAnswer* answer,
               const ExtraCheck& extra = nullptr) {
  Json body = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    Json e = {{"loc", Json::array({"body"})},
              {"msg", "Invalid JSON body"},
              {"type", "value_error.jsondecode"}};
    *answer = JsonAnswer(422, Json{{"detail", Json::array({e})}});
    return false;
  }
  if (!body.is_object()) {
    Json e = {{"loc", Json::array({"body"})},
              {"msg", "value is not a valid dict"},
              {"type", "type_error.dict"}};
    *answer = JsonAnswer(422, Json{{"detail", Json::array({e})}});
    return false;
  }
  Json errors = Json::array();
  values->assign(fields.size(), std::string());
  for (size_t i = 0; i < fields.size(); i++) {
    CheckStringField(body, fields[i].first, fields[i].second, &errors, &(*values)[i]);
  }
  if (extra) extra(body, &errors);
  if (!errors.empty()) {
    *answer = JsonAnswer(422, Json{{"detail", errors}});
    return false;
  }
  return true;
}

// The optional `channel` of POST /send-code: absent or null is SMS; a
// value that is not an enabled channel's name is a 422 in pydantic's enum
// shape, listing the enabled ones.
void CheckChannelField(const Json& body, const OtpService& service, Json* errors,
                       Channel* channel) {
  auto it = body.find("channel");
  if (it == body.end() || it->is_null()) return;
  if (it->is_string() && ParseChannel(it->get<std::string>(), channel) &&
      service.ChannelEnabled(*channel)) {
    return;
  }
  *channel = Channel::kSms;
  Json permitted = Json::array();
  std::string names;
  for (Channel c : {Channel::kSms, Channel::kVoice, Channel::kWhatsApp}) {
    if (!service.ChannelEnabled(c)) continue;
    permitted.push_back(ChannelName(c));
    names += std::string(names.empty() ? "" : ", ") + "'" + ChannelName(c) + "'";
  }
  errors->push_back({{"loc", Json::array({"body", "channel"})},
                     {"msg", "value is not a valid enumeration member; permitted: " + names},
                     {"type", "type_error.enum"},
                     {"ctx", {{"enum_values", permitted}}}});
}

void AddRetryAfter(HttpAnswer* a, int64_t seconds) {
  a->headers.emplace_back("Retry-After", std::to_string(seconds));
}

}  // namespace

HttpAnswer RateLimited(const std::string& user_id, int64_t retry_after_s) {
  Json detail = {
      {"success", false},
      {"message", "Too many requests. Try again in " + std::to_string(retry_after_s) + " seconds"},
      {"user_id", user_id},
      {"error_type", "rate_limited"},
      {"retry_after", retry_after_s}};
  HttpAnswer a = JsonAnswer(429, Json{{"detail", detail}});
  AddRetryAfter(&a, retry_after_s);
  return a;
}

HttpAnswer PlainError(int status, const std::string& detail) {
  return JsonAnswer(status, Json{{"detail", detail}});
}

HttpAnswer StatusToAnswer(const Status& status, const std::string& user_id) {
  switch (status.code()) {
    case Status::Code::kBusy:
    case Status::Code::kUnavailable:
    case Status::Code::kIOError: {
      HttpAnswer a = DetailError(503, user_id, "unavailable",
                                 "Service temporarily unavailable. Try again shortly");
      AddRetryAfter(&a, 1);
      return a;
    }
    default:
      return DetailError(500, user_id, "internal_error", "Internal server error");
  }
}

namespace {

// The API-key setting the docs describe: configured keys, or the flag.
HttpApiOptions WithKeysFlag(HttpApiOptions options) {
  options.api_keys_enabled = options.api_keys_enabled || !options.api_keys.empty();
  return options;
}

}  // namespace

HttpApi::HttpApi(OtpService* service, const HttpApiOptions& options, RateLimiter* limiter,
                 DeliveryTracker* deliveries)
    : service_(service),
      options_(WithKeysFlag(options)),
      limiter_(limiter),
      deliveries_(deliveries),
      openapi_json_(Dump(OpenApiDocument(WithKeysFlag(options)))),
      docs_html_(RenderDocsPage(OpenApiDocument(WithKeysFlag(options)), DocsStyle::kInteractive,
                                options.base_path, WithKeysFlag(options).api_keys_enabled)),
      redoc_html_(RenderDocsPage(OpenApiDocument(WithKeysFlag(options)), DocsStyle::kReference,
                                 options.base_path, WithKeysFlag(options).api_keys_enabled)),
      openapi_json_z_(CompressBody(openapi_json_)),
      docs_html_z_(CompressBody(docs_html_)),
      redoc_html_z_(CompressBody(redoc_html_)) {}

const std::vector<Route>& HttpApi::Routes() {
  static const std::vector<Route> routes = {
      {"/send-code", "POST"},  {"/verify-code", "POST"}, {"/healthz", "GET"},
      {"/readyz", "GET"},      {"/openapi.json", "GET"}, {"/docs", "GET"},
      {"/redoc", "GET"},       {"/metrics", "GET"},      {"/twilio/status", "POST"},
      {"/send-status", "GET"},
  };
  return routes;
}

namespace {

// What answers without an API key: liveness, and the documentation, which
// holds no secret and whose /docs page has a field to enter the key.
bool OpenWithoutKey(const std::string& path) {
  return path == "/healthz" || path == "/docs" || path == "/redoc" || path == "/openapi.json" ||
         path == "/twilio/status";  // signed by Twilio instead (HttpApi's constructor)
}

}  // namespace

HttpAnswer HttpApi::Handle(const HttpRequest& request) const {
  int64_t retry_ms = 0;
  if (limiter_ != nullptr && request.path != "/twilio/status" &&
      !limiter_->Allow(LimitKey(request.client_ip), &retry_ms)) {
    return RateLimited("", (retry_ms + 999) / 1000);
  }
  const HttpApiOptions& options = options_.Get();
  if (!options.api_keys.empty() && !OpenWithoutKey(request.path) &&
      !options.api_keys.Allows(request.authorization)) {
    Json detail = {{"success", false},
                   {"message", "Missing or invalid API key"},
                   {"error_type", "unauthorized"}};
    HttpAnswer a = JsonAnswer(401, Json{{"detail", detail}});
    a.headers.emplace_back("WWW-Authenticate", "Bearer");
    return a;
  }
  return Dispatch(request);
}

HttpAnswer HttpApi::Dispatch(const HttpRequest& request) const {
  std::string allow;
  for (const Route& r : Routes()) {
    if (request.path != r.path) continue;
    const bool head_of_get = request.method == "HEAD" && std::string(r.method) == "GET";
    if (request.method == r.method || head_of_get) {
      if (request.path == "/send-code") return SendCode(request);
      if (request.path == "/verify-code") return VerifyCode(request);
      if (request.path == "/healthz") return JsonAnswer(200, Json{{"status", "ok"}});
      if (request.path == "/readyz") return Ready();
      if (request.path == "/metrics") return MetricsPage();
      if (request.path == "/twilio/status") return TwilioStatus(request);
      if (request.path == "/send-status") return SendStatus(request);
      if (request.path == "/docs") return Page(docs_html_, docs_html_z_);
      if (request.path == "/redoc") return Page(redoc_html_, redoc_html_z_);
      HttpAnswer a;
      a.body = openapi_json_;
      a.compressed = openapi_json_z_;
      return a;
    }
    allow += allow.empty() ? r.method : std::string(", ") + r.method;
    if (std::string(r.method) == "GET") allow += ", HEAD";
  }
  if (allow.empty()) return PlainError(404, "Not Found");
  HttpAnswer a = PlainError(405, "Method Not Allowed");
  a.headers.emplace_back("Allow", allow);
  return a;
}

HttpAnswer HttpApi::SendCode(const HttpRequest& request) const {
  HttpAnswer answer;
  std::vector<std::string> v;
  Channel channel = Channel::kSms;
  const ExtraCheck check_channel = [this, &channel](const Json& body, Json* errors) {
    CheckChannelField(body, *service_, errors, &channel);
  };
  if (!ParseBody(request.body, {{"user_id", kMaxUserIdBytes}}, &v, &answer, check_channel)) {
    return answer;
  }
  SendResult r;
  Status s = service_->SendCode(v[0], request.client_ip, channel, &r);
  answer = SendAnswer(s, r);
  answer.user_id = r.user_id;
  return answer;
}

HttpAnswer HttpApi::SendAnswer(const Status& s, const SendResult& r) const {
  if (!s.ok()) {
    Log(LogLevel::kError, "send-code failed", {{"user_id", r.user_id}, {"error", s.ToString()}});
    return StatusToAnswer(s, r.user_id);
  }
  if (r.channel != Channel::kSms) return ChannelSendAnswer(r);
  switch (r.outcome) {
    case SendOutcome::kSent:
      return RawAnswer(
          200, "{\"message\":\"OTP sent successfully via SMS\",\"user_id\":" + Quoted(r.user_id) +
                   ",\"phone\":" +
                   Quoted(options_.Get().expose_full_phone ? r.phone : MaskPhone(r.phone)) + "}");
    case SendOutcome::kUserNotFound:
    case SendOutcome::kPhoneNotFound:
      return DetailError(InfoOf(r.outcome).http_status, r.user_id, InfoOf(r.outcome).error,
                         InfoOf(r.outcome).message);
    case SendOutcome::kRateLimited:
      return RateLimited(r.user_id, r.retry_after_s);
    case SendOutcome::kSmsFailed:
      return DetailError(InfoOf(r.outcome).http_status, r.user_id, InfoOf(r.outcome).error,
                         InfoOf(r.outcome).message,
                         r.receipt.provider_code == 0
                             ? std::string()
                             : ",\"provider_code\":" + std::to_string(r.receipt.provider_code));
  }
  return StatusToAnswer(Status::Internal("unknown send outcome"), r.user_id);
}

// A send on a channel other than SMS: the answers old clients know, with
// the channel named in the message and echoed in a `channel` field.
HttpAnswer HttpApi::ChannelSendAnswer(const SendResult& r) const {
  const std::string channel = std::string(",\"channel\":\"") + ChannelName(r.channel) + "\"";
  const std::string via = std::string(" via ") + ChannelLabel(r.channel);
  switch (r.outcome) {
    case SendOutcome::kSent:
      return RawAnswer(200,
                       "{\"message\":\"OTP sent successfully" + via +
                           "\",\"user_id\":" + Quoted(r.user_id) + ",\"phone\":" +
                           Quoted(options_.Get().expose_full_phone ? r.phone : MaskPhone(r.phone)) +
                           channel + "}");
    case SendOutcome::kSmsFailed:
      return DetailError(
          InfoOf(r.outcome).http_status, r.user_id, InfoOf(r.outcome).error,
          "Failed to send the code" + via,
          channel + (r.receipt.provider_code == 0
                         ? std::string()
                         : ",\"provider_code\":" + std::to_string(r.receipt.provider_code)));
    case SendOutcome::kUserNotFound:
    case SendOutcome::kPhoneNotFound:
    case SendOutcome::kRateLimited:
      break;
  }
  SendResult as_sms = r;
  as_sms.channel = Channel::kSms;
  return SendAnswer(Status::OK(), as_sms);
}

HttpAnswer HttpApi::VerifyCode(const HttpRequest& request) const {
  HttpAnswer answer;
  std::vector<std::string> v;
  if (!ParseBody(request.body,
                 {{"user_id", kMaxUserIdBytes}, {"passcode", options_.Get().max_passcode_bytes}},
                 &v, &answer)) {
    return answer;
  }
  VerifyCodeResult r;
  Status s = service_->VerifyCode(v[0], v[1], request.client_ip, &r);
  answer = VerifyAnswer(s, r);
  answer.user_id = r.user_id;
  return answer;
}

HttpAnswer HttpApi::VerifyAnswer(const Status& s, const VerifyCodeResult& r) {
  if (!s.ok()) {
    Log(LogLevel::kError, "verify-code failed", {{"user_id", r.user_id}, {"error", s.ToString()}});
    return StatusToAnswer(s, r.user_id);
  }
  // Status, error and message from the one outcome table (otp/rules.h).
  const VerifyOutcomeInfo& info = InfoOf(r.store.outcome);
  switch (r.store.outcome) {
    case VerifyOutcome::kOk:
      return RawAnswer(info.http_status, std::string("{\"success\":true,\"message\":\"") +
                                             info.message + "\",\"user_id\":" + Quoted(r.user_id) +
                                             "}");
    case VerifyOutcome::kInvalid: {
      const std::string left = std::to_string(r.store.attempts_remaining);
      return DetailError(info.http_status, r.user_id, info.error,
                         std::string(info.message) + " " + left + " attempts remaining",
                         ",\"attempts_remaining\":" + left);
    }
    case VerifyOutcome::kLocked:
    case VerifyOutcome::kThrottled: {
      const std::string retry = std::to_string(r.retry_after_s);
      HttpAnswer a = DetailError(info.http_status, r.user_id, info.error, info.message,
                                 ",\"retry_after\":" + retry);
      a.headers.emplace_back("Retry-After", retry);
      return a;
    }
    case VerifyOutcome::kExpired:
    case VerifyOutcome::kNotFound:
      return DetailError(info.http_status, r.user_id, info.error, info.message);
  }
  return StatusToAnswer(Status::Internal("unknown verify outcome"), r.user_id);
}

HttpAnswer HttpApi::MetricsPage() const {
  int64_t active = -1;
  Status s = service_->CountActiveCodes(&active);
  if (!s.ok()) {
    active = -1;
    Log(LogLevel::kDebug, "cannot count active codes", {{"error", s.ToString()}});
  }
  HttpAnswer a;
  a.body = service_->metrics()->Render(active) + service_->delivery_metrics()->Render() +
           service_->channel_metrics().Render() +
           (sms_health_ != nullptr ? sms_health_->RenderMetrics() : ProviderMetrics().Render());
  if (service_->pumping() != nullptr) a.body += service_->pumping()->metrics()->Render();
  a.body +=
      "# HELP otpd_records_dropped_total Records to be written behind the answer that a full"
      " queue dropped (the store kept failing).\n"
      "# TYPE otpd_records_dropped_total counter\n"
      "otpd_records_dropped_total{records=\"audit\"} " +
      std::to_string(service_->DroppedAuditRecords()) +
      "\n"
      "otpd_records_dropped_total{records=\"delivery\"} " +
      std::to_string(deliveries_ != nullptr ? deliveries_->DroppedRows() : 0) + "\n";
  a.content_type = "text/plain; version=0.0.4; charset=utf-8";
  return a;
}

HttpAnswer HttpApi::Ready() const {
  Status s = service_->CheckReady();
  if (s.ok()) return SmsReady();
  Log(LogLevel::kWarn, "not ready", {{"error", s.ToString()}});
  HttpAnswer a =
      JsonAnswer(503, Json{{"status", "unavailable"}, {"detail", "store is not writable"}});
  AddRetryAfter(&a, 1);
  return a;
}

HttpAnswer HttpApi::Page(const std::string& html,
                         const std::shared_ptr<const CompressedBody>& z) const {
  HttpAnswer a;
  a.body = html;
  a.compressed = z;
  a.content_type = "text/html; charset=utf-8";
  a.headers.emplace_back("Content-Security-Policy", DocsContentSecurityPolicy());
  a.headers.emplace_back("X-Content-Type-Options", "nosniff");
  a.headers.emplace_back("Referrer-Policy", "no-referrer");
  return a;
}

}  // namespace otpd
