#include "core/delivery_metrics.h"

#include <cstdio>

namespace otpd {

size_t DeliveryMetrics::StatusIndex(std::string_view status) {
  for (size_t i = 0; i + 1 < kStatuses.size(); ++i) {
    if (status == kStatuses[i]) return i;
  }
  return kStatuses.size() - 1;
}

size_t DeliveryMetrics::ProviderIndex(std::string_view provider) {
  for (size_t i = 0; i + 1 < kProviders.size(); ++i) {
    if (provider == kProviders[i]) return i;
  }
  return kProviders.size() - 1;
}

void DeliveryMetrics::RecordStatus(std::string_view provider, std::string_view status) {
  std::lock_guard<std::mutex> lock(mu_);
  statuses_[ProviderIndex(provider)][StatusIndex(status)]++;
}

void DeliveryMetrics::RecordDelivered(int64_t after_ms) {
  if (after_ms < 0) after_ms = 0;
  std::lock_guard<std::mutex> lock(mu_);
  size_t i = 0;
  while (i < kBounds.size() && static_cast<double>(after_ms) / 1000.0 > kBounds[i]) ++i;
  delivered_buckets_[i]++;
  delivered_count_++;
  delivered_sum_ms_ += after_ms;
}

void DeliveryMetrics::RecordProviderSent(std::string_view provider) {
  std::lock_guard<std::mutex> lock(mu_);
  provider_sent_[ProviderIndex(provider)]++;
}

// Empties the buckets of the minutes passed since the last call.
void DeliveryMetrics::Roll(int64_t minute) {
  if (minute <= minute_) return;
  const int64_t passed = minute - minute_;
  for (int64_t m = 1; m <= passed && m <= 60; ++m) {
    const size_t slot = static_cast<size_t>((minute_ + m) % 60);
    sent_by_minute_[slot] = 0;
    verified_by_minute_[slot] = 0;
  }
  minute_ = minute;
}

void DeliveryMetrics::RecordCodeSent() {
  const int64_t minute = clock_->NowMillis() / 60000;
  std::lock_guard<std::mutex> lock(mu_);
  Roll(minute);
  sent_by_minute_[static_cast<size_t>(minute_ % 60)]++;
}

void DeliveryMetrics::RecordCodeVerified() {
  const int64_t minute = clock_->NowMillis() / 60000;
  std::lock_guard<std::mutex> lock(mu_);
  Roll(minute);
  verified_by_minute_[static_cast<size_t>(minute_ % 60)]++;
}

uint64_t DeliveryMetrics::StatusCount(std::string_view status) {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const auto& row : statuses_) n += row[StatusIndex(status)];
  return n;
}

namespace {

void Header(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string Number(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%g", v);
  return buf;
}

}  // namespace

std::string DeliveryMetrics::Render() {
  const int64_t minute = clock_->NowMillis() / 60000;
  std::lock_guard<std::mutex> lock(mu_);
  Roll(minute);
  std::string out;
  Header(&out, "otpd_sms_sent_total", "counter", "Messages an SMS provider took, by provider.");
  for (size_t p = 0; p < kProviders.size(); ++p) {
    if (provider_sent_[p] == 0) continue;
    out += std::string("otpd_sms_sent_total{provider=\"") + kProviders[p] + "\"} " +
           std::to_string(provider_sent_[p]) + "\n";
  }
  Header(&out, "otpd_sms_delivery_total", "counter",
         "Delivery status changes from provider receipts (unknown: no final receipt in time).");
  for (size_t s = 0; s < kStatuses.size(); ++s) {
    uint64_t total = 0;
    for (size_t p = 0; p < kProviders.size(); ++p) total += statuses_[p][s];
    out += std::string("otpd_sms_delivery_total{status=\"") + kStatuses[s] + "\"} " +
           std::to_string(total) + "\n";
  }
  Header(&out, "otpd_sms_delivery_seconds", "histogram", "Time from the send to delivered.");
  uint64_t cumulative = 0;
  for (size_t i = 0; i < kBounds.size(); ++i) {
    cumulative += delivered_buckets_[i];
    out += "otpd_sms_delivery_seconds_bucket{le=\"" + Number(kBounds[i]) + "\"} " +
           std::to_string(cumulative) + "\n";
  }
  out += "otpd_sms_delivery_seconds_bucket{le=\"+Inf\"} " + std::to_string(delivered_count_) + "\n";
  out += "otpd_sms_delivery_seconds_sum " + Number(static_cast<double>(delivered_sum_ms_) / 1000) +
         "\n";
  out += "otpd_sms_delivery_seconds_count " + std::to_string(delivered_count_) + "\n";
  uint64_t sent = 0, verified = 0;
  for (size_t i = 0; i < 60; ++i) {
    sent += sent_by_minute_[i];
    verified += verified_by_minute_[i];
  }
  Header(&out, "otpd_conversion_sent_last_hour", "gauge", "Codes texted in the last hour.");
  out += "otpd_conversion_sent_last_hour " + std::to_string(sent) + "\n";
  Header(&out, "otpd_conversion_verified_last_hour", "gauge", "Codes verified in the last hour.");
  out += "otpd_conversion_verified_last_hour " + std::to_string(verified) + "\n";
  Header(&out, "otpd_conversion_ratio_last_hour", "gauge",
         "Verified / sent over the last hour (absent with no sends); a drop is the first sign "
         "of SMS pumping.");
  if (sent > 0) {
    out += "otpd_conversion_ratio_last_hour " +
           Number(static_cast<double>(verified) / static_cast<double>(sent)) + "\n";
  }
  return out;
}

}  // namespace otpd
