// ProviderClient: the HTTPS client every provider sender (Twilio, Vonage,
// and any later voice or chat channel) reaches its provider's REST API
// through, so that they all keep the same rules:
//
// - TLS with the certificate chain and the host name always verified
//   (`ca_file`, else the system store); redirects are never followed (they
//   would carry the credentials along).
// - Keep-alive connections pooled: each one used by one thread at a time,
//   at most `max_idle_connections` kept between requests, and one idle
//   longer than `max_idle_ms` closed rather than reused.
// - One deadline per request, retries and backoff included: every connect
//   and read timeout is cut from what is left of it.
// - Retries (at most two, backoff 100 ms then 300 ms) only when the
//   provider cannot have taken the request: no TCP connection, no TLS
//   session, the request not written, or an answer the sender's
//   AnswerReader calls retryable (typically 429 and 5xx).
// - Answers larger than 64 KiB are dropped.
//
// Thread-safe. Deadlines are on std::chrono::steady_clock: they bound the
// socket waits, which only real time can shorten. The backoff sleeps and
// the pool's idle ages go through the options' Clock (core/clock.h: its
// monotonic time and SleepMicros), which tests fake.
#ifndef OTPD_SMS_PROVIDER_CLIENT_H_
#define OTPD_SMS_PROVIDER_CLIENT_H_

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace otpd {

using ProviderDeadline = std::chrono::steady_clock::time_point;

// The deadline `timeout_ms` from now.
ProviderDeadline ProviderDeadlineIn(int timeout_ms);

struct ProviderClientOptions {
  // "twilio", "vonage": starts every error message and log line, and names
  // the config keys in them ("<name>_api_base", "<name>_ca_file").
  std::string name;
  std::string api_base;  // https://HOST[:PORT], optionally a trailing '/'; no path
  std::string ca_file;   // PEM bundle; empty: the system store
  // HTTP Basic auth on every request when `basic_user` is not empty.
  std::string basic_user;
  std::string basic_password;     // secret: never logged
  int connect_timeout_ms = 1500;  // per TCP+TLS connect, at most
  int max_idle_connections = 4;
  int max_idle_ms = 20000;
  Clock* clock = nullptr;  // backoff sleeps, idle ages; null: SystemClock()
};

// One HTTP answer from the provider.
struct ProviderAnswer {
  int http_status = 0;
  std::string body;
};

// Turns one answer into the Status the sender returns (STYLE §4), and
// says whether the provider did not take the request and may take it on a
// later attempt. Called once per answer, from the calling thread.
using ProviderAnswerReader = std::function<Status(const ProviderAnswer& answer, bool* retryable)>;

struct ProviderPost {
  std::string path;  // "/sms/json"; starts with '/'
  std::string form;  // application/x-www-form-urlencoded (FormEncode)
  ProviderDeadline deadline;
  // The phone the request is about, masked in the "<name> send retried"
  // log line; may be empty.
  std::string to;
};

class ProviderClient {
 public:
  // InvalidArgument when `api_base` is not https://HOST[:PORT], a
  // credential holds a control character, a timeout is not positive, or
  // `ca_file` holds no PEM certificate.
  static Status New(const ProviderClientOptions& options, std::unique_ptr<ProviderClient>* client);

  ~ProviderClient();
  ProviderClient(const ProviderClient&) = delete;
  ProviderClient& operator=(const ProviderClient&) = delete;

  // POSTs `post.form` to `post.path` and answers what `read` makes of the
  // answer, retrying as the header says, and never past `post.deadline`.
  // A transport failure answers Unavailable("<name> ...") with the reason
  // (a rejected certificate says "certificate" and why).
  Status PostForm(const ProviderPost& post, const ProviderAnswerReader& read);

  const std::string& name() const;

 private:
  struct Impl;
  explicit ProviderClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

using FormFields = std::vector<std::pair<std::string, std::string>>;

// application/x-www-form-urlencoded: unreserved bytes as is, every other
// byte (UTF-8 included) as %XX, so '+' is %2B and a space %20.
std::string FormEncode(const FormFields& fields);

// True when `s` holds a byte below 0x20 or 0x7f (never valid in a header
// value or a credential).
bool HasControlChar(const std::string& s);

}  // namespace otpd

#endif  // OTPD_SMS_PROVIDER_CLIENT_H_
