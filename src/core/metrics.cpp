#include "core/metrics.h"

#include <ctime>

namespace otpd {
namespace {

constexpr const char* kSendNames[] = {"sent",       "user_not_found", "phone_not_found",
                                      "sms_failed", "rate_limited",   "error"};
constexpr const char* kVerifyNames[] = {"ok",     "invalid",   "expired", "not_found",
                                        "locked", "throttled", "error"};
static_assert(sizeof kSendNames / sizeof *kSendNames == static_cast<size_t>(SendMetric::kCount));
static_assert(sizeof kVerifyNames / sizeof *kVerifyNames ==
              static_cast<size_t>(VerifyMetric::kCount));

void Add(std::atomic<uint64_t>* counter, uint64_t n = 1) {
  counter->fetch_add(n, std::memory_order_relaxed);
}

uint64_t Read(const std::atomic<uint64_t>& counter) {
  return counter.load(std::memory_order_relaxed);
}

std::string Seconds(uint64_t micros) {
  char buf[32];
  snprintf(buf, sizeof buf, "%llu.%06llu", static_cast<unsigned long long>(micros / 1000000),
           static_cast<unsigned long long>(micros % 1000000));
  return buf;
}

std::string Bound(double b) {
  char buf[32];
  snprintf(buf, sizeof buf, "%g", b);
  return buf;
}

void Header(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

// Label values here are route paths and limit names chosen by code, but
// escape anyway so a surprising name cannot break the exposition.
std::string LabelValue(std::string_view v) {
  std::string out;
  for (char c : v) {
    if (c == '\\' || c == '"') out.push_back('\\');
    if (c == '\n') {
      out += "\\n";
      continue;
    }
    out.push_back(c);
  }
  return out;
}

}  // namespace

void LatencyHistogram::Observe(int64_t micros) {
  if (micros < 0) micros = 0;
  const double s = static_cast<double>(micros) / 1e6;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    if (s <= kBounds[i]) {
      Add(&buckets_[i]);
      break;
    }
  }
  Add(&sum_micros_, static_cast<uint64_t>(micros));
  Add(&count_);  // last, so a scrape never sees more in buckets than in count
}

void LatencyHistogram::Render(const std::string& name, const std::string& labels,
                              std::string* out) const {
  const uint64_t count = Read(count_);
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += Read(buckets_[i]);
    if (cumulative > count) cumulative = count;
    *out += name + "_bucket{" + labels + sep + "le=\"" + Bound(kBounds[i]) + "\"} " +
            std::to_string(cumulative) + "\n";
  }
  *out += name + "_bucket{" + labels + sep + "le=\"+Inf\"} " + std::to_string(count) + "\n";
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  *out += name + "_sum" + braces + " " + Seconds(Read(sum_micros_)) + "\n";
  *out += name + "_count" + braces + " " + std::to_string(count) + "\n";
}

Metrics::Metrics(std::vector<std::string> routes)
    : routes_(std::move(routes)),
      requests_(routes_.size() + 1),
      request_latency_(routes_.size() + 1),
      start_unix_s_(static_cast<int64_t>(time(nullptr))) {
  limit_names_[kMaxRateLimits] = "other";
}

size_t Metrics::RouteIndex(std::string_view path) const {
  for (size_t i = 0; i < routes_.size(); ++i) {
    if (routes_[i] == path) return i;
  }
  return routes_.size();
}

void Metrics::RecordRequest(std::string_view path, int status, int64_t latency_micros) {
  const size_t route = RouteIndex(path);
  Add(&requests_[route][status >= 100 && status < kStatuses ? status : 0]);
  if (latency_micros >= 0) request_latency_[route].Observe(latency_micros);
}

void Metrics::RecordSend(SendMetric outcome) { Add(&sends_[static_cast<size_t>(outcome)]); }

void Metrics::RecordVerify(VerifyMetric outcome) { Add(&verifies_[static_cast<size_t>(outcome)]); }

void Metrics::RecordSmsLatency(int64_t micros, bool ok) {
  (ok ? sms_latency_ok_ : sms_latency_failed_).Observe(micros);
}

void Metrics::RecordRateLimited(std::string_view limit) {
  size_t n = limit_count_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    if (limit_names_[i] == limit) return Add(&limited_[i]);
  }
  std::lock_guard<std::mutex> lock(limit_names_mu_);
  n = limit_count_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    if (limit_names_[i] == limit) return Add(&limited_[i]);
  }
  if (n == kMaxRateLimits) return Add(&limited_[kMaxRateLimits]);
  limit_names_[n] = std::string(limit);
  Add(&limited_[n]);
  limit_count_.store(n + 1, std::memory_order_release);
}

