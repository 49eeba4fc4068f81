// Test helpers shared by the test files: a fake clock, a deterministic
// random source, a temporary directory removed at scope exit, and a plain
// TCP connection to a loopback port.
#ifndef OTPD_TESTS_TEST_UTIL_H_
#define OTPD_TESTS_TEST_UTIL_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/random.h"
#include "otp/sms.h"

namespace otpd {

// A clock that only moves when told to, and never sleeps. Thread-safe.
class FakeClock : public Clock {
 public:
  explicit FakeClock(int64_t start_ms = 1700000000000) : now_(start_ms) {}
  int64_t NowMillis() override { return now_.load(); }
  void Advance(int64_t ms) { now_ += ms; }
  void AdvanceSeconds(int64_t s) { now_ += s * 1000; }
  // The monotonic time moves only by hand or by SleepMicros, which also
  // adds to slept_micros() and returns at once.
  int64_t MonotonicMicros() override { return mono_us_.load(); }
  void SleepMicros(int64_t us) override {
    if (us <= 0) return;
    mono_us_ += us;
    slept_us_ += us;
  }
  // Never waits: moves the monotonic time to the deadline, counted as slept.
  bool WaitUntilMicros(std::condition_variable*, std::unique_lock<std::mutex>*,
                       int64_t deadline_us) override {
    SleepMicros(deadline_us - mono_us_.load());
    return true;
  }
  void AdvanceMonotonicMicros(int64_t us) { mono_us_ += us; }
  int64_t slept_micros() const { return slept_us_.load(); }

 private:
  std::atomic<int64_t> now_;
  std::atomic<int64_t> mono_us_{0};
  std::atomic<int64_t> slept_us_{0};
};

// splitmix64: the same bytes for the same seed. Tests only.
class SeededRandom : public RandomSource {
 public:
  explicit SeededRandom(uint64_t seed) : state_(seed) {}
  Status Fill(uint8_t* buf, size_t n) override;

 private:
  std::atomic<uint64_t> state_;
};

// Records every message instead of sending it, so a test reads the code.
class FakeSmsSender : public SmsSender {
 public:
  struct Message {
    std::string to;
    std::string body;  // for voice: the script; for WhatsApp: the SMS text
    Channel channel = Channel::kSms;
    std::string locale = {};  // SendCode's message.locale (voice: the <Say> language)
  };
  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override;
  // Every channel (voice until a test clears voice_supported), recorded
  // like an SMS with its channel.
  bool Supports(Channel channel) const override;
  Status SendCode(const std::string& to, const CodeMessage& message, SmsReceipt* receipt) override;
  std::atomic<bool> voice_supported{true};
  std::vector<Message> messages();
  size_t count();
  // The first run of digits in the last message ("" when none).
  std::string LastCode();

 private:
  std::mutex mu_;
  std::vector<Message> messages_;
};

// Forwards to another sender until told to fail; then fails every send
// with `provider_code` (leveldb's ErrorEnv, for SMS).
class FailingSmsSender : public SmsSender {
 public:
  explicit FailingSmsSender(SmsSender* target) : target_(target) {}
  void FailWith(int provider_code) { fail_code_ = provider_code; }
  void Heal() { fail_code_ = 0; }
  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override;
  bool Supports(Channel channel) const override { return target_->Supports(channel); }
  Status SendCode(const std::string& to, const CodeMessage& message, SmsReceipt* receipt) override;

 private:
  SmsSender* target_;
  std::atomic<int> fail_code_{0};
};

// Holds every send at a gate until Open, then forwards to `target`: a
// request stays in flight for exactly as long as the test wants.
class GatedSmsSender : public SmsSender {
 public:
  explicit GatedSmsSender(SmsSender* target) : target_(target) {}
  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override;
  // Returns once a send is waiting at the gate (or has passed it).
  void WaitEntered();
  // Lets every waiting and later send through.
  void Open();

 private:
  SmsSender* const target_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool entered_ = false;
  bool open_ = false;
};

// Polls `done` until it holds and returns true; false when it still does
// not after `guard_ms`. The guard only ends a hung test: nothing measures
// the wait, so a slow machine only makes it longer.
bool WaitUntil(const std::function<bool()>& done, int64_t guard_ms = 60000);

// A code of the same length that is certainly not `code`.
std::string WrongCode(const std::string& code);

// {"user_id":"<user>","passcode":"<code>"}
std::string VerifyJson(const std::string& user, const std::string& code);

// The first run of `length` or more digits in `text` ("" when none).
std::string FindCode(const std::string& text);

// Parses a Prometheus text exposition into series -> value, keyed by the
// series as written: `otpd_sends_total{outcome="sent"}`. Returns false (and
// sets *error to the bad line) on a line that is neither a # comment nor
// `series value`, or a series given twice.
bool ParsePrometheus(const std::string& text, std::map<std::string, double>* series,
                     std::string* error);

// Whether this run keeps codes in Redis: OTPD_TEST_STORE=redis, as
// `make REDIS=1 test` sets for its second run of the suite. Test stacks and
// black-box configs then use the shared test Redis (redis_server.h).
bool TestStoreIsRedis();

// A TCP connection to 127.0.0.1:`port` (close-on-exec), or -1. With
// `timeout_seconds` > 0, connecting, sending and receiving each give up
// after that long; 0 waits as long as the kernel does. The caller closes it.
int ConnectToLoopback(int port, int timeout_seconds = 0);

// A fresh directory under $TMPDIR (or /tmp); removed with its contents when
// the object goes out of scope.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace otpd

#endif  // OTPD_TESTS_TEST_UTIL_H_
