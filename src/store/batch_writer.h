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
#ifndef OTPD_STORE_BATCH_WRITER_H_
#define OTPD_STORE_BATCH_WRITER_H_

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

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
};

template <typename Row>
class BatchWriter {
 public:
  using WriteFn = std::function<Status(const std::vector<Row>&)>;
  BatchWriter(const BatchWriterOptions& options, WriteFn write)
      : options_(options), write_(std::move(write)), thread_([this] { Loop(); }) {}

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
    std::lock_guard<std::mutex> lock(mu_);
    if (pending_.size() >= options_.max_pending) {
      dropped_++;
      return Status::Unavailable(std::string(options_.what) + " queue full");
    }
    pending_.push_back(std::move(row));
    if (pending_.size() >= options_.batch) cv_.notify_one();
    return Status::OK();
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
      if (s.ok()) return s;
    } else {
      std::vector<Row> part;
      for (; done < rows.size(); done += part.size()) {
        part.assign(rows.begin() + done, rows.begin() + std::min(rows.size(), done + step));
        s = write_(part);
        if (!s.ok()) break;
      }
      if (s.ok()) return s;
      rows.erase(rows.begin(), rows.begin() + done);
    }
    Log(LogLevel::kWarn, "cannot write queued records; will retry",
        {{"what", options_.what},
         {"records", std::to_string(rows.size())},
         {"error", s.ToString()}});
    std::lock_guard<std::mutex> lock(mu_);
    if (rows.size() + pending_.size() <= options_.max_pending) {
      pending_.insert(pending_.begin(), std::make_move_iterator(rows.begin()),
                      std::make_move_iterator(rows.end()));
    } else {
      dropped_ += rows.size();
    }
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
    while (!stopping_) {
      cv_.wait_for(lock, std::chrono::milliseconds(options_.flush_ms),
                   [this] { return stopping_ || pending_.size() >= options_.batch; });
      lock.unlock();
      Flush();
      lock.lock();
    }
  }

  const BatchWriterOptions options_;
  const WriteFn write_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Row> pending_;  // guarded by mu_
  bool stopping_ = false;     // guarded by mu_
  uint64_t dropped_ = 0;      // guarded by mu_
  std::thread thread_;        // last: started once the rest is built
};

}  // namespace otpd

#endif  // OTPD_STORE_BATCH_WRITER_H_
