#include "http_api.h"

#include <nlohmann/json.hpp>

#include "client_ip.h"
#include "log.h"
#include "phone.h"

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

// A verify/send error in the contract's structured shape.
HttpAnswer DetailError(int status, const std::string& user_id, const std::string& error_type,
                       const std::string& message) {
  Json detail = {{"success", false}, {"message", message}, {"user_id", user_id},
                 {"error_type", error_type}};
  return JsonAnswer(status, Json{{"detail", detail}});
}

// One entry of a 422 "detail" list, as pydantic v1 wrote them.
Json FieldError(const std::string& field, const std::string& msg, const std::string& type,
                int limit = -1) {
  Json e = {{"loc", Json::array({"body", field})}, {"msg", msg}, {"type", type}};
  if (limit >= 0) e["ctx"] = {{"limit_value", limit}};
  return e;
}

// Checks one required string field; appends a 422 entry when it is bad.
void CheckStringField(const Json& body, const std::string& field, size_t max_bytes,
                      Json* errors, std::string* value) {
  auto it = body.find(field);
  if (it == body.end() || it->is_null()) {
    errors->push_back(FieldError(field, "field required", "value_error.missing"));
  } else if (!it->is_string()) {
    errors->push_back(FieldError(field, "str type expected", "type_error.str"));
  } else if (it->get_ref<const std::string&>().empty()) {
    errors->push_back(FieldError(field, "ensure this value has at least 1 characters",
                                 "value_error.any_str.min_length", 1));
  } else if (it->get_ref<const std::string&>().size() > max_bytes) {
    errors->push_back(FieldError(field,
                                 "ensure this value has at most " + std::to_string(max_bytes) +
                                     " characters",
                                 "value_error.any_str.max_length", static_cast<int>(max_bytes)));
  } else {
    *value = it->get<std::string>();
  }
}

// Parses the body and checks the named fields. Returns false and fills
// `answer` with a 422 when anything is wrong.
bool ParseBody(const std::string& raw, const std::vector<std::pair<std::string, size_t>>& fields,
               std::vector<std::string>* values, HttpAnswer* answer) {
  Json body = Json::parse(raw, nullptr, /*allow_exceptions=*/false);
  if (body.is_discarded()) {
    Json e = {{"loc", Json::array({"body"})}, {"msg", "Invalid JSON body"},
              {"type", "value_error.jsondecode"}};
    *answer = JsonAnswer(422, Json{{"detail", Json::array({e})}});
    return false;
  }
  if (!body.is_object()) {
    Json e = {{"loc", Json::array({"body"})}, {"msg", "value is not a valid dict"},
              {"type", "type_error.dict"}};
    *answer = JsonAnswer(422, Json{{"detail", Json::array({e})}});
    return false;
  }
  Json errors = Json::array();
  values->assign(fields.size(), std::string());
  for (size_t i = 0; i < fields.size(); i++) {
    CheckStringField(body, fields[i].first, fields[i].second, &errors, &(*values)[i]);
  }
  if (!errors.empty()) {
    *answer = JsonAnswer(422, Json{{"detail", errors}});
    return false;
  }
  return true;
}

void AddRetryAfter(HttpAnswer* a, int64_t seconds) {
  a->headers.emplace_back("Retry-After", std::to_string(seconds));
}

}  // namespace