void Metrics::RenderRequests(std::string* out) const {
  Header(out, "otpd_http_requests_total", "counter",
         "HTTP requests answered, by route and status.");
  for (size_t r = 0; r <= routes_.size(); ++r) {
    const std::string route = r < routes_.size() ? LabelValue(routes_[r]) : "other";
    for (int status = 0; status < kStatuses; ++status) {
      const uint64_t n = Read(requests_[r][static_cast<size_t>(status)]);
      if (n == 0) continue;
      *out += "otpd_http_requests_total{route=\"" + route + "\",status=\"" +
              std::to_string(status) + "\"} " + std::to_string(n) + "\n";
    }
  }
  Header(out, "otpd_http_request_duration_seconds", "histogram",
         "Time from the request's headers to the answer being written, by route.");
  for (size_t r = 0; r <= routes_.size(); ++r) {
    if (request_latency_[r].count() == 0) continue;
    const std::string route = r < routes_.size() ? LabelValue(routes_[r]) : "other";
    request_latency_[r].Render("otpd_http_request_duration_seconds", "route=\"" + route + "\"",
                               out);
  }
}

void Metrics::RenderOutcomes(std::string* out) const {
  Header(out, "otpd_sends_total", "counter",
         "POST /send-code outcomes (rate-limited sends are in otpd_rate_limited_total).");
  for (size_t i = 0; i < sends_.size(); ++i) {
    *out += std::string("otpd_sends_total{outcome=\"") + kSendNames[i] + "\"} " +
            std::to_string(Read(sends_[i])) + "\n";
  }
  Header(out, "otpd_verifies_total", "counter", "POST /verify-code outcomes.");
  for (size_t i = 0; i < verifies_.size(); ++i) {
    *out += std::string("otpd_verifies_total{outcome=\"") + kVerifyNames[i] + "\"} " +
            std::to_string(Read(verifies_[i])) + "\n";
  }
  Header(out, "otpd_sms_send_duration_seconds", "histogram",
         "Time the SMS provider took to accept or refuse a message.");
  sms_latency_ok_.Render("otpd_sms_send_duration_seconds", "result=\"ok\"", out);
  sms_latency_failed_.Render("otpd_sms_send_duration_seconds", "result=\"failed\"", out);
}

void Metrics::RenderRateLimited(std::string* out) const {
  Header(out, "otpd_rate_limited_total", "counter", "Requests refused by a rate limit, by limit.");
  const size_t n = limit_count_.load(std::memory_order_acquire);
  for (size_t i = 0; i <= kMaxRateLimits; ++i) {
    if (i >= n && i != kMaxRateLimits) continue;
    const uint64_t v = Read(limited_[i]);
    if (i == kMaxRateLimits && v == 0) continue;
    *out += "otpd_rate_limited_total{limit=\"" + LabelValue(limit_names_[i]) + "\"} " +
            std::to_string(v) + "\n";
  }
}

void Metrics::RecordConnectionRefused() { Add(&connections_refused_); }

std::string Metrics::Render(int64_t active_codes) const {
  std::string out;
  out.reserve(16384);
  RenderRequests(&out);
  RenderOutcomes(&out);
  RenderRateLimited(&out);
  Header(&out, "otpd_connections_refused_total", "counter",
         "Connections closed on accept: the client address held max_connections_per_ip.");
  out += "otpd_connections_refused_total{reason=\"per_ip\"} " +
         std::to_string(Read(connections_refused_)) + "\n";
  if (active_codes >= 0) {
    Header(&out, "otpd_active_codes", "gauge", "Codes stored and not yet expired.");
    out += "otpd_active_codes " + std::to_string(active_codes) + "\n";
  }
  Header(&out, "otpd_start_time_seconds", "gauge", "Unix time the process started.");
  out += "otpd_start_time_seconds " + std::to_string(start_unix_s_) + "\n";
  return out;
}

uint64_t Metrics::RequestCount(std::string_view path, int status) const {
  return Read(requests_[RouteIndex(path)][status >= 100 && status < kStatuses ? status : 0]);
}

uint64_t Metrics::SendCount(SendMetric outcome) const {
  return Read(sends_[static_cast<size_t>(outcome)]);
}

uint64_t Metrics::VerifyCount(VerifyMetric outcome) const {
  return Read(verifies_[static_cast<size_t>(outcome)]);
}

uint64_t Metrics::SmsLatencyCount(bool ok) const {
  return (ok ? sms_latency_ok_ : sms_latency_failed_).count();
}

uint64_t Metrics::RateLimitedCount(std::string_view limit) const {
  const size_t n = limit_count_.load(std::memory_order_acquire);
  for (size_t i = 0; i < n; ++i) {
    if (limit_names_[i] == limit) return Read(limited_[i]);
  }
  return limit == "other" ? Read(limited_[kMaxRateLimits]) : 0;
}

uint64_t Metrics::ConnectionsRefused() const { return Read(connections_refused_); }

const std::vector<std::string>& MetricRoutes() {
  static const auto* const routes = new std::vector<std::string>{
      "/send-code", "/verify-code", "/healthz",      "/readyz",        "/metrics",
      "/docs",      "/redoc",       "/openapi.json", "/twilio/status", "/send-status"};
  return *routes;
}

}  // namespace otpd
