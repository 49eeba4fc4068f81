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

namespace {

// 64 random bits; false when the randomness failed.
bool Draw(RandomSource* random, uint64_t* r) {
  uint8_t bytes[8];
  if (!random->Fill(bytes, sizeof(bytes)).ok()) return false;
  *r = 0;
  for (uint8_t b : bytes) *r = (*r << 8) | b;
  return true;
}

}  // namespace

int64_t LatencyMimic::Sample(RandomSource* random) const { return Sample(random, 0, 0); }

int64_t LatencyMimic::Sample(RandomSource* random, int64_t prior_low_us,
                             int64_t prior_high_us) const {
  uint64_t r = 0;
  if (!Draw(random, &r)) return 0;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // The modulo bias over 2^64 is far below anything measurable.
    if (prior_high_us <= 0) return samples_.empty() ? 0 : samples_[r % samples_.size()];
    const size_t slot = r % capacity_;
    if (slot < samples_.size()) return samples_[slot];
  }
  if (prior_low_us < 0) prior_low_us = 0;
  if (prior_low_us >= prior_high_us) return prior_high_us;
  if (!Draw(random, &r)) return 0;
  const uint64_t span = static_cast<uint64_t>(prior_high_us - prior_low_us) + 1;
  return prior_low_us + static_cast<int64_t>(r % span);
}

size_t LatencyMimic::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return samples_.size();
}

}  // namespace otpd
