// Clock: where every part of otpd reads the time and waits.
//
// Production code uses SystemClock(); tests inject a FakeClock
// (tests/test_util.h) and move it by hand, so that expiry and rate rules are
// tested without sleeping. Implementations must be thread-safe.
#ifndef OTPD_CLOCK_H_
#define OTPD_CLOCK_H_

#include <condition_variable>
#include <cstdint>
#include <mutex>

namespace otpd {

class Clock {
 public:
  virtual ~Clock() = default;
  // Milliseconds since the Unix epoch (wall clock: stored in the database and
  // compared across processes, so it cannot be a monotonic clock).
  virtual int64_t NowMillis() = 0;
  // Microseconds on a clock that never goes back, for durations only (the
  // default: std::chrono::steady_clock).
  virtual int64_t MonotonicMicros();
  // Waits `us` microseconds (the default: the thread sleeps). A fake clock
  // moves its monotonic time instead, so no test waits.
  virtual void SleepMicros(int64_t us);
  // Waits on `cv`, `lock` held, until notified (or woken spuriously) or
  // until MonotonicMicros() reaches `deadline_us`; true when it returned
  // for the deadline (the default: cv->wait_until on steady_clock). A fake
  // clock moves its monotonic time to the deadline instead, and returns
  // true at once.
  virtual bool WaitUntilMicros(std::condition_variable* cv, std::unique_lock<std::mutex>* lock,
                               int64_t deadline_us);
};

// The process-wide wall clock. Never null; never destroyed.
Clock* SystemClock();

}  // namespace otpd

#endif  // OTPD_CLOCK_H_
