// WorkerPool: the task queue HttpServer gives cpp-httplib (its
// `new_task_queue` hook, through a forwarder in http_server.cpp, so this
// header needs none of the library's), in place of its ThreadPool. Each open
// connection holds one worker; the pool starts `min_workers`, adds one
// whenever a task finds no idle worker (up to `max_workers`; beyond that,
// tasks wait in order), and retires workers that have been idle for
// `idle_ms` or more, never going below `min_workers`.
//
// Retiring happens in ReleaseIdle(), which the server's accept loop calls
// when no connection arrived for a while (on_idle) and, at most every
// idle_ms / 2, before queuing a connection (enqueue). ReleaseIdle wakes the
// retired workers, waits for them to leave, joins them, and then returns
// the heap they freed to the system (glibc malloc_trim). The library's own
// pool joins a finished worker only when it next grows, and until then
// each one keeps tens of KiB of stack and TLS resident (README, Limits).
// Idle time is read from the Clock, so a test moves it by hand.
//
// Thread-safety: enqueue, on_idle and ReleaseIdle may be called from any
// thread (the library calls them from the accept loop); shutdown once.
#ifndef OTPD_WORKER_POOL_H_
#define OTPD_WORKER_POOL_H_

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <list>
#include <mutex>
#include <thread>

#include "core/clock.h"

namespace otpd {

struct WorkerPoolOptions {
  size_t min_workers = 8;     // started at once, never retired
  size_t max_workers = 1024;  // REQUIRES: >= min_workers, > 0
  int64_t idle_ms = 3000;     // idle this long, a worker above the minimum leaves
  Clock* clock = nullptr;     // null: SystemClock() (its monotonic time)
};

class WorkerPool final {
 public:
  explicit WorkerPool(const WorkerPoolOptions& options);
  // Shuts down (below) if shutdown() was not called.
  ~WorkerPool();
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `fn` for a worker, starting one if none is idle and the pool is
  // below max_workers. False (and `fn` dropped) after shutdown, or when no
  // worker exists and none can be started.
  bool enqueue(std::function<void()> fn);

  // Runs every queued task, then stops and joins every worker. Later
  // enqueue calls return false.
  void shutdown();

  // The library's accept loop calls this when no connection came within
  // its idle interval: ReleaseIdle().
  void on_idle();

  // Retires the workers idle for idle_ms or more by the clock, keeping
  // min_workers, and returns once they are joined; frees the heap they
  // left. Returns how many left.
  size_t ReleaseIdle();

  // Live workers, and how many of them wait for a task.
  size_t workers() const;
  size_t idle_workers() const;

  // Blocks until no task is queued and at least `n` workers wait for one
  // (a worker just started counts as idle before it runs its first task).
  // For tests: the event that a burst's tasks have all finished.
  void WaitUntilIdle(size_t n) const;

 private:
  struct Worker;

  void Work(Worker* w);
  // REQUIRES: mu_ held. Starts workers while queued tasks outnumber idle
  // ones, up to max_workers. False when none could be started.
  bool GrowLocked();
  bool StartWorkerLocked();
  void MaybeReleaseIdle();

  const size_t min_;
  const size_t max_;
  const int64_t idle_us_;
  Clock* const clock_;

  mutable std::mutex mu_;
  std::condition_variable work_cv_;          // a task, a retirement or shutdown
  mutable std::condition_variable idle_cv_;  // a worker became idle
  std::condition_variable left_cv_;          // a retired worker left its loop
  std::list<std::function<void()>> tasks_;
  std::list<Worker> workers_;
  size_t idle_ = 0;      // workers waiting for a task, not retiring
  size_t retiring_ = 0;  // told to leave, not yet out of their loop
  int64_t next_release_us_ = 0;
  bool shutdown_ = false;
};

}  // namespace otpd

#endif  // OTPD_WORKER_POOL_H_
