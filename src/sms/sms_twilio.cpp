// The Twilio SMS sender (sms.h), over the shared provider client
// (provider_client.h: verified TLS, pooled keep-alive, deadline, retries).
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>

#include "core/log.h"
#include "core/phone.h"
#include "otp/sms.h"
#include "sms/provider_client.h"

namespace otpd {
namespace {

constexpr int kTooManyRequestsCode = 20429;

// Twilio's error codes that refuse the number itself, so another provider
// would refuse it too or must not be asked (twilio.com/docs/api/errors):
// 21211 invalid 'To' number, 21214 'To' cannot be reached, 21217 not a
// valid phone number, 21610 the recipient unsubscribed (STOP), 21614 not a
// mobile number. 21408 (SMS not enabled for the 'To' number's region) is
// the account's geo permission, which operators turn off to stop SMS
// pumping to expensive regions: failing over would undo that.
bool IsNumberRefusal(int code) {
  switch (code) {
    case 21211:
    case 21214:
    case 21217:
    case 21408:
    case 21610:
    case 21614:
      return true;
    default:
      return false;
  }
}

bool HasControl(const std::string& s) { return HasControlChar(s); }

// Twilio's messages may quote the number in any form ("The 'To' number
// +1555... is not valid", "+1 (415) 555-0123", "4155550123", "%2B1415...");
// logs never hold full phones. A run of digits and the separators numbers
// are written with that holds 7 digits or more keeps only its last three.
bool IsPhoneSeparator(char c) {
  return c == ' ' || c == '-' || c == '.' || c == '(' || c == ')' || c == '+' || c == '/';
}

std::string MaskNumbers(const std::string& text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    int digits = 0;
    size_t last_digit_end = i;
    while (j < text.size()) {
      if (isdigit(static_cast<unsigned char>(text[j]))) {
        ++digits;
        last_digit_end = ++j;
      } else if (text.compare(j, 3, "%2B") == 0 || text.compare(j, 3, "%2b") == 0) {
        j += 3;
      } else if (IsPhoneSeparator(text[j])) {
        ++j;
      } else {
        break;
      }
    }
    if (digits < 7) {
      out += text[i++];
      continue;
    }
    int seen = 0;
    for (size_t k = i; k < last_digit_end; k++) {
      const bool digit = isdigit(static_cast<unsigned char>(text[k])) != 0;
      if (digit) ++seen;
      out += digit && seen <= digits - 3 ? '*' : text[k];
    }
    i = last_digit_end;
  }
  return out;
}

// The one place Twilio's answers become a Status (STYLE §4). Twilio's
// error body is {"code":21211,"message":"...","more_info":"...","status":400}.
// *retryable is true only where Twilio did not take the message and may
// take it later: 429, error 20429, or a 5xx.
Status TwilioAnswerStatus(int http_status, const std::string& body, SmsReceipt* receipt,
                          bool* retryable) {
  const nlohmann::json j = nlohmann::json::parse(body, nullptr, false);
  const bool object = j.is_object();
  if (http_status == 201) {
    if (object && j.contains("sid") && j["sid"].is_string()) {
      receipt->provider_id = j["sid"].get<std::string>();
    }
    *retryable = false;
    return Status::OK();
  }
  int code = 0;
  std::string message = "no error message";
  if (object && j.contains("code") && j["code"].is_number_integer()) code = j["code"].get<int>();
  if (object && j.contains("message") && j["message"].is_string()) {
    message = MaskNumbers(j["message"].get<std::string>());
  }
  receipt->provider_code = code;
  receipt->number_refused = IsNumberRefusal(code);
  *retryable = http_status == 429 || code == kTooManyRequestsCode || http_status >= 500;
  const std::string text = "twilio error " + std::to_string(code) + " (HTTP " +
                           std::to_string(http_status) + "): " + message;
  if (http_status >= 400 && http_status < 500 && !*retryable) {
    return Status::InvalidArgument(text);
  }
  return Status::Unavailable(text);
}

class TwilioSmsSender : public SmsSender {
 public:
  TwilioSmsSender(const TwilioOptions& options, std::unique_ptr<ProviderClient> client)
      : options_(options), client_(std::move(client)) {
    path_ = "/2010-04-01/Accounts/" + options_.account_sid + "/Messages.json";
  }

  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override {
    return SendBy(to, body, ProviderDeadlineIn(options_.timeout_ms), receipt);
  }
  Status SendBy(const std::string& to, const std::string& body, Deadline deadline,
                SmsReceipt* receipt) override;

 private:
  std::string Form(const std::string& to, const std::string& body) const;

