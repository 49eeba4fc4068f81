// ProviderMetrics: what the SMS failover sender (otp/sms.h) did, per
// provider, for GET /metrics (appended after DeliveryMetrics):
//
// otpd_sms_provider_attempts_total{provider,result}: sends tried at a
//   provider, by result: accepted, number_refused (the number's own
//   refusal: no failover), provider_fault (failed over when another
//   provider was left), circuit_open (skipped: its circuit was open).
// otpd_sms_failovers_total{provider}: sends that moved on past `provider`.
// otpd_sms_provider_circuit_open{provider}: 1 while its circuit is open or
//   half open, else 0.
//
// Providers outside kProviders count as "other". Thread-safe. Each
// FailoverSmsSender counts in its own instance; /metrics renders it, or an
// empty one (every series at 0) without a failover list.
#ifndef OTPD_CORE_PROVIDER_METRICS_H_
#define OTPD_CORE_PROVIDER_METRICS_H_

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <string_view>

namespace otpd {

class ProviderMetrics {
 public:
  enum class Result { kAccepted, kNumberRefused, kProviderFault, kCircuitOpen };
  static constexpr std::array<const char*, 3> kProviders = {"twilio", "vonage", "other"};
  static constexpr std::array<const char*, 4> kResults = {"accepted", "number_refused",
                                                          "provider_fault", "circuit_open"};

  void RecordAttempt(std::string_view provider, Result result);
  void RecordFailover(std::string_view provider);
  void SetCircuitOpen(std::string_view provider, bool open);

  std::string Render() const;

  // Tests: one counter.
  uint64_t Attempts(std::string_view provider, Result result) const;
  uint64_t Failovers(std::string_view provider) const;

 private:
  static size_t ProviderIndex(std::string_view provider);

  mutable std::mutex mu_;  // guards everything below
  std::array<std::array<uint64_t, kResults.size()>, kProviders.size()> attempts_{};
  std::array<uint64_t, kProviders.size()> failovers_{};
  std::array<bool, kProviders.size()> open_{};
};

}  // namespace otpd

#endif  // OTPD_CORE_PROVIDER_METRICS_H_
