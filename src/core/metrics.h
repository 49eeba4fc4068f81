// Metrics: the counters and histograms otpd exposes on GET /metrics, in the
// Prometheus text format (version 0.0.4).
//
// Every family is fixed at compile time except otpd_rate_limited_total,
// whose `limit` label values are registered on first use (up to
// kMaxRateLimits names). Recording is lock-free: relaxed atomic adds on
// preallocated slots, safe from any thread. Render() reads the atomics
// one by one, so a scrape taken under load may mix counts from a few
// microseconds apart; each counter on its own never goes backwards.
//
// Nothing here is process-wide: the daemon builds one instance and passes
// it to the service (OtpService) and through it to the HTTP layer; tests
// pass their own and read exact counts back with the *Count accessors.
#ifndef OTPD_METRICS_H_
#define OTPD_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

namespace otpd {

// Outcomes of POST /send-code (rate-limited sends count in
// otpd_rate_limited_total instead, by limit).
enum class SendMetric {
  kSent,
  kUserNotFound,
  kPhoneNotFound,
  kSmsFailed,
  kRateLimited,
  kError,
  kCount
};

// Outcomes of POST /verify-code.
enum class VerifyMetric { kOk, kInvalid, kExpired, kNotFound, kLocked, kThrottled, kError, kCount };

// A cumulative histogram of durations with fixed bucket bounds (seconds).
class LatencyHistogram {
 public:
  static constexpr std::array<double, 14> kBounds = {
      0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

  void Observe(int64_t micros);
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }
  // Appends the _bucket, _sum and _count lines of `name` with `labels`
  // (e.g. "route=\"/send-code\"", or empty).
  void Render(const std::string& name, const std::string& labels, std::string* out) const;

 private:
  std::array<std::atomic<uint64_t>, kBounds.size()> buckets_{};  // non-cumulative
  std::atomic<uint64_t> count_{0};
  std::atomic<uint64_t> sum_micros_{0};
};

class Metrics {
 public:
  static constexpr size_t kMaxRateLimits = 16;

  // The routes requests are counted under; anything else counts as "other".
  // REQUIRES: called before any Record* call; not thread-safe.
  explicit Metrics(std::vector<std::string> routes);
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // One finished HTTP request: `path` is mapped to a known route or
  // "other" (the label never carries a raw path); `status` outside
  // 100..599 counts as 0. A negative latency (unknown) is not observed.
  void RecordRequest(std::string_view path, int status, int64_t latency_micros);
  void RecordSend(SendMetric outcome);
  void RecordVerify(VerifyMetric outcome);
  void RecordSmsLatency(int64_t micros, bool ok);

  // One request refused by the rate limit named `limit` ("ip",
  // "user_cooldown", ...). The first kMaxRateLimits distinct names get
  // their own series; later names count under limit="other".
  void RecordRateLimited(std::string_view limit);

  // One connection closed as soon as it was accepted because its client
  // address already held max_connections_per_ip (http/connection_limit.h).
  void RecordConnectionRefused();

  // The whole exposition. `active_codes` < 0 leaves the gauge out (the
  // store could not count).
  // Request series appear once a route has been requested; the outcome
  // families always list every outcome.
  std::string Render(int64_t active_codes) const;

  // Tests: what the Record* calls above have counted so far.
  uint64_t RequestCount(std::string_view path, int status) const;
  uint64_t SendCount(SendMetric outcome) const;
  uint64_t VerifyCount(VerifyMetric outcome) const;
  uint64_t SmsLatencyCount(bool ok) const;                  // observations in the histogram
  uint64_t RateLimitedCount(std::string_view limit) const;  // 0 for a name never seen
  uint64_t ConnectionsRefused() const;

 private:
  static constexpr int kStatuses = 600;
  size_t RouteIndex(std::string_view path) const;
  void RenderRequests(std::string* out) const;
  void RenderOutcomes(std::string* out) const;
  void RenderRateLimited(std::string* out) const;

  const std::vector<std::string> routes_;  // plus "other" at routes_.size()
  std::vector<std::array<std::atomic<uint64_t>, kStatuses>> requests_;
  std::vector<LatencyHistogram> request_latency_;
  std::array<std::atomic<uint64_t>, static_cast<size_t>(SendMetric::kCount)> sends_{};
  std::array<std::atomic<uint64_t>, static_cast<size_t>(VerifyMetric::kCount)> verifies_{};
  LatencyHistogram sms_latency_ok_;
  LatencyHistogram sms_latency_failed_;

  std::mutex limit_names_mu_;                                // held only to add a name
  std::array<std::string, kMaxRateLimits + 1> limit_names_;  // written before published
  std::atomic<size_t> limit_count_{0};
  std::array<std::atomic<uint64_t>, kMaxRateLimits + 1> limited_{};  // last: "other"
  std::atomic<uint64_t> connections_refused_{0};
  const int64_t start_unix_s_;
};

// The paths the daemon's Metrics counts by name (every route HttpApi
// serves; a test keeps the two lists in step).
const std::vector<std::string>& MetricRoutes();

}  // namespace otpd

#endif  // OTPD_METRICS_H_
