#include "http/openapi.h"

#include <string>

#include "core/phone.h"

namespace otpd {
namespace {

using Json = nlohmann::ordered_json;

Json Ref(const std::string& schema) { return Json{{"$ref", "#/components/schemas/" + schema}}; }

Json Str(const std::string& description) {
  return Json{{"type", "string"}, {"description", description}};
}

Json Int(const std::string& description) {
  return Json{{"type", "integer"}, {"description", description}};
}

Json Object(const Json& required, const Json& properties) {
  return Json{{"type", "object"}, {"required", required}, {"properties", properties}};
}

Json Example(const std::string& summary, const Json& value) {
  return Json{{"summary", summary}, {"value", value}};
}

// The contract's structured error: {"detail": {...}}.
Json DetailExample(const std::string& summary, const std::string& message,
                   const std::string& error_type, const Json& extra = Json::object()) {
  Json detail = {
      {"success", false}, {"message", message}, {"user_id", "abc"}, {"error_type", error_type}};
  for (const auto& kv : extra.items()) detail[kv.key()] = kv.value();
  return Example(summary, Json{{"detail", detail}});
}

Json RetryAfterHeader() {
  return Json{{"Retry-After",
               {{"description", "Seconds to wait before trying again"},
                {"schema", {{"type", "integer"}}}}}};
}

// One response: `examples` maps an example name to Example(...).
Json Response(const std::string& description, const std::string& schema, const Json& examples,
              bool retry_after = false) {
  Json media = {{"schema", Ref(schema)}, {"examples", examples}};
  Json r = {{"description", description}, {"content", {{"application/json", media}}}};
  if (retry_after) r["headers"] = RetryAfterHeader();
  return r;
}

Json HtmlResponse(const std::string& description) {
  return Json{{"description", description},
              {"content", {{"text/html", {{"schema", {{"type", "string"}}}}}}}};
}

Json ValidationExamples() {
  Json missing = {
      {"loc", {"body", "user_id"}}, {"msg", "field required"}, {"type", "value_error.missing"}};
  Json not_json = {
      {"loc", {"body"}}, {"msg", "Invalid JSON body"}, {"type", "value_error.jsondecode"}};
  return Json{{"missing_field", Example("A required field is missing", {{"detail", {missing}}})},
              {"not_json", Example("The body is not JSON", {{"detail", {not_json}}})}};
}

Json SendValidationExamples() {
  Json examples = ValidationExamples();
  Json bad_channel = {{"loc", {"body", "channel"}},
                      {"msg", "value is not a valid enumeration member; permitted: 'sms', 'voice'"},
                      {"type", "type_error.enum"},
                      {"ctx", {{"enum_values", {"sms", "voice"}}}}};
  examples["bad_channel"] =
      Example("Unknown channel, or one not enabled (channels = \"sms,voice\")",
              {{"detail", {bad_channel}}});
  return examples;
}

Json TooLarge() {
  return Response(
      "The body is larger than max_body_bytes", "PlainError",
      {{"too_large", Example("Body too large", {{"detail", "Request body too large"}})}});
}

Json Unavailable() {
  return Response(
      "The database could not be written; try again shortly", "ErrorResponse",
      {{"unavailable",
        DetailExample("Store unavailable", "Service temporarily unavailable. Try again shortly",
                      "unavailable")}},
      /*retry_after=*/true);
}

Json RequestBody(const std::string& schema, const Json& example) {
  return Json{
      {"required", true},
      {"content",
       {{"application/json",
         {{"schema", Ref(schema)}, {"examples", {{"abc", Example("User abc", example)}}}}}}}};
}

Json SendCodeOperation(const HttpApiOptions& options) {
  const std::string phone = options.expose_full_phone ? "+12015551111" : MaskPhone("+12015551111");
  Json responses = {
      {"200",
       Response("The code was stored and texted", "SendCodeResponse",
                {{"sent", Example("Code sent", {{"message", "OTP sent successfully via SMS"},
                                                {"user_id", "abc"},
                                                {"phone", phone}})},
                 {"sent_by_voice", Example("Code sent by a voice call (channel \"voice\")",
                                           {{"message", "OTP sent successfully via voice call"},
                                            {"user_id", "abc"},
                                            {"phone", phone},
                                            {"channel", "voice"}})}})},
      {"404",
       Response(
           "Unknown user, or a user without a phone number", "ErrorResponse",
           {{"user_not_found",
             DetailExample("Unknown user", "User not found in database", "user_not_found")},
            {"phone_not_found", DetailExample("No phone number", "Phone number not found for user",
                                              "phone_not_found")}})},
      {"413", TooLarge()},
      {"422", Response("The body is not valid, or names a channel that is not enabled",
                       "ValidationError", SendValidationExamples())},
      {"429", Response("A rate limit was hit", "ErrorResponse",
                       {{"rate_limited",
                         DetailExample("Rate limited", "Too many requests. Try again in 60 seconds",
                                       "rate_limited", {{"retry_after", 60}})}},
                       /*retry_after=*/true)},
      {"500", Response("The SMS could not be sent; no code is left active", "ErrorResponse",
                       {{"sms_failed", DetailExample("SMS failed", "Failed to send SMS",
                                                     "sms_failed", {{"provider_code", 21211}})},
                        {"call_failed",
                         DetailExample("Voice call failed (channel \"voice\")",
                                       "Failed to send the code via voice call", "sms_failed",
                                       {{"channel", "voice"}, {"provider_code", 13224}})}})},
      {"503", Unavailable()}};
  return Json{{"operationId", "sendCode"},
              {"summary", "Text a fresh code to a user"},
              {"description",
               "Looks the user's phone number up in the user directory, stores a fresh code "
               "(hashed) and texts it. A new code replaces any earlier code of that user. "
               "User IDs are case-insensitive and echoed in lower case. With `channel` "
               "\"voice\" the code is read out in a phone call, with \"whatsapp\" it goes "
               "as a WhatsApp template message; the answers then name the channel. Every "
               "channel shares the user's cooldown and caps and replaces the same code; "
               "each has its own hourly budget and region list. Without `channel` every "
               "answer is exactly the SMS one."},
              {"requestBody", RequestBody("SendCodeRequest", {{"user_id", "abc"}})},
              {"responses", responses}};
}

Json VerifyCodeOperation() {
  Json responses = {
      {"200",
       Response("The code is right; it is consumed", "VerifyCodeResponse",
                {{"verified", Example("Code verified", {{"success", true},
                                                        {"message", "OTP verified successfully"},
                                                        {"user_id", "abc"}})}})},
      {"400",
       Response("Wrong code; attempts_remaining counts down", "ErrorResponse",
                {{"invalid_code", DetailExample("Wrong code", "Invalid OTP. 2 attempts remaining",
                                                "invalid_code", {{"attempts_remaining", 2}})}})},
      {"404",
       Response(
           "No live code for this user (never sent, used, or long expired)", "ErrorResponse",
           {{"not_found", DetailExample("No code", "No OTP found for this user or OTP has expired",
                                        "not_found")}})},
      {"410", Response("The code has expired", "ErrorResponse",
                       {{"expired", DetailExample("Expired", "OTP has expired", "expired")}})},
      {"413", TooLarge()},
      {"422", Response("The body is not valid", "ValidationError", ValidationExamples())},
      {"429",
       Response("Too many wrong codes: the code is locked until it expires", "ErrorResponse",
                {{"too_many_attempts", DetailExample("Locked", "Too many failed attempts",
                                                     "too_many_attempts", {{"retry_after", 300}})}},
                /*retry_after=*/true)},
      {"503", Unavailable()}};
  return Json{{"operationId", "verifyCode"},
              {"summary", "Check a code a user typed"},
              {"description",
               "Compares the passcode with the user's live code. A right code verifies once. "
               "Each wrong code uses an attempt; once none are left every verify of that code "
               "answers 429, the right code included, until it expires or a new one is sent. "
               "The passcode is compared as a string: leading zeros matter, and a string that "
               "is not digits is simply a wrong code."},
              {"requestBody",
               RequestBody("VerifyCodeRequest", {{"user_id", "abc"}, {"passcode", "123456"}})},
              {"responses", responses}};
}

Json GetOperation(const std::string& id, const std::string& summary, const std::string& description,
                  const Json& responses) {
  return Json{{"operationId", id},
              {"summary", summary},
              {"description", description},
              {"responses", responses}};
}

Json SchemaResponse(const std::string& description, const std::string& schema) {
  return Json{{"description", description},
              {"content", {{"application/json", {{"schema", Ref(schema)}}}}}};
}

Json TwilioStatusOperation() {
  Json form = {
      {"type", "object"},
      {"required", {"MessageSid", "MessageStatus"}},
      {"properties",
       {{"MessageSid", Str("Twilio's message SID")},
        {"MessageStatus", Str("queued, sending, sent, delivered, undelivered, failed, ...")},
        {"ErrorCode", Str("Twilio's error code, for undelivered and failed")}}}};
  return Json{
      {"operationId", "twilioStatus"},
      {"summary", "Twilio delivery receipt (called by Twilio)"},
      {"description",
       "Twilio's StatusCallback, sent with every message when public_url is set. Needs no API "
       "key: the X-Twilio-Signature header (HMAC-SHA1 with the account's auth token over "
       "public_url + \"/twilio/status\" and the sorted form fields) is checked instead, and "
       "an unsigned or wrongly signed call answers 403 and changes nothing. A replayed "
       "receipt changes nothing either."},
      {"security", Json::array()},
      {"parameters",
       {{{"name", "X-Twilio-Signature"},
         {"in", "header"},
         {"required", true},
         {"schema", {{"type", "string"}}}}}},
      {"requestBody",
       {{"required", true},
        {"content", {{"application/x-www-form-urlencoded", {{"schema", form}}}}}}},
      {"responses",
       {{"200", SchemaResponse("Applied (recorded) or for a message otpd never sent (ignored)",
                               "ReceiptAnswer")},
        {"400", SchemaResponse("Signed, but MessageSid or MessageStatus is missing", "PlainError")},
        {"403", SchemaResponse("Missing or wrong signature; nothing changed", "PlainError")},
        {"404", SchemaResponse("Receipts are off (public_url is not set)", "PlainError")}}}};
}

Json SendStatusOperation() {
  return Json{
      {"operationId", "sendStatus"},
      {"summary", "Delivery status of a user's last code"},
      {"description",
       "What the SMS provider last reported for the newest message sent to the user: accepted "
       "(taken, no receipt yet), queued, sent, delivered, undelivered, failed, or unknown (no "
       "final receipt within delivery_unknown_after). error_code is the provider's."},
      {"parameters",
       {{{"name", "user_id"},
         {"in", "query"},
         {"required", true},
         {"schema", {{"type", "string"}, {"minLength", 1}, {"maxLength", kMaxUserIdBytes}}}}}},
      {"responses",
       {{"200", SchemaResponse("The last send's status", "SendStatus")},
        {"404", SchemaResponse("No send recorded for this user", "ErrorResponse")},
        {"422", SchemaResponse("user_id is missing or too long", "ValidationError")}}}};
}

// GET /readyz: the store, then the SMS providers' circuits (HttpApi::Ready
// and SmsReady).
Json ReadyzOperation() {
  const Json ready = {{"status", "ready"}};
  const Json degraded = {{"status", "ready"}, {"degraded_providers", Json::array({"twilio"})}};
  const Json store = {{"status", "unavailable"}, {"detail", "store is not writable"}};
  const Json all_open = {{"status", "unavailable"},
                         {"detail", "every SMS provider's circuit is open"},
                         {"degraded_providers", Json::array({"twilio", "vonage"})}};
  return GetOperation(
      "readyz", "Readiness",
      "200 while the code store accepts writes and at least one SMS provider's circuit is not "
      "open, else 503. `degraded_providers` names the providers whose circuit is open or half "
      "open; it is absent while every circuit is closed.",
      {{"200", Response("Ready", "Ready",
                        {{"ready", Example("Ready", ready)},
                         {"degraded", Example("Ready, a provider's circuit open", degraded)}})},
       {"503",
        Response("The store is not writable, or every SMS provider's circuit is open", "NotReady",
                 {{"not_ready", Example("Not ready", store)},
                  {"providers_open", Example("Every provider's circuit open", all_open)}},
                 /*retry_after=*/true)}});
}

Json Paths(const HttpApiOptions& options) {
  Json p;
  p["/send-code"]["post"] = SendCodeOperation(options);
  p["/verify-code"]["post"] = VerifyCodeOperation();
  p["/healthz"]["get"] = GetOperation(
      "healthz", "Liveness", "200 while the process serves.",
      {{"200", Response("Serving", "Health", {{"ok", Example("Serving", {{"status", "ok"}})}})}});
  if (options.api_keys_enabled) p["/healthz"]["get"]["security"] = Json::array();
  // Twilio signs instead of sending a key (HttpApi's constructor).
  p["/readyz"]["get"] = ReadyzOperation();
  p["/metrics"]["get"] = GetOperation(
      "metrics", "Prometheus metrics",
      "Requests by route and status, send and verify outcomes, latency histograms, active "
      "codes, in the Prometheus text format 0.0.4.",
      {{"200",
        {{"description", "The metrics"},
         {"content", {{"text/plain", {{"schema", {{"type", "string"}}}}}}}}}});
  p["/openapi.json"]["get"] = GetOperation(
      "openapi", "This document", "The OpenAPI 3 document the pages are generated from.",
      {{"200",
        {{"description", "The document"},
         {"content", {{"application/json", {{"schema", {{"type", "object"}}}}}}}}}});
  p["/docs"]["get"] = GetOperation(
      "docs", "Interactive documentation",
      "Every endpoint with its schemas, and a form per endpoint to try it from the browser.",
      {{"200", HtmlResponse("The page")}});
  p["/redoc"]["get"] = GetOperation("redoc", "Reference documentation",
                                    "Every endpoint and schema on one readable page.",
                                    {{"200", HtmlResponse("The page")}});
  p["/twilio/status"]["post"] = TwilioStatusOperation();
  p["/send-status"]["get"] = SendStatusOperation();
  if (options.api_keys_enabled) {
    Json unauthorized = {{"description", "No valid API key (Authorization: Bearer KEY)"},
                         {"content", {{"application/json", {{"schema", Ref("Unauthorized")}}}}}};
    for (auto& path : p.items()) {
      for (auto& op : path.value().items()) {
        if (path.key() != "/healthz" && path.key() != "/twilio/status") {
          op.value()["responses"]["401"] = unauthorized;
        }
      }
    }
  }
  return p;
}

Json ChannelSchema(const std::string& description) {
  return Json{
      {"type", "string"}, {"enum", {"sms", "voice", "whatsapp"}}, {"description", description}};
}

Json ErrorDetailSchema() {
  Json s =
      Object({"success", "message", "user_id", "error_type"},
             {{"success", {{"type", "boolean"}, {"enum", {false}}}},
              {"message", Str("Human-readable message, as the old service wrote it")},
              {"user_id", Str("The user ID, lower case")},
              {"error_type",
               {{"type", "string"},
                {"enum",
                 {"user_not_found", "phone_not_found", "rate_limited", "sms_failed", "invalid_code",
                  "not_found", "expired", "too_many_attempts", "unavailable", "internal_error"}}}},
              {"attempts_remaining", Int("400 invalid_code: wrong codes still allowed")},
              {"retry_after", Int("429: seconds until trying again makes sense")},
              {"provider_code", Int("500 sms_failed: the SMS provider's error code")},
              {"channel", ChannelSchema("500 sms_failed on a channel other than SMS")}});
  s["additionalProperties"] = false;
  return s;
}

Json Schemas(const HttpApiOptions& options) {
  Json user_id = {{"type", "string"},
                  {"minLength", 1},
                  {"maxLength", kMaxUserIdBytes},
                  {"description", "Case-insensitive user ID"}};
  Json passcode = {{"type", "string"},
                   {"minLength", 1},
                   {"maxLength", options.max_passcode_bytes},
                   {"description", "The code the user typed (digits; leading zeros matter)"}};
  Json loc_item = {{"type", "string"}};
  Json validation_item =
      Object({"loc", "msg", "type"},
             {{"loc", {{"type", "array"}, {"items", loc_item}}},
              {"msg", Str("What is wrong")},
              {"type", Str("Error type, e.g. value_error.missing")},
              {"ctx", {{"type", "object"}, {"description", "Limits, e.g. limit_value"}}}});
  Json s;
  s["SendCodeRequest"] =
      Object({"user_id"},
             {{"user_id", user_id},
              {"channel", ChannelSchema("How the code reaches the user; absent: sms. Only the "
                                        "channels in the `channels` setting are accepted")}});
  s["VerifyCodeRequest"] =
      Object({"user_id", "passcode"}, {{"user_id", user_id}, {"passcode", passcode}});
  s["SendCodeResponse"] = Object(
      {"message", "user_id", "phone"},
      {{"message",
        Str("OTP sent successfully via SMS (via voice call, via WhatsApp for those channels)")},
       {"user_id", Str("The user ID, lower case")},
       {"phone", Str(options.expose_full_phone ? "The phone number" : "The phone number, masked")},
       {"channel", ChannelSchema("Present when the request named voice or whatsapp")}});
  s["VerifyCodeResponse"] = Object({"success", "message", "user_id"},
                                   {{"success", {{"type", "boolean"}, {"enum", {true}}}},
                                    {"message", Str("OTP verified successfully")},
                                    {"user_id", Str("The user ID, lower case")}});
  s["ErrorDetail"] = ErrorDetailSchema();
  s["ErrorResponse"] = Object({"detail"}, {{"detail", Ref("ErrorDetail")}});
  s["ValidationError"] =
      Object({"detail"}, {{"detail", {{"type", "array"}, {"items", validation_item}}}});
  s["PlainError"] = Object({"detail"}, {{"detail", Str("Not Found, Method Not Allowed, ...")}});
  s["Health"] = Object({"status"}, {{"status", Str("ok or ready")}});
  const Json degraded_providers = {
      {"type", "array"},
      {"items", {{"type", "string"}}},
      {"description",
       "The SMS providers whose circuit is open or half open (twilio, vonage); "
       "absent while every circuit is closed"}};
  s["Ready"] = Object({"status"}, {{"status", {{"type", "string"}, {"enum", {"ready"}}}},
                                   {"degraded_providers", degraded_providers}});
  s["NotReady"] =
      Object({"status", "detail"}, {{"status", {{"type", "string"}, {"enum", {"unavailable"}}}},
                                    {"detail", Str("Why")},
                                    {"degraded_providers", degraded_providers}});
  s["ReceiptAnswer"] =
      Object({"status"}, {{"status", {{"type", "string"}, {"enum", {"recorded", "ignored"}}}}});
  s["SendStatus"] = Object(
      {"user_id", "provider", "status", "error_code", "sent_at", "updated_at"},
      {{"user_id", Str("The user ID, lower case")},
       {"provider", Str("The provider that took the message: twilio, vonage, ...")},
       {"status", Str("accepted, queued, sending, sent, delivered, undelivered, failed, unknown")},
       {"error_code", Int("The provider's error code with the status (0: none)")},
       {"sent_at", Str("When the message was sent (UTC)")},
       {"updated_at", Str("When the status last changed (UTC)")}});
  if (options.api_keys_enabled)
    s["Unauthorized"] = Object({"detail"}, {{"detail", Json::object()}});
  return s;
}

}  // namespace

Json OpenApiDocument(const HttpApiOptions& options) {
  Json doc;
  doc["openapi"] = "3.0.3";
  doc["info"] = {{"title", "otpd"},
                 {"version", OTPD_VERSION},
                 {"description",
                  "One-time passcodes by SMS. All bodies are JSON. Unknown paths answer 404 "
                  "{\"detail\": \"Not Found\"}, a known path with another method 405 "
                  "{\"detail\": \"Method Not Allowed\"} with an Allow header, and bodies over the "
                  "limit 413."}};
  doc["servers"] = {{{"url", options.base_path.empty() ? "/" : options.base_path}}};
  if (options.api_keys_enabled) doc["security"] = {{{"bearerAuth", Json::array()}}};
  doc["paths"] = Paths(options);
  doc["components"]["schemas"] = Schemas(options);
  if (options.api_keys_enabled) {
    doc["components"]["securitySchemes"] = {
        {"bearerAuth",
         {{"type", "http"},
          {"scheme", "bearer"},
          {"description", "Authorization: Bearer KEY, one of the configured api_keys"}}}};
  }
  return doc;
}

}  // namespace otpd
