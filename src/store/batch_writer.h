// BatchWriter: rows written behind the request. Add() queues a row; a
// thread of the writer's own writes what is queued in one call of `write`
// (one transaction) every flush_ms, or as soon as `batch` rows wait, and
// Flush() writes at once (before every read of the table, so a reader in
// this process always sees its own rows). A failed write puts its rows back
// for the next try; at most max_pending rows wait, and Add() refuses more
// (Unavailable) so memory stays bounded while the store fails.
//
// The cost: a crash (not a stop: the destructor flushes) loses what was
// queued, at most flush_ms of rows; the request that queued a row never
// waits for a commit of its own. Thread-safe.
//
// While writes fail (a full disk, a replaced file, Redis down) the thread
// backs off: it waits flush_ms, then twice as long after each failure, up
// to kMaxBackoffMs, before it tries again, and a failure is logged once,
// then at most every kFailureLogMs with the count of failed tries. Without
// that, a queue at `batch` rows retried at once, forever: one core busy
// and a log line per try (700 MB of log in 20 minutes, measured). Rows
// refused because the queue is full are logged the same way: the first
// refusal at once, then a line with the count at most every kFailureLogMs,
// and the count left over with the recovery line. Callers need not log an
// Unavailable from Add: one line per refused row would be one per request
// for as long as the store fails.
#ifndef OTPD_STORE_BATCH_WRITER_H_
#define OTPD_STORE_BATCH_WRITER_H_

#include <algorithm>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/log.h"
#include "core/status.h"

namespace otpd {

struct BatchWriterOptions {
  const char* what = "rows";  // for the log line of a failed write
  size_t batch = 256;         // a flush starts as soon as this many rows wait
  size_t max_pending = 100000;
  int flush_ms = 50;
  // > 0: a flush hands `write` at most this many rows per call (each call
  // one transaction), so no single write holds the file's lock long. A
  // failed call puts back its rows and those after it, never rows already
  // written.
  size_t chunk = 0;
  // Where the thread waits (null: SystemClock()); tests pass a fake one.
  Clock* clock = nullptr;
};

// The longest wait between two tries of a failing write, and how often a
// write that keeps failing is logged again.
constexpr int64_t kMaxBackoffMs = 5000;
constexpr int64_t kFailureLogMs = 60 * 1000;

template <typename Row>
class BatchWriter {
 public:
  using WriteFn = std::function<Status(const std::vector<Row>&)>;
  BatchWriter(const BatchWriterOptions& options, WriteFn write)
      : options_(options),
        clock_(options.clock != nullptr ? options.clock : SystemClock()),
        write_(std::move(write)),
        thread_([this] { Loop(); }) {}

