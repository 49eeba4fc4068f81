// ServiceHealth: what systemd hears about the daemon's health. Type=notify
// wants READY=1 once otpd serves; WatchdogSec= wants WATCHDOG=1 while it is
// healthy. `check` says whether it is (the listener accepts, the store takes
// writes):
//   - READY=1 (with a STATUS= line) is sent by the first passing check, in
//     Start itself when otpd is healthy at once, else by a later round;
//   - after that, with a watchdog, each round sends WATCHDOG=1 when the
//     check passes, and when it fails a STATUS= line naming the failure and
//     no ping, so systemd restarts otpd once it stays unhealthy for a whole
//     watchdog interval.
// Rounds run on a thread of their own every half watchdog interval (every
// second while not ready). Changes of health are logged once, not every
// round. Without $NOTIFY_SOCKET nothing runs and nothing is sent.
//
// Thread-safe: Tick may run on the thread and a test's at once.
#ifndef OTPD_CORE_SERVICE_HEALTH_H_
#define OTPD_CORE_SERVICE_HEALTH_H_

#include <functional>
#include <memory>
#include <mutex>
#include <string>

#include "core/periodic.h"
#include "core/status.h"
#include "core/systemd_notify.h"

namespace otpd {

class ServiceHealth {
 public:
  // `serving_status` is the STATUS= text sent with READY=1 and when health
  // comes back. REQUIRES: `notifier` outlives this object.
  ServiceHealth(const SystemdNotifier* notifier, std::function<Status()> check,
                std::string serving_status);
  // Stops the thread (waiting for a running round). Sends nothing.
  ~ServiceHealth();
  ServiceHealth(const ServiceHealth&) = delete;
  ServiceHealth& operator=(const ServiceHealth&) = delete;

  // Runs the first round on the calling thread, then starts the thread
  // when another round may be needed. Call once.
  void Start();

  // One round. Returns the check's status (OK without checking once ready
  // when there is no watchdog: nothing would be sent).
  Status Tick();

  // After a SIGHUP: a STATUS= line, the serving status and "reloaded", or
  // "reload failed: <why>" when `reload` is not OK.
  void Reloaded(const Status& reload);

  // Sends STOPPING=1; later rounds send nothing (the listener closes
  // while otpd drains, which is no reason for a restart).
  void Stopping();

  bool ready();

 private:
  const SystemdNotifier* notifier_;
  const std::function<Status()> check_;
  const std::string serving_status_;
  std::mutex mu_;
  bool ready_ = false;
  bool healthy_ = true;  // as last reported
  bool stopping_ = false;
  std::unique_ptr<PeriodicTask> task_;
};

}  // namespace otpd

#endif  // OTPD_CORE_SERVICE_HEALTH_H_
