// The Vonage SMS sender (sms.h), over the shared provider client
// (provider_client.h: verified TLS, pooled keep-alive, deadline, retries).
// Vonage answers HTTP 200 for most refusals, with the reason in
// messages[0].status.
#include <algorithm>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/log.h"
#include "core/phone.h"
#include "otp/sms.h"
#include "sms/provider_client.h"

namespace otpd {
namespace {

bool HasControl(const std::string& s) { return HasControlChar(s); }

// The one place Vonage's answers become a Status (STYLE §4).
Status VonageAnswerStatus(int http_status, const std::string& body, SmsReceipt* receipt,
                          bool* retryable) {
  *retryable = http_status == 429 || http_status >= 500;
  if (http_status != 200) {
    const std::string text = "vonage HTTP " + std::to_string(http_status);
    return http_status == 401 || *retryable ? Status::Unavailable(text)
                                            : Status::InvalidArgument(text);
  }
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  const nlohmann::json* m = nullptr;
  if (j.is_object() && j.contains("messages") && j["messages"].is_array() &&
      !j["messages"].empty() && j["messages"][0].is_object()) {
    m = &j["messages"][0];
  }
  if (m == nullptr || !m->contains("status") || !(*m)["status"].is_string()) {
    return Status::Unavailable("vonage: unreadable answer");
  }
  const std::string status = (*m)["status"].get<std::string>();
  int code = 0;
  if (!status.empty() && status.size() < 6 &&
      status.find_first_not_of("0123456789") == std::string::npos) {
    code = std::stoi(status);
  } else {
    return Status::Unavailable("vonage: unreadable status");
  }
  if (code == 0) {
    if (m->contains("message-id") && (*m)["message-id"].is_string()) {
      receipt->provider_id = (*m)["message-id"].get<std::string>();
    }
    return Status::OK();
  }
  receipt->provider_code = code;
  std::string why = "no error text";
  if (m->contains("error-text") && (*m)["error-text"].is_string()) {
    why = (*m)["error-text"].get<std::string>();
    if (HasControl(why) || why.size() > 200) why = "error text withheld";
  }
  *retryable = code == 1 || code == 5;
  receipt->number_refused = code == 3 || code == 6 || code == 7;
  const std::string text = "vonage status " + status + ": " + why;
  return receipt->number_refused ? Status::InvalidArgument(text) : Status::Unavailable(text);
}

class VonageSmsSender : public SmsSender {
 public:
  VonageSmsSender(const VonageOptions& options, std::unique_ptr<ProviderClient> client)
      : options_(options), client_(std::move(client)) {}

  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override {
    return SendBy(to, body, ProviderDeadlineIn(options_.timeout_ms), receipt);
  }
  Status SendBy(const std::string& to, const std::string& body, Deadline deadline,
                SmsReceipt* receipt) override;

 private:
  const VonageOptions options_;
  const std::unique_ptr<ProviderClient> client_;
};

Status VonageSmsSender::SendBy(const std::string& to, const std::string& body, Deadline deadline,
                               SmsReceipt* receipt) {
  if (HasControl(to) || to.size() < 2 || to[0] != '+') {
    *receipt = SmsReceipt();
    receipt->provider = "vonage";
    receipt->number_refused = true;
    return Status::InvalidArgument("bad phone number");
  }
  FormFields fields = {{"api_key", options_.api_key},
                       {"api_secret", options_.api_secret},
                       {"from", options_.from},
                       {"to", to.substr(1)},  // digits, no '+'
                       {"text", body}};
  if (!MeasureSms(body).gsm7) fields.emplace_back("type", "unicode");
  const ProviderPost post{"/sms/json", FormEncode(fields),
                          std::min(deadline, ProviderDeadlineIn(options_.timeout_ms)), to};
  *receipt = SmsReceipt();
  receipt->provider = "vonage";
  Status s = client_->PostForm(post, [receipt](const ProviderAnswer& a, bool* retryable) {
    *receipt = SmsReceipt();
    receipt->provider = "vonage";
    return VonageAnswerStatus(a.http_status, a.body, receipt, retryable);
  });
  if (!s.ok()) {
    Log(LogLevel::kError, "vonage send failed",
        {{"to", MaskPhone(to)},
         {"vonage_status", std::to_string(receipt->provider_code)},
         {"error", s.message()}});
    return s;
  }
  Log(LogLevel::kInfo, "vonage accepted",
      {{"to", MaskPhone(to)}, {"message_id", receipt->provider_id}});
  return s;
}

}  // namespace

Status NewVonageSmsSender(const VonageOptions& options, std::unique_ptr<SmsSender>* sender) {
  if (options.api_key.empty() || options.api_secret.empty()) {
    return Status::InvalidArgument("vonage_api_key and vonage_api_secret are required");
  }
  if (options.from.empty()) return Status::InvalidArgument("vonage_from is not set");
  for (const std::string* v : {&options.api_key, &options.api_secret, &options.from}) {
    if (HasControl(*v))
      return Status::InvalidArgument("a vonage_* setting holds a control character");
  }
  if (options.connect_timeout_ms < 1 || options.timeout_ms < 1 ||
      options.max_idle_connections < 0) {
    return Status::InvalidArgument("vonage timeouts must be positive");
  }
  ProviderClientOptions c;
  c.name = "vonage";
  c.api_base = options.api_base;
  c.ca_file = options.ca_file;
  c.connect_timeout_ms = options.connect_timeout_ms;
  c.max_idle_connections = options.max_idle_connections;
  c.max_idle_ms = options.max_idle_ms;
  c.clock = options.clock;
  std::unique_ptr<ProviderClient> client;
  Status s = ProviderClient::New(c, &client);
  if (!s.ok()) return s;
  sender->reset(new VonageSmsSender(options, std::move(client)));
  return Status::OK();
}

}  // namespace otpd
