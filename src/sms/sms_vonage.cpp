// The Vonage SMS sender (sms.h): cpp-httplib's client over OpenSSL, with
// the Twilio sender's rules (verified TLS, pooled keep-alive, one deadline
// for a send and its retries). Vonage answers HTTP 200 for most refusals,
// with the reason in messages[0].status.
//
// Deadlines use the monotonic clock: they bound a request thread's wait
// and are never stored.
#include <otpd_httplib.h>
#include <openssl/x509.h>

#include <algorithm>
#include <chrono>
#include <iterator>
#include <mutex>
#include <nlohmann/json.hpp>
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
constexpr size_t kMaxAnswerBytes = 64 * 1024;

bool HasControl(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

// "https://host[:port]" with an optional trailing '/'.
Status ParseBase(const std::string& base, std::string* host, int* port) {
  const std::string scheme = "https://";
  const std::string bad = "vonage_api_base = '" + base + "': ";
  if (base.compare(0, scheme.size(), scheme) != 0) {
    return Status::InvalidArgument(bad + "must start with https://");
  }
  std::string rest = base.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  *host = rest.substr(0, colon);
  *port = 443;
  if (colon != std::string::npos) {
    const std::string p = rest.substr(colon + 1);
    if (p.empty() || p.size() > 5 || p.find_first_not_of("0123456789") != std::string::npos ||
        std::stoi(p) < 1 || std::stoi(p) > 65535) {
      return Status::InvalidArgument(bad + "bad port");
    }
    *port = std::stoi(p);
  }
  if (host->empty() || host->find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRST"
                                               "UVWXYZ0123456789.-") != std::string::npos) {
    return Status::InvalidArgument(bad + "must be https://HOST[:PORT] with no path");
  }
  return Status::OK();
}

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

Status TransportStatus(httplib::Error err, long verify_result, bool* retryable) {
  using httplib::Error;
  *retryable = err == Error::Connection || err == Error::ConnectionTimeout ||
               err == Error::SSLConnection || err == Error::Write;
  if (err == Error::SSLServerHostnameVerification) {
    return Status::Unavailable("vonage TLS certificate rejected: host name does not match the certificate");
  }
  if (err == Error::SSLServerVerification) {
    const std::string why = verify_result != X509_V_OK
                                ? X509_verify_cert_error_string(verify_result)
                                : "host name does not match the certificate";
    return Status::Unavailable("vonage TLS certificate rejected: " + why);
  }
  if (err == Error::Canceled) return Status::Unavailable("vonage answer too large; dropped");
  return Status::Unavailable("vonage request failed: " + httplib::to_string(err));
}

class VonageSmsSender : public SmsSender {
 public:
  VonageSmsSender(const VonageOptions& options, std::string host, int port)
      : options_(options), host_(std::move(host)), port_(port) {}

  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override;

 private:
  std::unique_ptr<httplib::SSLClient> Acquire();
  void Release(std::unique_ptr<httplib::SSLClient> client);
  Status Attempt(const std::string& form, Steady::time_point deadline, SmsReceipt* receipt,
                 bool* retryable);

  const VonageOptions options_;
  const std::string host_;
  const int port_;
  struct Idle {
    std::unique_ptr<httplib::SSLClient> client;
    Steady::time_point since;
  };
  std::mutex mu_;
  std::vector<Idle> idle_;  // guarded by mu_; the most recently used last
};

std::unique_ptr<httplib::SSLClient> VonageSmsSender::Acquire() {
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
  if (client != nullptr) return client;
  client = std::make_unique<httplib::SSLClient>(host_, port_);
  client->enable_server_certificate_verification(true);
  if (!options_.ca_file.empty()) client->set_ca_cert_path(options_.ca_file);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);
  client->set_follow_location(false);  // a redirect would carry the secret along
  return client;
}

void VonageSmsSender::Release(std::unique_ptr<httplib::SSLClient> client) {
  std::lock_guard<std::mutex> lock(mu_);
  if (static_cast<int>(idle_.size()) < options_.max_idle_connections) {
    idle_.push_back(Idle{std::move(client), Steady::now()});
  }
}

