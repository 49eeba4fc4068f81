// The Twilio SMS sender (sms.h): cpp-httplib's client over OpenSSL.
//
// Deadlines use the monotonic clock on purpose: they bound how long a
// request thread waits and are never stored, so the injected wall Clock
// (clock.h), which may jump, would be the wrong tool here.
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <sys/stat.h>

#include <otpd_httplib.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <utility>
#include <vector>

#include "core/log.h"
#include "core/phone.h"
#include "otp/sms.h"

#ifndef OTPD_VERSION
#define OTPD_VERSION "0.0.0"
#endif

namespace otpd {
namespace {

using Steady = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

constexpr int kMaxRetries = 2;
constexpr int kBackoffMs[kMaxRetries] = {100, 300};
constexpr int kTooManyRequestsCode = 20429;
// Twilio's answers are under 2 KiB; the library itself sets no limit.
constexpr size_t kMaxAnswerBytes = 64 * 1024;

struct Endpoint {
  std::string host;
  int port = 443;
};

// "https://host" or "https://host:port", optionally with a trailing '/'.
Status ParseApiBase(const std::string& base, Endpoint* ep) {
  const std::string scheme = "https://";
  const std::string bad = "twilio_api_base = '" + base + "': ";
  if (base.compare(0, scheme.size(), scheme) != 0) {
    return Status::InvalidArgument(bad + "must start with https://");
  }
  std::string rest = base.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  ep->host = rest.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    if (port.empty() || port.size() > 5 ||
        port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
        std::stoi(port) > 65535) {
      return Status::InvalidArgument(bad + "bad port");
    }
    ep->port = std::stoi(port);
  }
  if (ep->host.empty() ||
      ep->host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789.-") != std::string::npos) {
    return Status::InvalidArgument(bad + "must be https://HOST[:PORT] with no path");
  }
  return Status::OK();
}

bool HasControl(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// application/x-www-form-urlencoded: unreserved bytes as is, every other
// byte (UTF-8 included) as %XX, so '+' is %2B and a space %20.
std::string FormEncode(const std::vector<std::pair<std::string, std::string>>& fields) {
  static const char kHex[] = "0123456789ABCDEF";
  std::string out;
  for (const auto& [name, value] : fields) {
    if (!out.empty()) out += '&';
    out += name + '=';
    for (unsigned char c : value) {
      if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
        out += static_cast<char>(c);
      } else {
        out += '%';
        out += kHex[c >> 4];
        out += kHex[c & 15];
      }
    }
  }
  return out;
}

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
  *retryable = http_status == 429 || code == kTooManyRequestsCode || http_status >= 500;
  const std::string text = "twilio error " + std::to_string(code) + " (HTTP " +
                           std::to_string(http_status) + "): " + message;
  if (http_status >= 400 && http_status < 500 && !*retryable) {
    return Status::InvalidArgument(text);
  }
  return Status::Unavailable(text);
}

// Transport failures. Retryable only when the request cannot have reached
// Twilio: no TCP connection, no TLS session, or the request not written.
Status TransportStatus(httplib::Error err, long verify_result, bool* retryable) {
  using httplib::Error;
  *retryable = err == Error::Connection || err == Error::ConnectionTimeout ||
               err == Error::SSLConnection || err == Error::Write;
  if (err == Error::SSLServerHostnameVerification) {
    return Status::Unavailable("twilio TLS certificate rejected: host name does not match the certificate");
  }
  if (err == Error::SSLServerVerification) {
    const std::string why = verify_result != X509_V_OK
                                ? X509_verify_cert_error_string(verify_result)
                                : "host name does not match the certificate";
    return Status::Unavailable("twilio TLS certificate rejected: " + why);
  }
  if (err == Error::Canceled) {
    return Status::Unavailable("twilio answer larger than " + std::to_string(kMaxAnswerBytes) +
                               " bytes; dropped");
  }
  if (err == Error::SSLLoadingCerts) {
    return Status::Unavailable("twilio: cannot load the CA certificates (twilio_ca_file)");
  }
  return Status::Unavailable("twilio request failed: " + httplib::to_string(err));
}

