// PeriodicTask: runs a function on its own thread every `interval_ms` until
// destroyed. The destructor wakes the thread and joins it, so it returns
// within one run of the function. Used for the expired-code sweep.
#ifndef OTPD_PERIODIC_H_
#define OTPD_PERIODIC_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>

namespace otpd {

class PeriodicTask {
 public:
  PeriodicTask(int64_t interval_ms, std::function<void()> fn);
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

 private:
  void Loop();

  const int64_t interval_ms_;
  const std::function<void()> fn_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace otpd

#endif  // OTPD_PERIODIC_H_
