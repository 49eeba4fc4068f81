#include "http/worker_pool.h"

#include <openssl/crypto.h>

#include <system_error>
#include <utility>

#ifdef __GLIBC__
#include <malloc.h>
#endif

namespace otpd {

struct WorkerPool::Worker {
  std::thread thread;
  bool idle = false;
  int64_t idle_since_us = 0;
  bool retire = false;  // told to leave by ReleaseIdle
  bool left = false;    // out of its loop; ready to join
};

WorkerPool::WorkerPool(const WorkerPoolOptions& options)
    : min_(options.min_workers),
      max_(options.max_workers > options.min_workers ? options.max_workers : options.min_workers),
      idle_us_(options.idle_ms * 1000),
      clock_(options.clock != nullptr ? options.clock : SystemClock()) {
  std::lock_guard<std::mutex> lock(mu_);
  next_release_us_ = clock_->MonotonicMicros() + idle_us_ / 2;
  for (size_t i = 0; i < min_; i++) {
    if (!StartWorkerLocked()) break;
  }
}

WorkerPool::~WorkerPool() { shutdown(); }

bool WorkerPool::enqueue(std::function<void()> fn) {
  MaybeReleaseIdle();
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_) return false;
    tasks_.push_back(std::move(fn));
    if (!GrowLocked() && workers_.empty()) {
      tasks_.pop_back();
      return false;
    }
  }
  work_cv_.notify_one();
  return true;
}

void WorkerPool::shutdown() {
  std::list<Worker> all;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (shutdown_ && workers_.empty()) return;
    shutdown_ = true;
    all.splice(all.end(), workers_);
  }
  work_cv_.notify_all();
  left_cv_.notify_all();
  // The nodes keep their addresses in `all`, so workers still finishing
  // their tasks may touch them until joined.
  for (Worker& w : all) {
    if (w.thread.joinable()) w.thread.join();
  }
}

void WorkerPool::on_idle() { ReleaseIdle(); }

size_t WorkerPool::ReleaseIdle() {
  std::list<Worker> leaving;
  {
    std::unique_lock<std::mutex> lock(mu_);
    const int64_t now = clock_->MonotonicMicros();
    next_release_us_ = now + idle_us_ / 2;
    const size_t staying = workers_.size() - retiring_;
    size_t spare = staying > min_ ? staying - min_ : 0;
    // A worker counted idle may not have picked up a task queued for it
    // yet; keep one for each such task, or it could wait for the next
    // enqueue with no worker to run it.
    const size_t unclaimed = idle_ > tasks_.size() ? idle_ - tasks_.size() : 0;
    if (spare > unclaimed) spare = unclaimed;
    for (Worker& w : workers_) {
      if (spare == 0) break;
      if (!w.idle || w.retire || now - w.idle_since_us < idle_us_) continue;
      w.retire = true;
      w.idle = false;
      --idle_;
      ++retiring_;
      --spare;
    }
    if (retiring_ == 0) return 0;
    work_cv_.notify_all();
    left_cv_.wait(lock, [this] { return retiring_ == 0 || shutdown_; });
    if (shutdown_) return 0;
    for (auto it = workers_.begin(); it != workers_.end();) {
      auto next = std::next(it);
      if (it->left) leaving.splice(leaving.end(), workers_, it);
      it = next;
    }
  }
  for (Worker& w : leaving) w.thread.join();
#ifdef __GLIBC__
  // Each worker's malloc arena keeps what it freed; give it back.
  if (!leaving.empty()) malloc_trim(0);
#endif
  return leaving.size();
}

size_t WorkerPool::workers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return workers_.size() - retiring_;
}

size_t WorkerPool::idle_workers() const {
  std::lock_guard<std::mutex> lock(mu_);
  return idle_;
}

void WorkerPool::WaitUntilIdle(size_t n) const {
  std::unique_lock<std::mutex> lock(mu_);
  idle_cv_.wait(lock, [&] { return idle_ >= n && tasks_.empty(); });
}

void WorkerPool::Work(Worker* w) {
  std::unique_lock<std::mutex> lock(mu_);
  for (;;) {
    work_cv_.wait(lock, [&] { return w->retire || shutdown_ || !tasks_.empty(); });
    if (w->retire) break;
    w->idle = false;
    --idle_;
    if (tasks_.empty()) break;  // shutdown, every task run
    std::function<void()> fn = std::move(tasks_.front());
    tasks_.pop_front();
    lock.unlock();
    fn();
    fn = nullptr;  // the task's captures go before the worker counts as idle
    lock.lock();
    w->idle = true;
    w->idle_since_us = clock_->MonotonicMicros();
    ++idle_;
    idle_cv_.notify_all();
  }
  w->left = true;
  if (w->retire) {
    --retiring_;
    left_cv_.notify_all();
  }
  lock.unlock();
  OPENSSL_thread_stop();
}

bool WorkerPool::GrowLocked() {
  while (tasks_.size() > idle_ && workers_.size() - retiring_ < max_) {
    if (!StartWorkerLocked()) return false;
  }
  return true;
}

bool WorkerPool::StartWorkerLocked() {
  workers_.emplace_back();
  Worker* w = &workers_.back();
  // Idle from the start, so that GrowLocked counts it for a queued task.
  w->idle = true;
  w->idle_since_us = clock_->MonotonicMicros();
  try {
    w->thread = std::thread([this, w] { Work(w); });
  } catch (const std::system_error&) {
    workers_.pop_back();  // out of threads: the queued tasks wait
    return false;
  }
  ++idle_;
  idle_cv_.notify_all();
  return true;
}

void WorkerPool::MaybeReleaseIdle() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (workers_.size() <= min_ || clock_->MonotonicMicros() < next_release_us_) return;
  }
  ReleaseIdle();
}

}  // namespace otpd