class TwilioSmsSender : public SmsSender {
 public:
  TwilioSmsSender(const TwilioOptions& options, Endpoint ep)
      : options_(options), ep_(std::move(ep)) {
    path_ = "/2010-04-01/Accounts/" + options_.account_sid + "/Messages.json";
    const bool key = !options_.api_key_sid.empty() && !options_.api_key_secret.empty();
    user_ = key ? options_.api_key_sid : options_.account_sid;
    password_ = key ? options_.api_key_secret : options_.auth_token;
  }

  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override;

 private:
  std::unique_ptr<httplib::SSLClient> Acquire();
  void Release(std::unique_ptr<httplib::SSLClient> client);
  std::unique_ptr<httplib::SSLClient> NewClient() const;
  Status Attempt(const std::string& form, Steady::time_point deadline, SmsReceipt* receipt,
                 bool* retryable);
  std::string Form(const std::string& to, const std::string& body) const;

  const TwilioOptions options_;
  const Endpoint ep_;
  std::string path_, user_, password_;
  struct Idle {
    std::unique_ptr<httplib::SSLClient> client;
    Steady::time_point since;
  };
  std::mutex mu_;
  std::vector<Idle> idle_;  // guarded by mu_; the most recently used last
};

std::unique_ptr<httplib::SSLClient> TwilioSmsSender::NewClient() const {
  auto client = std::make_unique<httplib::SSLClient>(ep_.host, ep_.port);
  client->enable_server_certificate_verification(true);
  if (!options_.ca_file.empty()) client->set_ca_cert_path(options_.ca_file);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);  // else Nagle holds the body back ~40 ms per send
  client->set_follow_location(false);  // a redirect would carry the credentials along
  client->set_basic_auth(user_, password_);
  return client;
}

// Connections idle longer than max_idle_ms are dropped rather than reused:
// the server has likely closed them, and a request written into a closed
// connection can fail in a way that is not safe to retry.
std::unique_ptr<httplib::SSLClient> TwilioSmsSender::Acquire() {
  std::unique_ptr<httplib::SSLClient> client;
  std::vector<Idle> stale;  // closed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    const Steady::time_point oldest = Steady::now() - Millis(options_.max_idle_ms);
    auto fresh = std::find_if(idle_.begin(), idle_.end(),
                              [oldest](const Idle& i) { return i.since >= oldest; });
    std::move(idle_.begin(), fresh, std::back_inserter(stale));
    idle_.erase(idle_.begin(), fresh);
    if (!idle_.empty()) {
      client = std::move(idle_.back().client);
      idle_.pop_back();
    }
  }
  return client != nullptr ? std::move(client) : NewClient();
}

void TwilioSmsSender::Release(std::unique_ptr<httplib::SSLClient> client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(idle_.size()) < options_.max_idle_connections) {
    idle_.push_back(Idle{std::move(client), Steady::now()});
  }
}

