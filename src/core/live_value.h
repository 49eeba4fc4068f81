// LiveValue<T>: a value read on every request and replaced, rarely, by a
// reload (SIGHUP), without a lock on the read path.
//
// Get() is one atomic load and returns a reference that stays valid for the
// life of the LiveValue: every value ever Set is kept until destruction, so
// a request that read the old settings finishes with them while new
// requests see the new ones. Reloads are rare and settings are small, so
// the memory kept is a few hundred bytes per reload.
//
// Thread-safe: Get from any thread; Set from any thread (Sets serialize).
#ifndef OTPD_LIVE_VALUE_H_
#define OTPD_LIVE_VALUE_H_

#include <atomic>
#include <memory>
#include <mutex>
#include <vector>

namespace otpd {

template <typename T>
class LiveValue {
 public:
  explicit LiveValue(const T& initial) { Set(initial); }
  LiveValue(const LiveValue&) = delete;
  LiveValue& operator=(const LiveValue&) = delete;

  const T& Get() const { return *current_.load(std::memory_order_acquire); }

  void Set(const T& value) {
    std::lock_guard<std::mutex> lock(mu_);
    versions_.push_back(std::make_unique<const T>(value));
    current_.store(versions_.back().get(), std::memory_order_release);
  }

 private:
  std::mutex mu_;  // guards versions_; never taken by Get
  std::vector<std::unique_ptr<const T>> versions_;
  std::atomic<const T*> current_{nullptr};
};

}  // namespace otpd

#endif  // OTPD_LIVE_VALUE_H_
