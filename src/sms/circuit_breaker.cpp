#include "sms/circuit_breaker.h"

namespace otpd {

CircuitBreaker::CircuitBreaker(Clock* clock, int failures_to_open, int64_t cooloff_ms)
    : clock_(clock), failures_to_open_(failures_to_open), cooloff_us_(cooloff_ms * 1000) {}

bool CircuitBreaker::CooledOff() const {
  return clock_->MonotonicMicros() - opened_at_us_ >= cooloff_us_;
}

bool CircuitBreaker::Allow() {
  std::lock_guard<std::mutex> lock(mu_);
  switch (state_) {
    case State::kClosed:
      return true;
    case State::kOpen:
      if (!CooledOff()) return false;
      state_ = State::kHalfOpen;
      trial_running_ = true;
      return true;
    case State::kHalfOpen:
      if (trial_running_) return false;
      trial_running_ = true;
      return true;
  }
  return false;
}

bool CircuitBreaker::Blocked() {
  std::lock_guard<std::mutex> lock(mu_);
  if (state_ == State::kOpen) return !CooledOff();
  return state_ == State::kHalfOpen && trial_running_;
}

void CircuitBreaker::RecordSuccess() {
  std::lock_guard<std::mutex> lock(mu_);
  state_ = State::kClosed;
  faults_ = 0;
  trial_running_ = false;
}

bool CircuitBreaker::RecordFault() {
  std::lock_guard<std::mutex> lock(mu_);
  trial_running_ = false;
  if (state_ == State::kOpen) return false;  // a send that began before it opened
  if (state_ == State::kClosed && ++faults_ < failures_to_open_) return false;
  state_ = State::kOpen;
  faults_ = 0;
  opened_at_us_ = clock_->MonotonicMicros();
  return true;
}

CircuitBreaker::State CircuitBreaker::state() {
  std::lock_guard<std::mutex> lock(mu_);
  // Open with the cool-off over: the next send is the trial.
  if (state_ == State::kOpen && CooledOff()) return State::kHalfOpen;
  return state_;
}

const char* CircuitBreaker::StateName(State state) {
  switch (state) {
    case State::kClosed:
      return "closed";
    case State::kOpen:
      return "open";
    case State::kHalfOpen:
      return "half_open";
  }
  return "closed";
}

}  // namespace otpd
