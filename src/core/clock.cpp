#include "core/clock.h"

#include <chrono>

namespace otpd {
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
