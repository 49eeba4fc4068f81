#include "core/service_health.h"

#include <algorithm>
#include <utility>

#include "core/log.h"

namespace otpd {

ServiceHealth::ServiceHealth(const SystemdNotifier* notifier, std::function<Status()> check,
                             std::string serving_status)
    : notifier_(notifier), check_(std::move(check)), serving_status_(std::move(serving_status)) {}

ServiceHealth::~ServiceHealth() { task_.reset(); }

void ServiceHealth::Start() {
  if (!notifier_->enabled()) return;
  Tick();
  const int64_t watchdog_usec = notifier_->watchdog_usec();
  if (watchdog_usec == 0 && ready()) return;
  // Half the watchdog interval, as sd_watchdog_enabled(3) advises: one late
  // round does not miss the deadline.
  const int64_t interval_ms = watchdog_usec > 0 ? std::max<int64_t>(1, watchdog_usec / 2000) : 1000;
  task_.reset(new PeriodicTask(interval_ms, [this] { Tick(); }));
}

void ServiceHealth::Reloaded(const Status& reload) {
  const std::string what = reload.ok() ? "reloaded" : "reload failed: " + reload.message();
  const Status sent = notifier_->Notify(StatusLine(serving_status_ + "; " + what));
  if (!sent.ok()) Log(LogLevel::kWarn, "systemd notification failed", {{"error", sent.message()}});
}

void ServiceHealth::Stopping() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  const Status sent = notifier_->Notify("STOPPING=1\n" + StatusLine("stopping"));
  if (!sent.ok()) Log(LogLevel::kWarn, "systemd notification failed", {{"error", sent.message()}});
}

bool ServiceHealth::ready() {
  std::lock_guard<std::mutex> lock(mu_);
  return ready_;
}

Status ServiceHealth::Tick() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || (ready_ && notifier_->watchdog_usec() == 0)) return Status::OK();
  }
  const Status s = check_();
  std::lock_guard<std::mutex> lock(mu_);
  Status sent;
  if (s.ok()) {
    if (!ready_) {
      sent = notifier_->Notify("READY=1\n" + StatusLine(serving_status_));
      ready_ = sent.ok();
    } else if (!healthy_) {
      Log(LogLevel::kInfo, "healthy again; watchdog pings resumed");
      notifier_->Notify(StatusLine(serving_status_));
    }
    healthy_ = true;
    if (ready_ && notifier_->watchdog_usec() > 0) sent = notifier_->Notify("WATCHDOG=1");
  } else {
    if (healthy_) {
      Log(LogLevel::kError, "unhealthy; not telling systemd all is well", {{"error", s.message()}});
    }
    healthy_ = false;
    sent = notifier_->Notify(StatusLine((ready_ ? "unhealthy: " : "starting: ") + s.message()));
  }
  if (!sent.ok()) Log(LogLevel::kWarn, "systemd notification failed", {{"error", sent.message()}});
  return s;
}

}  // namespace otpd