  ~BatchWriter() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
    }
    cv_.notify_all();
    thread_.join();
    Flush();
  }

  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  Status Add(Row row) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (pending_.size() < options_.max_pending) {
        pending_.push_back(std::move(row));
        if (pending_.size() >= options_.batch) cv_.notify_one();
        return Status::OK();
      }
      dropped_++;
    }
    Dropped(1);
    return Status::Unavailable(std::string(options_.what) + " queue full");
  }

  // Writes what is queued now; its Status (OK when nothing waited). Rows
  // another Flush is writing at the same moment are not waited for.
  Status Flush() {
    std::vector<Row> rows;
    {
      std::lock_guard<std::mutex> lock(mu_);
      rows.swap(pending_);
    }
    if (rows.empty()) return Status::OK();
    const size_t step = options_.chunk > 0 ? options_.chunk : rows.size();
    Status s;
    size_t done = 0;
    if (step >= rows.size()) {
      s = write_(rows);
      if (s.ok()) {
        Recovered();
        return s;
      }
    } else {
      std::vector<Row> part;
      for (; done < rows.size(); done += part.size()) {
        part.assign(rows.begin() + done, rows.begin() + std::min(rows.size(), done + step));
        s = write_(part);
        if (!s.ok()) break;
      }
      if (s.ok()) {
        Recovered();
        return s;
      }
      rows.erase(rows.begin(), rows.begin() + done);
    }
    Failed(s, rows.size());
    size_t lost = 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (rows.size() + pending_.size() <= options_.max_pending) {
        pending_.insert(pending_.begin(), std::make_move_iterator(rows.begin()),
                        std::make_move_iterator(rows.end()));
      } else {
        lost = rows.size();
        dropped_ += lost;
      }
    }
    if (lost > 0) Dropped(lost);
    return s;
  }

  // Rows refused or given up since the start.
  uint64_t dropped() const {
    std::lock_guard<std::mutex> lock(mu_);
    return dropped_;
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> lock(mu_);
    int64_t backoff_ms = 0;  // > 0: the last write failed
    while (!stopping_) {
      // After a failure only the backoff ends the wait: a full queue would
      // otherwise start the next try at once.
      const int64_t wait_ms = backoff_ms > 0 ? backoff_ms : options_.flush_ms;
      const int64_t deadline = clock_->MonotonicMicros() + wait_ms * 1000;
      while (!stopping_ && (backoff_ms > 0 || pending_.size() < options_.batch)) {
        if (clock_->WaitUntilMicros(&cv_, &lock, deadline)) break;
      }
      if (stopping_) break;  // the destructor writes what is left
      lock.unlock();
      const bool ok = Flush().ok();
      lock.lock();
      backoff_ms = ok ? 0
                      : std::min<int64_t>(kMaxBackoffMs,
                                          std::max<int64_t>(2 * backoff_ms, options_.flush_ms));
    }
  }

  // A write failed with `s`, `rows` rows back in the queue: logged the
  // first time, then at most every kFailureLogMs.
  void Failed(const Status& s, size_t rows) {
    const int64_t now_ms = clock_->MonotonicMicros() / 1000;
    uint64_t tries = 0;
    {
      std::lock_guard<std::mutex> lock(log_mu_);
      failed_tries_++;
      if (failing_ && now_ms - logged_at_ms_ < kFailureLogMs) return;
      failing_ = true;
      logged_at_ms_ = now_ms;
      tries = failed_tries_;
    }
    Log(LogLevel::kWarn, "cannot write queued records; will retry",
        {{"what", options_.what},
         {"records", std::to_string(rows)},
         {"failed_tries", std::to_string(tries)},
         {"error", s.ToString()}});
  }

  // `rows` rows were dropped (a full queue): logged the first time, then
  // with the count at most every kFailureLogMs.
  void Dropped(size_t rows) {
    const int64_t now_ms = clock_->MonotonicMicros() / 1000;
    uint64_t count = 0;
    {
      std::lock_guard<std::mutex> lock(log_mu_);
      unlogged_drops_ += rows;
      if (drops_logged_ && now_ms - drops_logged_at_ms_ < kFailureLogMs) return;
      drops_logged_ = true;
      drops_logged_at_ms_ = now_ms;
      count = unlogged_drops_;
      unlogged_drops_ = 0;
    }
    Log(LogLevel::kWarn, "write-behind queue full; records dropped",
        {{"what", options_.what},
         {"dropped", std::to_string(count)},
         {"max_pending", std::to_string(options_.max_pending)}});
  }

  // A write succeeded: logs the recovery after failures, with the rows
  // dropped since the last line about them.
  void Recovered() {
    uint64_t tries = 0, drops = 0;
    {
      std::lock_guard<std::mutex> lock(log_mu_);
      if (!failing_) return;
      failing_ = false;
      tries = failed_tries_;
      failed_tries_ = 0;
      drops = unlogged_drops_;
      unlogged_drops_ = 0;
      drops_logged_ = false;
    }
    Log(LogLevel::kInfo, "queued records written again",
        {{"what", options_.what},
         {"failed_tries", std::to_string(tries)},
         {"dropped", std::to_string(drops)}});
  }

  const BatchWriterOptions options_;
  Clock* const clock_;
  const WriteFn write_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Row> pending_;  // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
  uint64_t dropped_ = 0;      // guarded by mu_
  std::mutex log_mu_;
  bool failing_ = false;            // guarded by log_mu_: failed since the last write
  uint64_t failed_tries_ = 0;       // guarded by log_mu_
  bool drops_logged_ = false;       // guarded by log_mu_: a drop was logged
  int64_t drops_logged_at_ms_ = 0;  // guarded by log_mu_
  uint64_t unlogged_drops_ = 0;     // guarded by log_mu_: dropped since the last line
  int64_t logged_at_ms_ = 0;        // guarded by log_mu_
  std::thread thread_;              // last: started once the rest is built
};

}  // namespace otpd

#endif  // OTPD_STORE_BATCH_WRITER_H_
