#include "core/provider_metrics.h"

namespace otpd {

size_t ProviderMetrics::ProviderIndex(std::string_view provider) {
  for (size_t i = 0; i + 1 < kProviders.size(); ++i) {
    if (provider == kProviders[i]) return i;
  }
  return kProviders.size() - 1;
}

void ProviderMetrics::RecordAttempt(std::string_view provider, Result result) {
  std::lock_guard<std::mutex> lock(mu_);
  attempts_[ProviderIndex(provider)][static_cast<size_t>(result)]++;
}

void ProviderMetrics::RecordFailover(std::string_view provider) {
  std::lock_guard<std::mutex> lock(mu_);
  failovers_[ProviderIndex(provider)]++;
}

void ProviderMetrics::SetCircuitOpen(std::string_view provider, bool open) {
  std::lock_guard<std::mutex> lock(mu_);
  open_[ProviderIndex(provider)] = open;
}

uint64_t ProviderMetrics::Attempts(std::string_view provider, Result result) const {
  std::lock_guard<std::mutex> lock(mu_);
  return attempts_[ProviderIndex(provider)][static_cast<size_t>(result)];
}

uint64_t ProviderMetrics::Failovers(std::string_view provider) const {
  std::lock_guard<std::mutex> lock(mu_);
  return failovers_[ProviderIndex(provider)];
}

namespace {

void Header(std::string* out, const char* name, const char* type, const char* help) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

std::string ProviderMetrics::Render() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::string out;
  Header(&out, "otpd_sms_provider_attempts_total", "counter",
         "Sends tried at each SMS provider, by result.");
  for (size_t p = 0; p < kProviders.size(); ++p) {
    for (size_t r = 0; r < kResults.size(); ++r) {
      out += std::string("otpd_sms_provider_attempts_total{provider=\"") + kProviders[p] +
             "\",result=\"" + kResults[r] + "\"} " + std::to_string(attempts_[p][r]) + "\n";
    }
  }
  Header(&out, "otpd_sms_failovers_total", "counter",
         "Sends that moved on to the next SMS provider, by the provider that failed.");
  for (size_t p = 0; p < kProviders.size(); ++p) {
    out += std::string("otpd_sms_failovers_total{provider=\"") + kProviders[p] + "\"} " +
           std::to_string(failovers_[p]) + "\n";
  }
  Header(&out, "otpd_sms_provider_circuit_open", "gauge",
         "1 while the provider's circuit breaker is open or half open.");
  for (size_t p = 0; p < kProviders.size(); ++p) {
    out += std::string("otpd_sms_provider_circuit_open{provider=\"") + kProviders[p] + "\"} " +
           (open_[p] ? "1" : "0") + "\n";
  }
  return out;
}

}  // namespace otpd
