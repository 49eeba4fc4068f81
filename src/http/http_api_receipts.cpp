// HttpApi's delivery-receipt routes: POST /twilio/status (Twilio's signed
// status callback) and GET /send-status (the last send's status).
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "core/phone.h"
#include "http/http_api.h"
#include "http/twilio_signature.h"
#include "otp/audit.h"

namespace otpd {
namespace {

using Json = nlohmann::ordered_json;

HttpAnswer JsonBody(int status, const Json& body) {
  HttpAnswer a;
  a.status = status;
  a.body = body.dump(-1, ' ', false, Json::error_handler_t::replace);
  return a;
}

const std::string* Field(const FormFields& fields, const char* name) {
  for (const auto& [k, v] : fields) {
    if (k == name) return &v;
  }
  return nullptr;
}

// Twilio's ErrorCode: digits, or absent/empty for none.
int ErrorCodeOf(const FormFields& fields) {
  const std::string* v = Field(fields, "ErrorCode");
  if (v == nullptr || v->empty() || v->size() > 9 ||
      v->find_first_not_of("0123456789") != std::string::npos) {
    return 0;
  }
  return std::stoi(*v);
}

// Message SIDs and statuses are short ASCII words; anything else is refused
// before it reaches the store, the metrics or the log.
bool IsToken(const std::string* v, size_t max) {
  if (v == nullptr || v->empty() || v->size() > max) return false;
  for (char c : *v) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace

HttpAnswer HttpApi::TwilioStatus(const HttpRequest& request) const {
  const HttpApiOptions& options = options_.Get();
  if (deliveries_ == nullptr || options.twilio_status_url.empty()) {
    return PlainError(404, "Not Found");
  }
  FormFields fields;
  const bool parsed = ParseFormBody(request.body, &fields).ok();
  if (!parsed || !TwilioSignatureValid(options.twilio_auth_token, options.twilio_status_url, fields,
                                       request.twilio_signature)) {
    Log(LogLevel::kWarn, "twilio status callback refused: bad or missing signature",
        {{"client", request.client_ip},
         {"signed", request.twilio_signature.empty() ? "no" : "yes"}});
    return PlainError(403, "Forbidden");
  }
  const std::string* sid = Field(fields, "MessageSid");
  const std::string* status = Field(fields, "MessageStatus");
  if (!IsToken(sid, 64) || !IsToken(status, 32)) {
    return PlainError(400, "MessageSid and MessageStatus are required");
  }
  bool known = false;
  Status s = deliveries_->OnReceipt(*sid, *status, ErrorCodeOf(fields), &known);
  if (!s.ok()) {
    Log(LogLevel::kError, "cannot record a delivery receipt", {{"error", s.ToString()}});
    return StatusToAnswer(s, "");
  }
  return JsonBody(200, Json{{"status", known ? "recorded" : "ignored"}});
}

HttpAnswer HttpApi::SendStatus(const HttpRequest& request) const {
  std::string user_id;
  for (const auto& [k, v] : request.query) {
    if (k == "user_id") user_id = v;
  }
  if (user_id.empty() || user_id.size() > kMaxUserIdBytes) {
    Json e = {{"loc", Json::array({"query", "user_id"})},
              {"msg", user_id.empty() ? "field required" : "ensure this value is shorter"},
              {"type", user_id.empty() ? "value_error.missing" : "value_error.any_str.max_length"}};
    return JsonBody(422, Json{{"detail", Json::array({e})}});
  }
  user_id = NormalizeUserId(user_id);
  Delivery d;
  Status s =
      deliveries_ == nullptr ? Status::NotFound("no receipts") : deliveries_->LastSend(user_id, &d);
  if (s.IsNotFound()) {
    return JsonBody(404, Json{{"detail",
                               {{"success", false},
                                {"message", "No send recorded for this user"},
                                {"user_id", user_id},
                                {"error_type", "not_found"}}}});
  }
  if (!s.ok()) return StatusToAnswer(s, user_id);
  HttpAnswer a = JsonBody(200, Json{{"user_id", d.user_id},
                                    {"provider", d.provider},
                                    {"status", d.status},
                                    {"error_code", d.error_code},
                                    {"sent_at", FormatUtc(d.sent_at_ms)},
                                    {"updated_at", FormatUtc(d.updated_at_ms)}});
  a.user_id = user_id;
  return a;
}

}  // namespace otpd
