// HttpApi's SMS side of GET /readyz: the providers' circuit breakers
// (otp/sms.h, FailoverSmsSender).
#include <nlohmann/json.hpp>

#include "core/log.h"
#include "http/http_api.h"

namespace otpd {

HttpAnswer HttpApi::SmsReady() const {
  using Json = nlohmann::ordered_json;
  Json body = {{"status", "ready"}};
  if (sms_health_ != nullptr) {
    Json degraded = Json::array();
    bool any_usable = false;
    for (const SmsProviderState& p : sms_health_->ProviderStates()) {
      if (p.state != "closed") degraded.push_back(p.name);
      if (p.state != "open") any_usable = true;
    }
    if (!degraded.empty()) body["degraded_providers"] = degraded;
    if (!any_usable) {
      Log(LogLevel::kWarn, "not ready", {{"error", "every SMS provider's circuit is open"}});
      HttpAnswer a;
      a.status = 503;
      a.body = Json{{"status", "unavailable"},
                    {"detail", "every SMS provider's circuit is open"},
                    {"degraded_providers", degraded}}
                   .dump();
      a.headers.emplace_back("Retry-After", "1");
      return a;
    }
  }
  HttpAnswer a;
  a.status = 200;
  a.body = body.dump();
  return a;
}

}  // namespace otpd
