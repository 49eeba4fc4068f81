// What a concealed send imitates: how long real SMS sends took.
//
// With conceal_unknown_users, an unknown user's send texts nobody, yet must
// take as long as a real one, or the answer time tells the two apart. A
// moving average is not enough: its spread is far narrower than the real
// sends', which a client that times many answers sees. So the concealed
// send waits for a duration drawn from the recent real ones, and the
// answer times of the two follow one distribution. Until `capacity` real
// sends are recorded, the slots not yet filled draw from a prior (uniform
// over a configured range), so the first concealed answers, before any
// real send, wait like a provider round trip instead of not at all, and
// the real times take over one slot per send.
// Thread-safe.
#ifndef OTPD_LATENCY_MIMIC_H_
#define OTPD_LATENCY_MIMIC_H_

#include <cstdint>
#include <mutex>
#include <vector>

#include "core/random.h"

namespace otpd {

// The last `capacity` real SMS send times, and draws from them.
class LatencyMimic {
 public:
  explicit LatencyMimic(size_t capacity = 128);

  // One real send took `micros` (negative counts as 0).
  void Record(int64_t micros);

  // A duration drawn uniformly from the recorded ones, with `random`.
  // 0 when nothing is recorded yet (or the randomness failed).
  int64_t Sample(RandomSource* random) const;

  // A duration drawn uniformly from `capacity` slots: the recorded ones,
  // and for each slot not yet recorded a draw uniform over [prior_low_us,
  // prior_high_us]. prior_high_us <= 0: Sample(random). 0 when the
  // randomness failed.
  int64_t Sample(RandomSource* random, int64_t prior_low_us, int64_t prior_high_us) const;

  size_t size() const;

 private:
  const size_t capacity_;
  mutable std::mutex mu_;
  std::vector<int64_t> samples_;  // ring buffer once full
  size_t next_ = 0;               // where the next sample goes once full
};

}  // namespace otpd

#endif  // OTPD_LATENCY_MIMIC_H_
