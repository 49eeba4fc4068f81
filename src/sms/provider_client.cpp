// ProviderClient (provider_client.h): cpp-httplib's client over OpenSSL.
#include "sms/provider_client.h"

#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <otpd_httplib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <mutex>

#include "core/log.h"
#include "core/phone.h"

#ifndef OTPD_VERSION
#define OTPD_VERSION "0.0.0"
#endif

namespace otpd {

using Steady = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;

namespace {

constexpr int kMaxRetries = 2;
constexpr int64_t kBackoffMs[kMaxRetries] = {100, 300};
// Providers' answers are a few KiB; the library itself sets no limit.
constexpr size_t kMaxAnswerBytes = 64 * 1024;

struct Endpoint {
  std::string host;
  int port = 443;
};

bool ValidPort(const std::string& port) {
  return !port.empty() && port.size() <= 5 &&
         port.find_first_not_of("0123456789") == std::string::npos && std::stoi(port) >= 1 &&
         std::stoi(port) <= 65535;
}

// "https://host" or "https://host:port", optionally with a trailing '/'.
Status ParseApiBase(const std::string& name, const std::string& base, Endpoint* ep) {
  const std::string scheme = "https://";
  const std::string bad = name + "_api_base = '" + base + "': ";
  if (base.compare(0, scheme.size(), scheme) != 0) {
    return Status::InvalidArgument(bad + "must start with https://");
  }
  std::string rest = base.substr(scheme.size());
  if (!rest.empty() && rest.back() == '/') rest.pop_back();
  const size_t colon = rest.rfind(':');
  ep->host = rest.substr(0, colon);
  if (colon != std::string::npos) {
    const std::string port = rest.substr(colon + 1);
    if (!ValidPort(port)) return Status::InvalidArgument(bad + "bad port");
    ep->port = std::stoi(port);
  }
  if (ep->host.empty() ||
      ep->host.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789.-") != std::string::npos) {
    return Status::InvalidArgument(bad + "must be https://HOST[:PORT] with no path");
  }
  return Status::OK();
}

Status CheckCaFile(const std::string& name, const std::string& path) {
  if (path.empty()) return Status::OK();
  const std::string key = name + "_ca_file " + path + ": ";
  FILE* f = fopen(path.c_str(), "r");
  if (f == nullptr) return Status::InvalidArgument(key + strerror(errno));
  X509* cert = PEM_read_X509(f, nullptr, nullptr, nullptr);
  fclose(f);
  if (cert == nullptr) return Status::InvalidArgument(key + "no PEM certificate in it");
  X509_free(cert);
  return Status::OK();
}

// Transport failures. Retryable only when the request cannot have reached
// the provider: no TCP connection, no TLS session, or the request not
// written.
Status TransportStatus(const std::string& name, httplib::Error err, long verify_result,
                       bool* retryable) {
  using httplib::Error;
  *retryable = err == Error::Connection || err == Error::ConnectionTimeout ||
               err == Error::SSLConnection || err == Error::Write;
  if (err == Error::SSLServerHostnameVerification) {
    return Status::Unavailable(name +
                               " TLS certificate rejected: host name does not match the "
                               "certificate");
  }
  if (err == Error::SSLServerVerification) {
    const std::string why = verify_result != X509_V_OK
                                ? X509_verify_cert_error_string(verify_result)
                                : "host name does not match the certificate";
    return Status::Unavailable(name + " TLS certificate rejected: " + why);
  }
  if (err == Error::Canceled) {
    return Status::Unavailable(name + " answer larger than " + std::to_string(kMaxAnswerBytes) +
                               " bytes; dropped");
  }
  if (err == Error::SSLLoadingCerts) {
    return Status::Unavailable(name + ": cannot load the CA certificates (" + name + "_ca_file)");
  }
  return Status::Unavailable(name + " request failed: " + httplib::to_string(err));
}

}  // namespace

ProviderDeadline ProviderDeadlineIn(int timeout_ms) { return Steady::now() + Millis(timeout_ms); }

struct ProviderClient::Impl {
  ProviderClientOptions options;
  Endpoint ep;
  Clock* clock = nullptr;  // never null once made
  struct Idle {
    std::unique_ptr<httplib::SSLClient> client;
    int64_t since_us;  // clock's monotonic time
  };
  std::mutex mu;
  std::vector<Idle> idle;  // guarded by mu; the most recently used last

  std::unique_ptr<httplib::SSLClient> NewClient() const;
  std::unique_ptr<httplib::SSLClient> Acquire();
  void Release(std::unique_ptr<httplib::SSLClient> client);
  Status Attempt(const ProviderPost& post, const ProviderAnswerReader& read, bool* retryable);
};

std::unique_ptr<httplib::SSLClient> ProviderClient::Impl::NewClient() const {
  auto client = std::make_unique<httplib::SSLClient>(ep.host, ep.port);
  client->enable_server_certificate_verification(true);
  if (!options.ca_file.empty()) client->set_ca_cert_path(options.ca_file);
  client->set_keep_alive(true);
  client->set_tcp_nodelay(true);       // else Nagle holds the body back ~40 ms per request
  client->set_follow_location(false);  // a redirect would carry the credentials along
  if (!options.basic_user.empty()) {
    client->set_basic_auth(options.basic_user, options.basic_password);
  }
  return client;
}

// Connections idle longer than max_idle_ms are dropped rather than reused:
// the server has likely closed them, and a request written into a closed
// connection can fail in a way that is not safe to retry.
std::unique_ptr<httplib::SSLClient> ProviderClient::Impl::Acquire() {
  std::unique_ptr<httplib::SSLClient> client;
  std::vector<Idle> stale;  // closed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu);
    const int64_t oldest_us = clock->MonotonicMicros() - int64_t{options.max_idle_ms} * 1000;
    auto fresh = std::find_if(idle.begin(), idle.end(),
                              [oldest_us](const Idle& i) { return i.since_us >= oldest_us; });
    std::move(idle.begin(), fresh, std::back_inserter(stale));
    idle.erase(idle.begin(), fresh);
    if (!idle.empty()) {
      client = std::move(idle.back().client);
      idle.pop_back();
    }
  }
  return client != nullptr ? std::move(client) : NewClient();
}

