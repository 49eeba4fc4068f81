// DeliveryMetrics: what became of sent messages, and how many sent codes
// were verified, for GET /metrics (appended after Metrics::Render).
//
// otpd_sms_delivery_total{status,provider}: status changes from receipts
// (each change counted once; a replayed receipt is not a change).
// otpd_sms_delivery_seconds: time from the send to "delivered".
// otpd_sms_sent_total{provider}: messages a provider took.
// otpd_conversion_*_last_hour: codes sent and verified in the last hour
// (60 one-minute buckets by the injected clock) and their ratio, the
// figure SMS pumping shows up in first. Thread-safe. Not process-wide:
// the daemon builds one and passes it in (OtpService, DeliveryTracker);
// tests build their own.
#ifndef OTPD_DELIVERY_METRICS_H_
#define OTPD_DELIVERY_METRICS_H_

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

#include "core/clock.h"

namespace otpd {

class DeliveryMetrics {
 public:
  static constexpr std::array<const char*, 11> kStatuses = {
      "accepted", "queued", "sending",  "sent",    "delivered", "undelivered",
      "failed",   "read",   "canceled", "unknown", "other"};
  static constexpr std::array<const char*, 4> kProviders = {"twilio", "vonage", "console", "other"};
  static constexpr std::array<double, 12> kBounds = {1,  2,   5,   10,  20,   30,
                                                     60, 120, 300, 600, 1800, 3600};

  explicit DeliveryMetrics(Clock* clock) : clock_(clock) {}

  // A message's status changed to `status` (unknown texts count as "other").
  void RecordStatus(std::string_view provider, std::string_view status);
  void RecordDelivered(int64_t after_ms);
  void RecordProviderSent(std::string_view provider);
  void RecordCodeSent();
  void RecordCodeVerified();

  std::string Render();

  // Tests: the counter for one status, all providers.
  uint64_t StatusCount(std::string_view status);

 private:
  static size_t StatusIndex(std::string_view status);
  static size_t ProviderIndex(std::string_view provider);
  void Roll(int64_t minute);  // REQUIRES: mu_ held

  Clock* const clock_;
  std::mutex mu_;  // guards everything below
  std::array<std::array<uint64_t, kStatuses.size()>, kProviders.size()> statuses_{};
  std::array<uint64_t, kProviders.size()> provider_sent_{};
  std::array<uint64_t, kBounds.size() + 1> delivered_buckets_{};  // last: +Inf
  uint64_t delivered_count_ = 0;
  int64_t delivered_sum_ms_ = 0;
  std::array<uint64_t, 60> sent_by_minute_{};
  std::array<uint64_t, 60> verified_by_minute_{};
  int64_t minute_ = 0;  // the minute the buckets end at
};

}  // namespace otpd

#endif  // OTPD_DELIVERY_METRICS_H_
