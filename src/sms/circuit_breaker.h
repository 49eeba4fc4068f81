// CircuitBreaker: one provider's circuit (the rules are in otp/sms.h,
// FailoverSmsSender). Times come from the injected Clock's monotonic
// microseconds, so tests move a FakeClock instead of waiting. Thread-safe.
#ifndef OTPD_SMS_CIRCUIT_BREAKER_H_
#define OTPD_SMS_CIRCUIT_BREAKER_H_

#include <cstdint>
#include <mutex>

#include "core/clock.h"

namespace otpd {

class CircuitBreaker {
 public:
  enum class State { kClosed, kOpen, kHalfOpen };

  // REQUIRES: clock outlives the breaker; failures_to_open >= 1.
  CircuitBreaker(Clock* clock, int failures_to_open, int64_t cooloff_ms);

  // Whether a send may go to the provider now. Closed: yes. Open: no until
  // the cool-off has passed, then yes for exactly one caller (the trial:
  // the circuit is half open) and no for every other until the trial's
  // result is recorded. A caller told yes must record a result.
  bool Allow();
  // Whether Allow would say no now, without taking the trial.
  bool Blocked();

  void RecordSuccess();  // closes the circuit; the fault count restarts
  // One more provider fault. Opens the circuit at `failures_to_open` in a
  // row, or at once after a trial. True when this fault opened it.
  bool RecordFault();

  // Half open as soon as the cool-off has passed (the next Allow is the
  // trial), whether or not the trial has started.
  State state();
  static const char* StateName(State state);  // "closed", "open", "half_open"

 private:
  bool CooledOff() const;  // REQUIRES: mu_ held

  Clock* const clock_;
  const int failures_to_open_;
  const int64_t cooloff_us_;
  std::mutex mu_;  // guards the members below
  State state_ = State::kClosed;
  int faults_ = 0;  // in a row, while closed
  int64_t opened_at_us_ = 0;
  bool trial_running_ = false;
};

}  // namespace otpd

#endif  // OTPD_SMS_CIRCUIT_BREAKER_H_
