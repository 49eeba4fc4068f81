// Tokens are refilled from the time elapsed since the bucket was last
// touched, so no timer runs and idle keys cost nothing but their slot. A
// token is 60000 units and a bucket gains per_minute units per millisecond:
// integer arithmetic with no rounding, so frequent refused requests cannot
// starve the refill.
#include "http/rate_limiter.h"

#include <algorithm>
#include <functional>

namespace otpd {
namespace {

constexpr size_t kShards = 16;
constexpr int64_t kUnit = 60000;  // units per token: a minute in ms

}  // namespace

struct RateLimiter::Shard {
  struct Bucket {
    std::string key;
    int64_t tokens = 0;  // in units (kUnit per token)
    int64_t updated_ms = 0;
  };
  std::mutex mu;
  std::list<Bucket> lru;  // most recently used first
  std::unordered_map<std::string, std::list<Bucket>::iterator> index;
};

RateLimiter::RateLimiter(const RateLimiterOptions& options, Clock* clock)
    : options_(options), clock_(clock) {
  for (size_t i = 0; i < kShards; i++) shards_.emplace_back(new Shard);
}

RateLimiter::~RateLimiter() = default;

RateLimiter::Shard& RateLimiter::ShardFor(const std::string& key) {
  return *shards_[std::hash<std::string>()(key) % kShards];
}

bool RateLimiter::Allow(const std::string& key, int64_t* retry_after_ms) {
  const int64_t now = clock_->NowMillis();
  const int64_t capacity = int64_t{options_.burst} * kUnit;
  const size_t per_shard = std::max<size_t>(1, (options_.max_keys + kShards - 1) / kShards);
  Shard& shard = ShardFor(key);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.index.find(key);
  if (it == shard.index.end()) {
    if (shard.lru.size() >= per_shard) {
      shard.index.erase(shard.lru.back().key);
      shard.lru.pop_back();
    }
    shard.lru.push_front(Shard::Bucket{key, capacity, now});
    it = shard.index.emplace(key, shard.lru.begin()).first;
  } else {
    shard.lru.splice(shard.lru.begin(), shard.lru, it->second);
  }
  Shard::Bucket& b = *it->second;
  // Clamped: a clock step back refills nothing, a long gap fills it (and
  // the product cannot overflow).
  const int64_t elapsed = std::clamp<int64_t>(now - b.updated_ms, 0, capacity);
  b.tokens = std::min(capacity, b.tokens + elapsed * options_.per_minute);
  b.updated_ms = now;
  if (b.tokens >= kUnit) {
    b.tokens -= kUnit;
    return true;
  }
  const int64_t missing = kUnit - b.tokens;
  *retry_after_ms = (missing + options_.per_minute - 1) / options_.per_minute;
  return false;
}

size_t RateLimiter::size() {
  size_t n = 0;
  for (auto& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard->mu);
    n += shard->lru.size();
  }
  return n;
}

}  // namespace otpd
