#include "http/worker_pool.h"

#include <doctest/doctest.h>

#include <condition_variable>
#include <mutex>
#include <vector>

#include "test_util.h"

namespace otpd {
namespace {

// Tasks that block until opened; counts how many are inside at once.
class Gate {
 public:
  std::function<void()> Task() {
    return [this] {
      std::unique_lock<std::mutex> lock(mu_);
      ++inside_;
      ++started_;
      cv_.notify_all();
      cv_.wait(lock, [this] { return open_; });
      --inside_;
    };
  }
  void WaitInside(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return inside_ >= n; });
  }
  void WaitStarted(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return started_ >= n; });
  }
  void Open() {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = true;
    cv_.notify_all();
  }
  int started() {
    std::lock_guard<std::mutex> lock(mu_);
    return started_;
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  int inside_ = 0;
  int started_ = 0;
  bool open_ = false;
};

WorkerPoolOptions Options(FakeClock* clock, size_t min, size_t max) {
  WorkerPoolOptions o;
  o.min_workers = min;
  o.max_workers = max;
  o.idle_ms = 1000;
  o.clock = clock;
  return o;
}

constexpr int64_t kIdleUs = 1000 * 1000;

TEST_CASE("WorkerPool: after a burst the workers go back to the minimum once idle long enough" *
          doctest::test_suite("tsan")) {
  FakeClock clock;
  WorkerPool pool(Options(&clock, 2, 64));
  CHECK(pool.workers() == 2);
  Gate gate;
  for (int i = 0; i < 40; i++) REQUIRE(pool.enqueue(gate.Task()));
  gate.WaitInside(40);  // 40 tasks at once: one worker each
  CHECK(pool.workers() == 40);
  gate.Open();
  pool.WaitUntilIdle(40);

  CHECK(pool.ReleaseIdle() == 0);  // idle, but not for idle_ms yet
  clock.AdvanceMonotonicMicros(kIdleUs - 1);
  CHECK(pool.ReleaseIdle() == 0);
  CHECK(pool.workers() == 40);
  clock.AdvanceMonotonicMicros(1);
  CHECK(pool.ReleaseIdle() == 38);  // joined when it returns
  CHECK(pool.workers() == 2);
  CHECK(pool.idle_workers() == 2);
  clock.AdvanceMonotonicMicros(10 * kIdleUs);
  CHECK(pool.ReleaseIdle() == 0);  // never below the minimum
  CHECK(pool.workers() == 2);
}

TEST_CASE("WorkerPool: the accept loop's on_idle and a later enqueue both retire idle workers" *
          doctest::test_suite("tsan")) {
  FakeClock clock;
  WorkerPool pool(Options(&clock, 1, 16));
  Gate one;  // outlives its task
  one.Open();
  for (int round = 0; round < 2; round++) {
    Gate gate;
    for (int i = 0; i < 10; i++) REQUIRE(pool.enqueue(gate.Task()));
    gate.WaitInside(10);
    CHECK(pool.workers() == 10);
    gate.Open();
    pool.WaitUntilIdle(10);
    clock.AdvanceMonotonicMicros(kIdleUs);
    if (round == 0) {
      pool.on_idle();
    } else {
      REQUIRE(pool.enqueue(one.Task()));  // releases before queuing
    }
    CHECK(pool.workers() == 1);
  }
  one.WaitStarted(1);  // run by the one worker left
}

TEST_CASE("WorkerPool: a busy worker is never retired, however long it runs" *
          doctest::test_suite("tsan")) {
  FakeClock clock;
  WorkerPool pool(Options(&clock, 0, 8));
  CHECK(pool.workers() == 0);
  Gate busy;
  REQUIRE(pool.enqueue(busy.Task()));
  busy.WaitInside(1);
  Gate quick;
  quick.Open();
  for (int i = 0; i < 3; i++) REQUIRE(pool.enqueue(quick.Task()));
  const size_t before = pool.workers();  // stable: no more enqueues
  CHECK(before >= 2);
  pool.WaitUntilIdle(before - 1);  // all but the busy one
  clock.AdvanceMonotonicMicros(5 * kIdleUs);
  CHECK(pool.ReleaseIdle() == before - 1);
  CHECK(pool.workers() == 1);  // the busy one
  CHECK(pool.idle_workers() == 0);
  busy.Open();
  pool.WaitUntilIdle(1);
  clock.AdvanceMonotonicMicros(kIdleUs);
  CHECK(pool.ReleaseIdle() == 1);
  CHECK(pool.workers() == 0);
  Gate again;  // and a pool with no worker left starts one for a new task
  again.Open();
  REQUIRE(pool.enqueue(again.Task()));
  again.WaitStarted(1);
  CHECK(pool.workers() == 1);
}

TEST_CASE("WorkerPool: a worker idle long enough is kept while a task queued for it waits" *
          doctest::test_suite("tsan")) {
  // The task is queued for the one idle worker, and ReleaseIdle comes
  // before that worker wakes up (most rounds): retiring it would leave
  // the task with no worker until some later enqueue.
  FakeClock clock;
  WorkerPool pool(Options(&clock, 0, 4));
  for (int round = 0; round < 20; round++) {
    Gate first;
    first.Open();
    REQUIRE(pool.enqueue(first.Task()));
    pool.WaitUntilIdle(1);
    REQUIRE(pool.workers() == 1);
    clock.AdvanceMonotonicMicros(kIdleUs / 2 + 1);
    CHECK(pool.ReleaseIdle() == 0);  // not idle long enough; the next enqueue skips releasing
    clock.AdvanceMonotonicMicros(kIdleUs / 2 - 1);  // idle for exactly idle_ms
    Gate queued;
    queued.Open();
    REQUIRE(pool.enqueue(queued.Task()));  // the idle worker takes it: no new one
    pool.ReleaseIdle();
    REQUIRE(pool.workers() == 1);  // else the task waits for good
    queued.WaitStarted(1);
    pool.WaitUntilIdle(1);
    clock.AdvanceMonotonicMicros(kIdleUs);
    CHECK(pool.ReleaseIdle() == 1);  // and once the queue is empty it may go
    CHECK(pool.workers() == 0);
  }
}

TEST_CASE("WorkerPool: beyond max_workers tasks wait for a worker instead of adding one" *
          doctest::test_suite("tsan")) {
  FakeClock clock;
  WorkerPool pool(Options(&clock, 1, 3));
  Gate gate;
  for (int i = 0; i < 5; i++) REQUIRE(pool.enqueue(gate.Task()));
  gate.WaitInside(3);
  CHECK(pool.workers() == 3);
  CHECK(gate.started() == 3);
  gate.Open();
  pool.WaitUntilIdle(3);
  CHECK(gate.started() == 5);
}

TEST_CASE("WorkerPool: shutdown runs what is queued, joins, and refuses more") {
  FakeClock clock;
  WorkerPool pool(Options(&clock, 2, 2));
  Gate gate;
  for (int i = 0; i < 4; i++) REQUIRE(pool.enqueue(gate.Task()));
  gate.WaitInside(2);
  gate.Open();
  pool.shutdown();
  CHECK(gate.started() == 4);
  CHECK(pool.workers() == 0);
  CHECK_FALSE(pool.enqueue([] {}));
  pool.shutdown();  // twice is fine
}

}  // namespace
}  // namespace otpd