  const TwilioOptions options_;
  const std::unique_ptr<ProviderClient> client_;
  std::string path_;
};

std::string TwilioSmsSender::Form(const std::string& to, const std::string& body) const {
  FormFields fields = {{"To", to}, {"Body", body}};
  if (!options_.messaging_service_sid.empty()) {
    fields.emplace_back("MessagingServiceSid", options_.messaging_service_sid);
  } else {
    fields.emplace_back("From", options_.from);
  }
  if (!options_.status_callback.empty()) {
    fields.emplace_back("StatusCallback", options_.status_callback);
  }
  return FormEncode(fields);
}

Status TwilioSmsSender::SendBy(const std::string& to, const std::string& body, Deadline deadline,
                               SmsReceipt* receipt) {
  if (HasControl(to)) {
    *receipt = SmsReceipt();
    receipt->provider = "twilio";
    receipt->number_refused = true;
    return Status::InvalidArgument("bad phone number");
  }
  const ProviderPost post{path_, Form(to, body),
                          std::min(deadline, ProviderDeadlineIn(options_.timeout_ms)), to};
  *receipt = SmsReceipt();
  receipt->provider = "twilio";
  Status s = client_->PostForm(post, [receipt](const ProviderAnswer& a, bool* retryable) {
    *receipt = SmsReceipt();
    receipt->provider = "twilio";
    return TwilioAnswerStatus(a.http_status, a.body, receipt, retryable);
  });
  if (!s.ok()) {
    Log(LogLevel::kError, "twilio send failed",
        {{"to", MaskPhone(to)},
         {"twilio_code", std::to_string(receipt->provider_code)},
         {"error", s.message()}});
    return s;
  }
  Log(LogLevel::kInfo, "twilio accepted", {{"to", MaskPhone(to)}, {"sid", receipt->provider_id}});
  return s;
}

Status CheckOptions(const TwilioOptions& o) {
  if (o.account_sid.empty()) return Status::InvalidArgument("twilio_account_sid is not set");
  const bool key = !o.api_key_sid.empty() || !o.api_key_secret.empty();
  if (key && (o.api_key_sid.empty() || o.api_key_secret.empty())) {
    return Status::InvalidArgument("twilio_api_key_sid and twilio_api_key_secret go together");
  }
  if (!key && o.auth_token.empty()) {
    return Status::InvalidArgument("twilio_auth_token (or an API key) is not set");
  }
  if (o.from.empty() && o.messaging_service_sid.empty()) {
    return Status::InvalidArgument(
        "twilio_phone_number or twilio_messaging_service_sid is not set");
  }
  for (const std::string* v : {&o.account_sid, &o.auth_token, &o.api_key_sid, &o.api_key_secret,
                               &o.from, &o.messaging_service_sid, &o.status_callback}) {
    if (HasControl(*v)) {
      return Status::InvalidArgument("a twilio_* setting holds a control character");
    }
  }
  if (o.account_sid.find_first_of("/?#%") != std::string::npos) {
    return Status::InvalidArgument("twilio_account_sid holds a URL character");
  }
  if (o.connect_timeout_ms < 1 || o.timeout_ms < 1 || o.max_idle_connections < 0) {
    return Status::InvalidArgument("twilio timeouts must be positive");
  }
  return Status::OK();
}

}  // namespace

Status NewTwilioSmsSender(const TwilioOptions& options, std::unique_ptr<SmsSender>* sender) {
  Status s = CheckOptions(options);
  if (!s.ok()) return s;
  const bool key = !options.api_key_sid.empty() && !options.api_key_secret.empty();
  ProviderClientOptions c;
  c.name = "twilio";
  c.api_base = options.api_base;
  c.ca_file = options.ca_file;
  c.basic_user = key ? options.api_key_sid : options.account_sid;
  c.basic_password = key ? options.api_key_secret : options.auth_token;
  c.connect_timeout_ms = options.connect_timeout_ms;
  c.max_idle_connections = options.max_idle_connections;
  c.max_idle_ms = options.max_idle_ms;
  c.clock = options.clock;
  std::unique_ptr<ProviderClient> client;
  s = ProviderClient::New(c, &client);
  if (!s.ok()) return s;
  sender->reset(new TwilioSmsSender(options, std::move(client)));
  return Status::OK();
}

Status ReadProviderSecretFile(const std::string& key, const std::string& path,
                              std::string* secret) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError(key + " " + path + ": " + strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string t = text.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  if (t.empty() || HasControl(t)) {
    return Status::InvalidArgument(key + " " + path + ": must hold the secret on one line");
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    Log(LogLevel::kWarn, key + " is readable by other users; make it 0600", {{"path", path}});
  }
  *secret = std::move(t);
  return Status::OK();
}

Status ReadTwilioAuthTokenFile(const std::string& path, std::string* token) {
  return ReadProviderSecretFile("twilio_auth_token_file", path, token);
}

}  // namespace otpd
