// BatchWriter: rows reach `write` without a Flush (its own thread, waited
// for as an event), Flush writes at once, a failed write keeps its rows for
// the next try, the queue is bounded, and destruction writes what is left.
#include "store/batch_writer.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

#include "core/log.h"
#include "test_util.h"

namespace otpd {
namespace {

// What the writer wrote, and whether the next write fails.
struct Sink {
  Status Write(const std::vector<int>& rows) {
    std::lock_guard<std::mutex> lock(mu);
    calls++;
    if (fail) return Status::Unavailable("disk on fire");
    written.insert(written.end(), rows.begin(), rows.end());
    cv.notify_all();
    return Status::OK();
  }
  void SetFail(bool f) {
    std::lock_guard<std::mutex> lock(mu);
    fail = f;
  }
  std::vector<int> Written() {
    std::lock_guard<std::mutex> lock(mu);
    return written;
  }
  // Waits until `n` rows were written; false if that takes a minute.
  bool WaitFor(size_t n) {
    std::unique_lock<std::mutex> lock(mu);
    return cv.wait_for(lock, std::chrono::minutes(1), [&] { return written.size() >= n; });
  }
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int> written;
  int calls = 0;
  bool fail = false;
};

BatchWriterOptions Options(size_t batch, size_t max_pending, int flush_ms) {
  return BatchWriterOptions{"test rows", batch, max_pending, flush_ms};
}

TEST_CASE("BatchWriter: queued rows are written by its thread, in order") {
  Sink sink;
  BatchWriter<int> writer(Options(4, 100, 10),
                          [&](const std::vector<int>& rows) { return sink.Write(rows); });
  for (int i = 0; i < 10; i++) REQUIRE(writer.Add(i).ok());
  REQUIRE(sink.WaitFor(10));
  std::lock_guard<std::mutex> lock(sink.mu);
  CHECK(sink.written == std::vector<int>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9});
}

TEST_CASE("BatchWriter: Flush writes at once; a failure keeps the rows for the next try") {
  Sink sink;
  // A flush interval of an hour: only Flush and the destructor write.
  BatchWriter<int> writer(Options(1000, 3, 3600 * 1000),
                          [&](const std::vector<int>& rows) { return sink.Write(rows); });
  REQUIRE(writer.Add(1).ok());
  REQUIRE(writer.Add(2).ok());
  sink.SetFail(true);
  CHECK(writer.Flush().code() == Status::Code::kUnavailable);
  REQUIRE(writer.Add(3).ok());
  // Full: 1, 2 (put back) and 3 wait.
  CHECK(writer.Add(4).code() == Status::Code::kUnavailable);
  CHECK(writer.dropped() == 1);
  sink.SetFail(false);
  CHECK(writer.Flush().ok());
  CHECK(sink.Written() == std::vector<int>{1, 2, 3});
  CHECK(writer.Flush().ok());  // nothing waits: no call
  std::lock_guard<std::mutex> lock(sink.mu);
  CHECK(sink.calls == 2);
}

TEST_CASE("BatchWriter: destruction writes what is still queued") {
  Sink sink;
  {
    BatchWriter<int> writer(Options(1000, 100, 3600 * 1000),
                            [&](const std::vector<int>& rows) { return sink.Write(rows); });
    REQUIRE(writer.Add(7).ok());
    REQUIRE(writer.Add(8).ok());
  }
  CHECK(sink.written == std::vector<int>{7, 8});
}

TEST_CASE(
    "BatchWriter: a flush is written in chunks, in order; a failed chunk keeps only the rest") {
  // Each call's rows, and the calls that fail (by number, from 1).
  std::mutex mu;
  std::vector<std::vector<int>> calls;
  std::vector<size_t> failing = {2};
  BatchWriterOptions options = Options(1000, 100, 3600 * 1000);
  options.chunk = 3;
  BatchWriter<int> writer(options, [&](const std::vector<int>& rows) {
    std::lock_guard<std::mutex> lock(mu);
    calls.push_back(rows);
    for (size_t f : failing) {
      if (f == calls.size()) return Status::Unavailable("disk on fire");
    }
    return Status::OK();
  });
  for (int v : {19, 5, 21, 3, 11, 7, 30, 8}) REQUIRE(writer.Add(v).ok());
  // In the order queued, chunks of 3; the second chunk fails.
  CHECK(writer.Flush().code() == Status::Code::kUnavailable);
  {
    std::lock_guard<std::mutex> lock(mu);
    REQUIRE(calls.size() == 2);
    CHECK(calls[0] == std::vector<int>{19, 5, 21});
    CHECK(calls[1] == std::vector<int>{3, 11, 7});
  }
  // The first chunk is not written twice; the rest comes back in order.
  CHECK(writer.Flush().ok());
  std::lock_guard<std::mutex> lock(mu);
  REQUIRE(calls.size() == 4);
  CHECK(calls[2] == std::vector<int>{3, 11, 7});
  CHECK(calls[3] == std::vector<int>{30, 8});
}

// A write that keeps failing (a full disk, a replaced file) used to be
// retried at once, forever, once the queue held `batch` rows: one core busy
// and a log line per try. Now the thread waits flush_ms, doubling after
// each failure up to kMaxBackoffMs, and logs once a minute at most.
TEST_CASE("BatchWriter: a failing write is retried after a growing wait and logged once a minute" *
          doctest::test_suite("tsan")) {
  TempDir dir;
  const std::string log_path = dir.File("otpd.log");
  const int saved_stderr = dup(STDERR_FILENO);
  REQUIRE(OpenLogFile(log_path).ok());
  FakeClock clock;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<int64_t> tries;  // the fake monotonic time of each write
  std::vector<int> written;
  // The first 30 tries fail. Decided by the writer itself: with a fake
  // clock its thread never sleeps, so a test thread flipping a flag would
  // come after some unknown number of tries.
  constexpr size_t kFailedTries = 30;
  {
    BatchWriterOptions options = Options(2, 100, 10);
    options.clock = &clock;
    BatchWriter<int> writer(options, [&](const std::vector<int>& rows) {
      std::lock_guard<std::mutex> lock(mu);
      tries.push_back(clock.MonotonicMicros());
      cv.notify_all();
      if (tries.size() <= kFailedTries) return Status::Unavailable("disk on fire");
      written.insert(written.end(), rows.begin(), rows.end());
      return Status::OK();
    });
    for (int i = 0; i < 5; i++) REQUIRE(writer.Add(i).ok());
    {
      std::unique_lock<std::mutex> lock(mu);
      REQUIRE(cv.wait_for(lock, std::chrono::minutes(1), [&] { return !written.empty(); }));
      const size_t failed = kFailedTries;
      REQUIRE(tries.size() == failed + 1);
      // Each try waited twice as long as the one before, from 10 ms, at
      // most 5 s: never at once, though the queue stayed at `batch`.
      int64_t expected_ms = 10;
      for (size_t i = 1; i < failed; i++) {
        CAPTURE(i);
        CHECK(tries[i] - tries[i - 1] == expected_ms * 1000);
        expected_ms = std::min<int64_t>(kMaxBackoffMs, 2 * expected_ms);
      }
      CHECK(written == std::vector<int>{0, 1, 2, 3, 4});
    }
  }
  dup2(saved_stderr, STDERR_FILENO);
  close(saved_stderr);
  std::ifstream in(log_path);
  std::stringstream text;
  text << in.rdbuf();
  const std::string log = text.str();
  // 30 failed tries over 105 s of backoff: a line at the first try, one
  // at the 21st (60.11 s later), and the recovery.
  size_t warned = 0;
  for (size_t at = 0; (at = log.find("cannot write queued records", at)) != std::string::npos;
       at++) {
    warned++;
  }
  CHECK(warned == 2);
  CHECK(log.find("failed_tries=21 ") != std::string::npos);
  CHECK(log.find("queued records written again") != std::string::npos);
  CHECK(log.find("disk on fire") != std::string::npos);
}

// Monotonic time moved only by hand; a wait really waits (in short real
// steps) until that time reaches its deadline, so the writer's thread
// stays put while a test moves the time by less than its flush interval.
class HandClock : public FakeClock {
 public:
  bool WaitUntilMicros(std::condition_variable* cv, std::unique_lock<std::mutex>* lock,
                       int64_t deadline_us) override {
    if (MonotonicMicros() >= deadline_us) return true;
    cv->wait_for(*lock, std::chrono::milliseconds(5));
    return MonotonicMicros() >= deadline_us;
  }
};

// With the store failing long enough, the queue fills and every further
// row is refused: one log line per refused row would be a line per request.
TEST_CASE("BatchWriter: rows refused by a full queue are logged once, then counted once a minute" *
          doctest::test_suite("tsan")) {
  TempDir dir;
  const std::string log_path = dir.File("otpd.log");
  const int saved_stderr = dup(STDERR_FILENO);
  REQUIRE(OpenLogFile(log_path).ok());
  HandClock clock;
  {
    // Never flushed by its thread (an hour, and a batch larger than the
    // queue); writes fail until the end.
    BatchWriterOptions options = Options(1000, 4, 3600 * 1000);
    options.clock = &clock;
    bool fail = true;
    BatchWriter<int> writer(options, [&](const std::vector<int>&) {
      return fail ? Status::Unavailable("disk on fire") : Status::OK();
    });
    for (int i = 0; i < 4; i++) REQUIRE(writer.Add(i).ok());
    for (int i = 0; i < 1000; i++) CHECK(writer.Add(i).code() == Status::Code::kUnavailable);
    clock.AdvanceMonotonicMicros(kFailureLogMs * 1000 - 1000);
    CHECK(writer.Add(1).code() == Status::Code::kUnavailable);  // still within the minute
    clock.AdvanceMonotonicMicros(1000);
    CHECK(writer.Add(2).code() == Status::Code::kUnavailable);  // a minute on: counted
    for (int i = 0; i < 7; i++) CHECK(writer.Add(i).code() == Status::Code::kUnavailable);
    CHECK(writer.dropped() == 1009);
    CHECK(writer.Flush().code() == Status::Code::kUnavailable);  // the queue's 4 kept
    fail = false;
    CHECK(writer.Flush().ok());
  }
  dup2(saved_stderr, STDERR_FILENO);
  close(saved_stderr);
  std::ifstream in(log_path);
  std::vector<std::string> drops;
  std::string recovered;
  for (std::string line; std::getline(in, line);) {
    if (line.find("records dropped") != std::string::npos) drops.push_back(line);
    if (line.find("written again") != std::string::npos) recovered = line;
  }
  REQUIRE(drops.size() == 2);
  CHECK(drops[0].find("dropped=1 ") != std::string::npos);
  CHECK(drops[1].find("dropped=1001 ") != std::string::npos);  // 999 + 1 + the one a minute on
  CHECK(recovered.find("dropped=7") != std::string::npos);     // the rest, with the recovery
}

}  // namespace
}  // namespace otpd
