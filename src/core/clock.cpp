#include "core/clock.h"

#include <chrono>
#include <thread>

namespace otpd {

int64_t Clock::MonotonicMicros() {
  using namespace std::chrono;
  return duration_cast<microseconds>(steady_clock::now().time_since_epoch()).count();
}

void Clock::SleepMicros(int64_t us) {
  if (us > 0) std::this_thread::sleep_for(std::chrono::microseconds(us));
}

bool Clock::WaitUntilMicros(std::condition_variable* cv, std::unique_lock<std::mutex>* lock,
                            int64_t deadline_us) {
  using namespace std::chrono;
  const steady_clock::time_point deadline{microseconds(deadline_us)};
  return cv->wait_until(*lock, deadline) == std::cv_status::timeout;
}

namespace {

class SystemClockImpl : public Clock {
 public:
  int64_t NowMillis() override {
    using namespace std::chrono;
    return duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count();
  }
};

}  // namespace

Clock* SystemClock() {
  static SystemClockImpl* clock = new SystemClockImpl();  // never destroyed
  return clock;
}

}  // namespace otpd
