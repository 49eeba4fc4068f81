#include "otp/latency_mimic.h"

namespace otpd {

LatencyMimic::LatencyMimic(size_t capacity) : capacity_(capacity == 0 ? 1 : capacity) {}

void LatencyMimic::Record(int64_t micros) {
  if (micros < 0) micros = 0;
  std::lock_guard<std::mutex> lock(mu_);
  if (samples_.size() < capacity_) {
    samples_.push_back(micros);
    return;
  }
  samples_[next_] = micros;
  next_ = (next_ + 1) % capacity_;
}

int64_t LatencyMimic::Sample(RandomSource* random) const {
  uint8_t bytes[8];
  if (!random->Fill(bytes, sizeof(bytes)).ok()) return 0;
  uint64_t r = 0;
  for (uint8_t b : bytes) r = (r << 8) | b;
  std::lock_guard<std::mutex> lock(mu_);
  if (samples_.empty()) return 0;
  // The modulo bias over 2^64 is far below anything measurable.
  return samples_[r % samples_.size()];
}

size_t LatencyMimic::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return samples_.size();
}

}  // namespace otpd
