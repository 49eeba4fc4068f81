// HttpApi: the HTTP contract (../shared/CONTRACT.md) as plain functions from
// a request to an answer, with no socket and no HTTP library in sight.
//
// It parses and validates JSON bodies (422 in FastAPI's shape), calls the
// OtpService, and maps every outcome and Status to a status code and JSON
// body. It also serves /openapi.json, /docs and /redoc, rendered once at
// construction from openapi.h (pages: docs_pages.h, text/html), and GET
// /metrics: the service's Metrics and DeliveryMetrics with the store's
// active-code count, asked of the service (HttpApi never sees the store).
// http_server.cpp adapts it to cpp-httplib; tests and the fuzz target
// call Handle directly. Thread-safe: Handle is const and the service is;
// SetOptions may run while requests are served (see LiveValue).
#ifndef OTPD_HTTP_API_H_
#define OTPD_HTTP_API_H_

#include <string>
#include <utility>
#include <vector>

#include "core/live_value.h"
#include "core/status.h"
#include "http/api_keys.h"
#include "http/docs_pages.h"
#include "http/rate_limiter.h"
#include "otp/deliveries.h"
#include "otp/otp_service.h"
#include "otp/sms.h"

namespace otpd {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string path;    // without the query string
  std::string body;
  std::string client_ip;              // canonical; the socket peer or, behind a trusted
                                      // proxy, from X-Forwarded-For (client_ip.h)
  std::string authorization = {};     // the Authorization header, "" when absent
  std::string twilio_signature = {};  // the X-Twilio-Signature header, "" when absent
  // The query string's parameters, decoded, in order.
  std::vector<std::pair<std::string, std::string>> query = {};
};

struct HttpAnswer {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // beyond Content-Type
  std::string content_type = "application/json";             // the pages: text/html
  // The normalized user ID the request named, once its body validated; only
  // for the access log ("" when none).
  std::string user_id;
  // The body compressed once (the docs pages and /openapi.json); the server
  // sends one of these when the client accepts it. Null: send `body`.
  std::shared_ptr<const CompressedBody> compressed;
};

struct HttpApiOptions {
  bool expose_full_phone = false;  // expose_phone = "full"
  size_t max_passcode_bytes = 64;  // longer passcodes are a 422
  // API keys are configured: the docs describe the bearer scheme and the
  // /docs page gets a key field. (Checking keys is not HttpApi's job here.)
  bool api_keys_enabled = false;
  // The path prefix a reverse proxy serves otpd under ("" or "/otp"): the
  // OpenAPI `servers` entry and the pages' links use it.
  std::string base_path;
  // When not empty, every path but /healthz needs "Authorization: Bearer
  // KEY" and answers 401 unauthorized (with WWW-Authenticate) otherwise.
  ApiKeys api_keys;
  // Delivery receipts (POST /twilio/status): the exact URL Twilio is given
  // as StatusCallback (public_url + "/twilio/status"), which its signature
  // covers, and the auth token that signs (secret). Either empty: every
  // callback answers 403.
  std::string twilio_status_url;
  std::string twilio_auth_token;
};

struct Route {
  const char* path;
  const char* method;
};

class HttpApi {
 public:
  // `service` and `limiter` must outlive the object. With a
  // limiter, every request first takes a token for its client IP (per /64
  // for IPv6) and answers 429 rate_limited when there is none; then the API
  // key is checked (so guessing keys is rate limited too). POST
  // /twilio/status is the exception to both: Twilio cannot send our API key
  // and calls from a few addresses, so its X-Twilio-Signature is the check.
  // With `deliveries` (must outlive the object), receipts are applied to it
  // and GET /send-status answers from it; without, both answer 404.
  HttpApi(OtpService* service, const HttpApiOptions& options, RateLimiter* limiter = nullptr,
          DeliveryTracker* deliveries = nullptr);

  // Routes and answers one request. Unknown paths answer 404, known paths
  // with another method 405 (with Allow). Never throws for any input.
  HttpAnswer Handle(const HttpRequest& request) const;

  // Every (path, method) Handle serves; HEAD is implied for GET.
  // openapi.h documents exactly these (tests/openapi_test.cpp checks).
  static const std::vector<Route>& Routes();

  // Replaces the options for requests that start from now on.
  void SetOptions(const HttpApiOptions& options) { options_.Set(options); }
  // The options in force now; the reference stays valid for the life of
  // the object.
  const HttpApiOptions& options() const { return options_.Get(); }

  // The Metrics /metrics renders (the service's), where the server counts
  // each request it answers. Valid for the life of the service.
  Metrics* metrics() const { return service_->metrics(); }

  // The SMS providers' circuits, for /readyz (http_api_sms.cpp): a
  // provider whose circuit is not closed is listed in
  // "degraded_providers", and when every circuit is open /readyz answers
  // 503. Null (the default): the SMS side is not looked at. Call before
  // serving; `health` must outlive the object.
  void SetSmsHealth(SmsHealth* health) { sms_health_ = health; }

 private:
  HttpAnswer SendCode(const HttpRequest& request) const;
  HttpAnswer VerifyCode(const HttpRequest& request) const;
  HttpAnswer SendAnswer(const Status& s, const SendResult& r) const;
  HttpAnswer ChannelSendAnswer(const SendResult& r) const;
  static HttpAnswer VerifyAnswer(const Status& s, const VerifyCodeResult& r);
  HttpAnswer Ready() const;
  HttpAnswer MetricsPage() const;
  HttpAnswer Page(const std::string& html, const std::shared_ptr<const CompressedBody>& z) const;
  HttpAnswer Dispatch(const HttpRequest& request) const;
  HttpAnswer TwilioStatus(const HttpRequest& request) const;  // http_api_receipts.cpp
  HttpAnswer SendStatus(const HttpRequest& request) const;    // http_api_receipts.cpp
  HttpAnswer SmsReady() const;                                // http_api_sms.cpp

  OtpService* const service_;
  LiveValue<HttpApiOptions> options_;
  RateLimiter* const limiter_;
  DeliveryTracker* const deliveries_;
  SmsHealth* sms_health_ = nullptr;
  // Rendered once, from the options at construction: base_path and the
  // API-key setting take a restart to change.
  const std::string openapi_json_;
  const std::string docs_html_;
  const std::string redoc_html_;
  // The three compressed once, at construction.
  const std::shared_ptr<const CompressedBody> openapi_json_z_;
  const std::shared_ptr<const CompressedBody> docs_html_z_;
  const std::shared_ptr<const CompressedBody> redoc_html_z_;
};

// {"detail": "<text>"}: the shape FastAPI used for 404, 405, 413 and the like.
HttpAnswer PlainError(int status, const std::string& detail);

// 429 rate_limited in the contract's detail shape, with the Retry-After
// header and the retry_after field. `user_id` may be empty (per-IP limit).
HttpAnswer RateLimited(const std::string& user_id, int64_t retry_after_s);

// The single mapping of an internal failure (a non-OK Status from the
// service) to an answer: Busy/Unavailable/IOError -> 503 with Retry-After,
// anything else -> 500. The message never carries internals.
HttpAnswer StatusToAnswer(const Status& status, const std::string& user_id);

}  // namespace otpd

#endif  // OTPD_HTTP_API_H_
