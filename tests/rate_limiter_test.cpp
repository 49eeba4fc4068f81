#include "http/rate_limiter.h"

#include <doctest/doctest.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace otpd {
namespace {

// How many requests pass back to back right now.
int Drain(RateLimiter* limiter, const std::string& key, int64_t* retry_ms) {
  int passed = 0;
  while (passed < 100000 && limiter->Allow(key, retry_ms)) passed++;
  return passed;
}

}  // namespace

TEST_CASE("RateLimiter: a burst passes, then one token per refill interval" *
          doctest::test_suite("tsan")) {
  FakeClock clock;
  RateLimiter limiter(RateLimiterOptions{60, 5, 1024}, &clock);  // one a second
  int64_t retry = -1;
  CHECK(Drain(&limiter, "10.0.0.1", &retry) == 5);
  CHECK(retry == 1000);
  clock.Advance(999);
  CHECK_FALSE(limiter.Allow("10.0.0.1", &retry));
  CHECK(retry == 1);
  clock.Advance(1);
  CHECK(limiter.Allow("10.0.0.1", &retry));
  CHECK_FALSE(limiter.Allow("10.0.0.1", &retry));
  // Other keys have their own bucket.
  CHECK(Drain(&limiter, "10.0.0.2", &retry) == 5);
  // A long pause refills up to the burst, not beyond.
  clock.AdvanceSeconds(3600);
  CHECK(Drain(&limiter, "10.0.0.1", &retry) == 5);
}

TEST_CASE("RateLimiter: refused requests do not slow the refill, at any rate" *
          doctest::test_suite("tsan")) {
  FakeClock clock;
  RateLimiter limiter(RateLimiterOptions{1, 1, 16}, &clock);  // one a minute
  int64_t retry = 0;
  CHECK(limiter.Allow("k", &retry));
  for (int i = 0; i < 59; i++) {  // a refused request every second
    clock.AdvanceSeconds(1);
    CHECK_FALSE(limiter.Allow("k", &retry));
  }
  CHECK(retry == 1000);
  clock.AdvanceSeconds(1);
  CHECK(limiter.Allow("k", &retry));
}

TEST_CASE("RateLimiter: memory stays bounded; the least recently seen key is dropped" *
          doctest::test_suite("tsan")) {
  FakeClock clock;
  RateLimiter limiter(RateLimiterOptions{60, 1, 64}, &clock);
  int64_t retry = 0;
  for (int i = 0; i < 100000; i++) limiter.Allow("ip" + std::to_string(i), &retry);
  CHECK(limiter.size() <= 64);
  CHECK(limiter.size() >= 16);
  // A key kept busy survives a flood of new keys in its shard; an idle one
  // is forgotten and starts over with a full bucket.
  CHECK(limiter.Allow("busy", &retry));
  CHECK_FALSE(limiter.Allow("busy", &retry));
  for (int i = 0; i < 10000; i++) {
    limiter.Allow("new" + std::to_string(i), &retry);
    if (i % 2 == 0) CHECK_FALSE(limiter.Allow("busy", &retry));
  }
  CHECK(limiter.size() <= 64);
}

TEST_CASE("RateLimiter: parallel requests take exactly the burst" * doctest::test_suite("tsan")) {
  FakeClock clock;
  RateLimiter limiter(RateLimiterOptions{1, 50, 1024}, &clock);
  std::atomic<int> passed{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&] {
      int64_t retry = 0;
      for (int i = 0; i < 100; i++) passed += limiter.Allow("same", &retry) ? 1 : 0;
    });
  }
  for (auto& t : threads) t.join();
  CHECK(passed.load() == 50);
}

}  // namespace otpd
