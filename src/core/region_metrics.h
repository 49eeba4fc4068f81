// RegionMetrics: per-region SMS-pumping figures for GET /metrics (appended
// after the other families), as this process last read them from the
// shared store (otp/pumping.h): sends and verified codes in the detection
// window, their ratio, and whether the region is paused; and the pauses
// this process started. Label cardinality is bounded: only regions seen,
// at most kMaxRegions of them (the first seen are kept). Thread-safe; the
// PumpingGuard owns one.
#ifndef OTPD_REGION_METRICS_H_
#define OTPD_REGION_METRICS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>

namespace otpd {

class RegionMetrics {
 public:
  static constexpr size_t kMaxRegions = 64;

  // The latest figures of `region` ("JM"). A new region beyond
  // kMaxRegions is not shown.
  void Set(const std::string& region, int64_t window_sent, int64_t window_verified, bool paused);
  // A pause started by this process, of a prefix or a whole region.
  void CountPause(bool prefix);

  std::string Render();

 private:
  struct Figures {
    int64_t sent = 0;
    int64_t verified = 0;
    bool paused = false;
  };
  std::mutex mu_;  // guards everything below
  std::map<std::string, Figures> regions_;
  uint64_t region_pauses_ = 0;
  uint64_t prefix_pauses_ = 0;
};

}  // namespace otpd

#endif  // OTPD_REGION_METRICS_H_