std::string TwilioSmsSender::Form(const std::string& to, const std::string& body) const {
  std::vector<std::pair<std::string, std::string>> fields = {{"To", to}, {"Body", body}};
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

// One POST. Every timeout is cut from what is left before `deadline`: a
// connection (new, or a pooled one the server closed) may spend the connect
// timeout twice (TCP, then TLS), and reading gets the rest, so an attempt
// never outlives the deadline.
Status TwilioSmsSender::Attempt(const std::string& form, Steady::time_point deadline,
                                SmsReceipt* receipt, bool* retryable) {
  std::unique_ptr<httplib::SSLClient> client = Acquire();
  const int64_t left =
      std::chrono::duration_cast<Millis>(deadline - Steady::now()).count();
  const int64_t connect_ms =
      std::max<int64_t>(1, std::min<int64_t>(options_.connect_timeout_ms, left / 4));
  const int64_t io_ms = std::max<int64_t>(1, left - 2 * connect_ms);
  client->set_connection_timeout(Millis(connect_ms));
  client->set_read_timeout(Millis(io_ms));
  client->set_write_timeout(Millis(io_ms));
  httplib::Request req;
  req.method = "POST";
  req.path = path_;
  req.headers = {{"Accept", "application/json"},
                 {"User-Agent", "otpd/" OTPD_VERSION},
                 {"Content-Type", "application/x-www-form-urlencoded"}};
  req.body = form;
  std::string answer;
  req.content_receiver = [&answer](const char* data, size_t n, uint64_t, uint64_t) {
    if (answer.size() + n > kMaxAnswerBytes) return false;  // ends the request: Canceled
    answer.append(data, n);
    return true;
  };
  // On a rejected certificate the result carries OpenSSL's verify result.
  httplib::Result result = client->send(req);
  if (!result) {
    return TransportStatus(result.error(), static_cast<long>(result.ssl_backend_error()),
                           retryable);
  }
  Status s = TwilioAnswerStatus(result->status, answer, receipt, retryable);
  if (s.ok() || !*retryable) Release(std::move(client));
  return s;
}

Status TwilioSmsSender::Send(const std::string& to, const std::string& body,
                             SmsReceipt* receipt) {
  if (HasControl(to)) return Status::InvalidArgument("bad phone number");
  const Steady::time_point deadline = Steady::now() + Millis(options_.timeout_ms);
  const std::string form = Form(to, body);
  Status s;
  for (int attempt = 0;; ++attempt) {
    *receipt = SmsReceipt();
    receipt->provider = "twilio";
    bool retryable = false;
    s = Attempt(form, deadline, receipt, &retryable);
    if (s.ok() || !retryable || attempt == kMaxRetries) break;
    const Steady::time_point retry_at = Steady::now() + Millis(kBackoffMs[attempt]);
    if (retry_at + Millis(10) >= deadline) break;
    Log(LogLevel::kWarn, "twilio send retried",
        {{"to", MaskPhone(to)}, {"attempt", std::to_string(attempt + 1)}, {"error", s.message()}});
    std::this_thread::sleep_until(retry_at);
  }
  if (!s.ok()) {
    Log(LogLevel::kError, "twilio send failed",
        {{"to", MaskPhone(to)}, {"twilio_code", std::to_string(receipt->provider_code)},
         {"error", s.message()}});
    return s;
  }
  Log(LogLevel::kInfo, "twilio accepted", {{"to", MaskPhone(to)}, {"sid", receipt->provider_id}});
  return s;
}

Status CheckCaFile(const std::string& path) {
  if (path.empty()) return Status::OK();
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) {
    return Status::InvalidArgument("twilio_ca_file " + path + ": " + strerror(errno));
  }
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (cert == nullptr) {
    return Status::InvalidArgument("twilio_ca_file " + path + ": no PEM certificate in it");
  }
  X509_free(cert);
  return Status::OK();
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
  for (const std::string* v : {&o.account_sid, &o.auth_token, &o.api_key_sid,
                               &o.api_key_secret, &o.from, &o.messaging_service_sid,
                               &o.status_callback}) {
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
  return CheckCaFile(o.ca_file);
}

}  // namespace

Status NewTwilioSmsSender(const TwilioOptions& options, std::unique_ptr<SmsSender>* sender) {
  Status s = CheckOptions(options);
  Endpoint ep;
  if (s.ok()) s = ParseApiBase(options.api_base, &ep);
  if (!s.ok()) return s;
  sender->reset(new TwilioSmsSender(options, std::move(ep)));
  return Status::OK();
}

Status ReadTwilioAuthTokenFile(const std::string& path, std::string* token) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status::IOError("twilio_auth_token_file " + path + ": " + strerror(errno));
  }
  std::ostringstream text;
  text << in.rdbuf();
  std::string t = text.str();
  while (!t.empty() && (t.back() == '\n' || t.back() == '\r')) t.pop_back();
  if (t.empty() || HasControl(t)) {
    return Status::InvalidArgument("twilio_auth_token_file " + path +
                                   ": must hold the token on one line");
  }
  struct stat st;
  if (stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    Log(LogLevel::kWarn, "twilio_auth_token_file is readable by other users; make it 0600",
        {{"path", path}});
  }
  *token = std::move(t);
  return Status::OK();
}

}  // namespace otpd
