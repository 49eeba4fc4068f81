#include "core/region_metrics.h"

#include <cstdio>

namespace otpd {
namespace {

void Header(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

std::string Ratio(int64_t part, int64_t whole) {
  char buf[32];
  snprintf(buf, sizeof buf, "%g",
           part >= whole ? 1.0 : static_cast<double>(part) / static_cast<double>(whole));
  return buf;
}

}  // namespace

void RegionMetrics::Set(const std::string& region, int64_t window_sent, int64_t window_verified,
                        bool paused) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = regions_.find(region);
  if (it == regions_.end()) {
    if (regions_.size() >= kMaxRegions) return;
    it = regions_.emplace(region, Figures()).first;
  }
  it->second = Figures{window_sent, window_verified, paused};
}

void RegionMetrics::CountPause(bool prefix) {
  std::lock_guard<std::mutex> lock(mu_);
  (prefix ? prefix_pauses_ : region_pauses_)++;
}

std::string RegionMetrics::Render() {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  Header(&out, "otpd_pumping_pauses_total", "counter",
         "Pauses this process started on a send spike with low conversion, by scope.");
  out += "otpd_pumping_pauses_total{scope=\"region\"} " + std::to_string(region_pauses_) + "\n";
  out += "otpd_pumping_pauses_total{scope=\"prefix\"} " + std::to_string(prefix_pauses_) + "\n";
  Header(&out, "otpd_region_sent_window", "gauge",
         "Codes sent to the region in the pumping window, all processes, as last read.");
  for (const auto& [region, f] : regions_) {
    out += "otpd_region_sent_window{region=\"" + region + "\"} " + std::to_string(f.sent) + "\n";
  }
  Header(&out, "otpd_region_verified_window", "gauge",
         "Codes of the region verified in the pumping window, all processes, as last read.");
  for (const auto& [region, f] : regions_) {
    out += "otpd_region_verified_window{region=\"" + region + "\"} " + std::to_string(f.verified) +
           "\n";
  }
  Header(&out, "otpd_region_conversion_ratio", "gauge",
         "Verified / sent in the pumping window (absent without sends); a collapse while "
         "sends rise is SMS pumping.");
  for (const auto& [region, f] : regions_) {
    if (f.sent <= 0) continue;
    out += "otpd_region_conversion_ratio{region=\"" + region + "\"} " + Ratio(f.verified, f.sent) +
           "\n";
  }
  Header(&out, "otpd_region_paused", "gauge", "1 while sends to the region are paused.");
  for (const auto& [region, f] : regions_) {
    out += "otpd_region_paused{region=\"" + region + "\"} " + (f.paused ? "1" : "0") + "\n";
  }
  return out;
}

}  // namespace otpd
