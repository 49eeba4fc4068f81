#include "core/channel_metrics.h"

namespace otpd {
namespace {

// The outcome names of otpd_sends_total, in SendMetric order.
constexpr const char* kOutcomeNames[] = {"sent",       "user_not_found", "phone_not_found",
                                         "sms_failed", "rate_limited",   "error"};
static_assert(sizeof kOutcomeNames / sizeof *kOutcomeNames ==
              static_cast<size_t>(SendMetric::kCount));

int ChannelIndex(std::string_view channel) {
  for (size_t i = 0; i < ChannelMetrics::kChannels.size(); ++i) {
    if (channel == ChannelMetrics::kChannels[i]) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

void ChannelMetrics::RecordSend(std::string_view channel, SendMetric outcome) {
  const int c = ChannelIndex(channel);
  const auto o = static_cast<size_t>(outcome);
  if (c < 0 || o >= kOutcomes) return;
  sends_[static_cast<size_t>(c)][o].fetch_add(1, std::memory_order_relaxed);
}

uint64_t ChannelMetrics::sends(std::string_view channel, SendMetric outcome) const {
  const int c = ChannelIndex(channel);
  const auto o = static_cast<size_t>(outcome);
  if (c < 0 || o >= kOutcomes) return 0;
  return sends_[static_cast<size_t>(c)][o].load(std::memory_order_relaxed);
}

std::string ChannelMetrics::Render() const {
  std::string out =
      "# HELP otpd_channel_sends_total POST /send-code outcomes by delivery channel.\n"
      "# TYPE otpd_channel_sends_total counter\n";
  for (size_t c = 0; c < kChannels.size(); ++c) {
    for (size_t o = 0; o < kOutcomes; ++o) {
      out += std::string("otpd_channel_sends_total{channel=\"") + kChannels[c] + "\",outcome=\"" +
             kOutcomeNames[o] + "\"} " +
             std::to_string(sends_[c][o].load(std::memory_order_relaxed)) + "\n";
    }
  }
  return out;
}

}  // namespace otpd
