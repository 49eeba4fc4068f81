// RateLimiter: a token bucket per key (a client IP), in memory.
//
// Each key starts with `burst` tokens; a request takes one, and tokens come
// back at `per_minute` per minute up to `burst`. Memory is bounded: at most
// `max_keys` buckets are kept, the least recently used one is dropped to
// make room (a dropped key starts over with a full bucket, which is what a
// key unseen for that long would have anyway under any realistic rate).
// Time comes only from the Clock. Thread-safe: the table is split into
// shards, each behind its own mutex, held only for the update.
#ifndef OTPD_RATE_LIMITER_H_
#define OTPD_RATE_LIMITER_H_

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"

namespace otpd {

struct RateLimiterOptions {
  int per_minute = 300;     // refill rate; > 0
  int burst = 100;          // bucket size; > 0
  size_t max_keys = 65536;  // buckets kept at most (rounded up to the shards)
};

class RateLimiter {
 public:
  // `clock` must outlive the limiter. REQUIRES: per_minute > 0, burst > 0.
  RateLimiter(const RateLimiterOptions& options, Clock* clock);
  ~RateLimiter();
  RateLimiter(const RateLimiter&) = delete;
  RateLimiter& operator=(const RateLimiter&) = delete;

  // Takes a token for `key`: true when there was one. When not, nothing
  // changes and *retry_after_ms is how long until one is back (> 0).
  bool Allow(const std::string& key, int64_t* retry_after_ms);

  // Buckets held right now, over all shards (<= max_keys rounded up).
  size_t size();

 private:
  struct Shard;
  Shard& ShardFor(const std::string& key);

  const RateLimiterOptions options_;
  Clock* const clock_;
  std::vector<std::unique_ptr<Shard>> shards_;
};

}  // namespace otpd

#endif  // OTPD_RATE_LIMITER_H_