HttpAnswer RateLimited(const std::string& user_id, int64_t retry_after_s) {
  Json detail = {{"success", false},
                 {"message", "Too many requests. Try again in " +
                                 std::to_string(retry_after_s) + " seconds"},
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

HttpApi::HttpApi(OtpService* service, Storage* storage, const HttpApiOptions& options,
                 RateLimiter* limiter)
    : service_(service), storage_(storage), options_(options), limiter_(limiter) {}

const std::vector<Route>& HttpApi::Routes() {
  static const std::vector<Route> routes = {
      {"/send-code", "POST"},
      {"/verify-code", "POST"},
      {"/healthz", "GET"},
      {"/readyz", "GET"},
  };
  return routes;
}

HttpAnswer HttpApi::Handle(const HttpRequest& request) const {
  int64_t retry_ms = 0;
  if (limiter_ != nullptr && !limiter_->Allow(LimitKey(request.client_ip), &retry_ms)) {
    return RateLimited("", (retry_ms + 999) / 1000);
  }
  if (!options_.api_keys.empty() && request.path != "/healthz" &&
      !options_.api_keys.Allows(request.authorization)) {
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
      return Ready();
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
  if (!ParseBody(request.body, {{"user_id", kMaxUserIdBytes}}, &v, &answer)) return answer;
  SendResult r;
  Status s = service_->SendCode(v[0], request.client_ip, &r);
  if (!s.ok()) {
    Log(LogLevel::kError, "send-code failed", {{"user_id", r.user_id}, {"error", s.ToString()}});
    return StatusToAnswer(s, r.user_id);
  }
  switch (r.outcome) {
    case SendOutcome::kSent:
      return JsonAnswer(200, Json{{"message", "OTP sent successfully via SMS"},
                                  {"user_id", r.user_id},
                                  {"phone", options_.expose_full_phone ? r.phone
                                                                       : MaskPhone(r.phone)}});
    case SendOutcome::kUserNotFound:
      return DetailError(404, r.user_id, "user_not_found", "User not found");
    case SendOutcome::kPhoneNotFound:
      return DetailError(404, r.user_id, "phone_not_found", "Phone number not found for user");
    case SendOutcome::kRateLimited:
      return RateLimited(r.user_id, r.retry_after_s);
    case SendOutcome::kSmsFailed: {
      HttpAnswer a = DetailError(500, r.user_id, "sms_failed", "Failed to send SMS");
      if (r.receipt.provider_code != 0) {
        Json j = Json::parse(a.body);
        j["detail"]["provider_code"] = r.receipt.provider_code;
        a.body = Dump(j);
      }
      return a;
    }
  }
  return StatusToAnswer(Status::Internal("unknown send outcome"), r.user_id);
}

HttpAnswer HttpApi::VerifyCode(const HttpRequest& request) const {
  HttpAnswer answer;
  std::vector<std::string> v;
  if (!ParseBody(request.body, {{"user_id", kMaxUserIdBytes}, {"passcode", options_.max_passcode_bytes}},
                 &v, &answer)) {
    return answer;
  }
  VerifyCodeResult r;
  Status s = service_->VerifyCode(v[0], v[1], request.client_ip, &r);
  if (!s.ok()) {
    Log(LogLevel::kError, "verify-code failed", {{"user_id", r.user_id}, {"error", s.ToString()}});
    return StatusToAnswer(s, r.user_id);
  }
  switch (r.store.outcome) {
    case VerifyOutcome::kOk:
      return JsonAnswer(200, Json{{"success", true}, {"message", "OTP verified successfully"},
                                  {"user_id", r.user_id}});
    case VerifyOutcome::kInvalid: {
      const int left = r.store.attempts_remaining;
      Json detail = {{"success", false},
                     {"message", "Invalid OTP. " + std::to_string(left) + " attempts remaining"},
                     {"user_id", r.user_id},
                     {"error_type", "invalid_code"},
                     {"attempts_remaining", left}};
      return JsonAnswer(400, Json{{"detail", detail}});
    }
    case VerifyOutcome::kLocked:
    case VerifyOutcome::kThrottled: {
      const int64_t retry = r.retry_after_s;
      Json detail = {{"success", false}, {"message", "Too many failed attempts"},
                     {"user_id", r.user_id}, {"error_type", "too_many_attempts"},
                     {"retry_after", retry}};
      HttpAnswer a = JsonAnswer(429, Json{{"detail", detail}});
      AddRetryAfter(&a, retry);
      return a;
    }
    case VerifyOutcome::kExpired:
      return DetailError(410, r.user_id, "expired", "OTP has expired");
    case VerifyOutcome::kNotFound:
      return DetailError(404, r.user_id, "not_found",
                         "No OTP found for this user or OTP has expired");
  }
  return StatusToAnswer(Status::Internal("unknown verify outcome"), r.user_id);
}

HttpAnswer HttpApi::Ready() const {
  Status s = storage_->CheckWritable();
  if (s.ok()) return JsonAnswer(200, Json{{"status", "ready"}});
  Log(LogLevel::kWarn, "not ready", {{"error", s.ToString()}});
  HttpAnswer a = JsonAnswer(503, Json{{"status", "unavailable"}, {"detail", "store is not writable"}});
  AddRetryAfter(&a, 1);
  return a;
}

}  // namespace otpd