Status VonageSmsSender::Attempt(const std::string& form, Steady::time_point deadline,
                                SmsReceipt* receipt, bool* retryable) {
  std::unique_ptr<httplib::SSLClient> client = Acquire();
  const int64_t left = std::chrono::duration_cast<Millis>(deadline - Steady::now()).count();
  const int64_t connect_ms =
      std::max<int64_t>(1, std::min<int64_t>(options_.connect_timeout_ms, left / 4));
  const int64_t io_ms = std::max<int64_t>(1, left - 2 * connect_ms);
  client->set_connection_timeout(Millis(connect_ms));
  client->set_read_timeout(Millis(io_ms));
  client->set_write_timeout(Millis(io_ms));
  httplib::Request req;
  req.method = "POST";
  req.path = "/sms/json";
  req.headers = {{"Accept", "application/json"},
                 {"User-Agent", "otpd/" OTPD_VERSION},
                 {"Content-Type", "application/x-www-form-urlencoded"}};
  req.body = form;
  std::string answer;
  req.content_receiver = [&answer](const char* data, size_t n, uint64_t, uint64_t) {
    if (answer.size() + n > kMaxAnswerBytes) return false;
    answer.append(data, n);
    return true;
  };
  // On a rejected certificate the result carries OpenSSL's verify result.
  httplib::Result result = client->send(req);
  if (!result) {
    return TransportStatus(result.error(), static_cast<long>(result.ssl_backend_error()),
                           retryable);
  }
  Status s = VonageAnswerStatus(result->status, answer, receipt, retryable);
  if (s.ok() || !*retryable) Release(std::move(client));
  return s;
}

Status VonageSmsSender::Send(const std::string& to, const std::string& body,
                             SmsReceipt* receipt) {
  if (HasControl(to) || to.size() < 2 || to[0] != '+') {
    return Status::InvalidArgument("bad phone number");
  }
  const Steady::time_point deadline = Steady::now() + Millis(options_.timeout_ms);
  std::vector<std::pair<std::string, std::string>> fields = {
      {"api_key", options_.api_key}, {"api_secret", options_.api_secret},
      {"from", options_.from},       {"to", to.substr(1)},  // Vonage: digits, no '+'
      {"text", body}};
  if (!MeasureSms(body).gsm7) fields.emplace_back("type", "unicode");
  const std::string form = FormEncode(fields);
  Status s;
  for (int attempt = 0;; ++attempt) {
    *receipt = SmsReceipt();
    receipt->provider = "vonage";
    bool retryable = false;
    s = Attempt(form, deadline, receipt, &retryable);
    if (s.ok() || !retryable || attempt == kMaxRetries) break;
    const Steady::time_point retry_at = Steady::now() + Millis(kBackoffMs[attempt]);
    if (retry_at + Millis(10) >= deadline) break;
    Log(LogLevel::kWarn, "vonage send retried",
        {{"to", MaskPhone(to)}, {"attempt", std::to_string(attempt + 1)}, {"error", s.message()}});
    std::this_thread::sleep_until(retry_at);
  }
  if (!s.ok()) {
    Log(LogLevel::kError, "vonage send failed",
        {{"to", MaskPhone(to)}, {"vonage_status", std::to_string(receipt->provider_code)},
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
    if (HasControl(*v)) return Status::InvalidArgument("a vonage_* setting holds a control character");
  }
  if (options.connect_timeout_ms < 1 || options.timeout_ms < 1 ||
      options.max_idle_connections < 0) {
    return Status::InvalidArgument("vonage timeouts must be positive");
  }
  std::string host;
  int port = 443;
  Status s = ParseBase(options.api_base, &host, &port);
  if (!s.ok()) return s;
  sender->reset(new VonageSmsSender(options, std::move(host), port));
  return Status::OK();
}

}  // namespace otpd
