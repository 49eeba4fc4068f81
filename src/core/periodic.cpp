#include "core/periodic.h"

namespace otpd {

PeriodicTask::PeriodicTask(int64_t interval_ms, std::function<void()> fn)
    : interval_ms_(interval_ms), fn_(std::move(fn)), thread_([this] { Loop(); }) {}

PeriodicTask::~PeriodicTask() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void PeriodicTask::Loop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [this] { return stop_; })) {
    lock.unlock();
    fn_();
    lock.lock();
  }
}

}  // namespace otpd
