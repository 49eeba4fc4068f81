// ChannelMetrics: POST /send-code outcomes by delivery channel, for GET
// /metrics (appended after the other families, so every existing series
// keeps its name and lines).
//
// otpd_channel_sends_total{channel,outcome}: one per send by channel
// ("sms", "voice", "whatsapp") and outcome (otpd_sends_total's names).
// Every series is listed from the start. Recording is a relaxed atomic
// add; thread-safe. The service keeps one (OtpService::channel_metrics).
#ifndef OTPD_CHANNEL_METRICS_H_
#define OTPD_CHANNEL_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/metrics.h"

namespace otpd {

class ChannelMetrics {
 public:
  static constexpr std::array<const char*, 3> kChannels = {"sms", "voice", "whatsapp"};

  // A channel name not in kChannels is not counted.
  void RecordSend(std::string_view channel, SendMetric outcome);
  uint64_t sends(std::string_view channel, SendMetric outcome) const;
  std::string Render() const;

 private:
  static constexpr size_t kOutcomes = static_cast<size_t>(SendMetric::kCount);
  std::array<std::array<std::atomic<uint64_t>, kOutcomes>, kChannels.size()> sends_{};
};

}  // namespace otpd

#endif  // OTPD_CHANNEL_METRICS_H_