void ProviderClient::Impl::Release(std::unique_ptr<httplib::SSLClient> client) {
  std::lock_guard<std::mutex> lock(mu);
  if (static_cast<int>(idle.size()) < options.max_idle_connections) {
    idle.push_back(Idle{std::move(client), clock->MonotonicMicros()});
  }
}

// One POST. Every timeout is cut from what is left before the deadline: a
// connection (new, or a pooled one the server closed) may spend the connect
// timeout twice (TCP, then TLS), and reading gets the rest, so an attempt
// never outlives the deadline.
Status ProviderClient::Impl::Attempt(const ProviderPost& post, const ProviderAnswerReader& read,
                                     bool* retryable) {
  std::unique_ptr<httplib::SSLClient> client = Acquire();
  const int64_t left = std::chrono::duration_cast<Millis>(post.deadline - Steady::now()).count();
  const int64_t connect_ms =
      std::max<int64_t>(1, std::min<int64_t>(options.connect_timeout_ms, left / 4));
  const int64_t io_ms = std::max<int64_t>(1, left - 2 * connect_ms);
  client->set_connection_timeout(Millis(connect_ms));
  client->set_read_timeout(Millis(io_ms));
  client->set_write_timeout(Millis(io_ms));
  httplib::Request req;
  req.method = "POST";
  req.path = post.path;
  req.headers = {{"Accept", "application/json"},
                 {"User-Agent", "otpd/" OTPD_VERSION},
                 {"Content-Type", "application/x-www-form-urlencoded"}};
  req.body = post.form;
  ProviderAnswer answer;
  req.content_receiver = [&answer](const char* data, size_t n, uint64_t, uint64_t) {
    if (answer.body.size() + n > kMaxAnswerBytes) return false;  // ends the request: Canceled
    answer.body.append(data, n);
    return true;
  };
  // On a rejected certificate the result carries OpenSSL's verify result.
  httplib::Result result = client->send(req);
  if (!result) {
    return TransportStatus(options.name, result.error(),
                           static_cast<long>(result.ssl_backend_error()), retryable);
  }
  answer.http_status = result->status;
  *retryable = false;
  Status s = read(answer, retryable);
  if (s.ok() || !*retryable) Release(std::move(client));
  return s;
}

ProviderClient::ProviderClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ProviderClient::~ProviderClient() = default;

const std::string& ProviderClient::name() const { return impl_->options.name; }

Status ProviderClient::New(const ProviderClientOptions& options,
                           std::unique_ptr<ProviderClient>* client) {
  const std::string& name = options.name;
  if (HasControlChar(options.basic_user) || HasControlChar(options.basic_password)) {
    return Status::InvalidArgument("a " + name + "_* credential holds a control character");
  }
  if (options.connect_timeout_ms < 1 || options.max_idle_connections < 0 ||
      options.max_idle_ms < 0) {
    return Status::InvalidArgument(name + " timeouts must be positive");
  }
  auto impl = std::make_unique<Impl>();
  Status s = ParseApiBase(name, options.api_base, &impl->ep);
  if (s.ok()) s = CheckCaFile(name, options.ca_file);
  if (!s.ok()) return s;
  impl->options = options;
  impl->clock = options.clock != nullptr ? options.clock : SystemClock();
  client->reset(new ProviderClient(std::move(impl)));
  return Status::OK();
}

Status ProviderClient::PostForm(const ProviderPost& post, const ProviderAnswerReader& read) {
  const std::string& name = impl_->options.name;
  Status s;
  for (int attempt = 0;; ++attempt) {
    bool retryable = false;
    s = impl_->Attempt(post, read, &retryable);
    if (s.ok() || !retryable || attempt == kMaxRetries) break;
    if (Steady::now() + Millis(kBackoffMs[attempt] + 10) >= post.deadline) break;
    Clock* clock = impl_->clock;
    const int64_t retry_at_us = clock->MonotonicMicros() + kBackoffMs[attempt] * 1000;
    Log(LogLevel::kWarn, name + " send retried",
        {{"to", MaskPhone(post.to)},
         {"attempt", std::to_string(attempt + 1)},
         {"error", s.message()}});
    clock->SleepMicros(retry_at_us - clock->MonotonicMicros());
  }
  return s;
}

std::string FormEncode(const FormFields& fields) {
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

bool HasControlChar(const std::string& s) {
  return std::any_of(s.begin(), s.end(), [](char c) {
    const auto u = static_cast<unsigned char>(c);
    return u < 0x20 || u == 0x7f;
  });
}

}  // namespace otpd
