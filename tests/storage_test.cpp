// The Storage contract, run against every backend in kBackends, then the
// SQLite backend's concurrency guarantees across threads, handles and
// processes.
#include "otp/storage.h"

#include <doctest/doctest.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <map>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#ifdef OTPD_REDIS
#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "redis_server.h"
#endif

#include "core/code_hash.h"
#include "otp/audit.h"
#include "otp/rules.h"
#include "store/sqlite_db.h"
#include "test_util.h"

namespace otpd {
namespace {

constexpr int64_t kExpiryMs = 300 * 1000;
constexpr int64_t kGraceMs = 600 * 1000;
const VerifyLimits kLimits{3, kGraceMs};

// ---------------------------------------------------------------------------
// Backends

using StorageFactory = Status (*)(const TempDir& dir, Clock* clock,
                                  std::unique_ptr<Storage>* storage);

Status MakeSqliteStorage(const TempDir& dir, Clock* clock, std::unique_ptr<Storage>* storage) {
  SqliteOptions options;
  options.path = dir.File("otpd.db");
  std::shared_ptr<SqliteDb> db;
  Status s = OpenSqliteDb(options, &db);
  if (!s.ok()) return s;
  return NewSqliteStorage(db, clock, storage);
}

#ifdef OTPD_REDIS
// A store under its own key prefix on the test process's redis-server.
RedisOptions TestRedisOptions() {
  RedisOptions options;
  options.endpoint.host = "127.0.0.1";
  options.endpoint.port = SharedTestRedis().port();
  options.prefix = UniqueRedisPrefix();
  return options;
}

Status MakeRedisStorage(const TempDir&, Clock* clock, std::unique_ptr<Storage>* storage) {
  return NewRedisStorage(TestRedisOptions(), clock, storage);
}
#endif

struct Backend {
  const char* name;
  StorageFactory make;
  // PurgeExpired forgets send and failure history older than history_ms.
  // Redis trims history to the window on every write and lets it expire.
  bool purges_history;
};

// Every backend the contract runs against.
const Backend kBackends[] = {
    {"sqlite", MakeSqliteStorage, true},
#ifdef OTPD_REDIS
    {"redis", MakeRedisStorage, false},
#endif
};

// One fresh, empty store of one backend, with its own clock.
struct Store {
  TempDir dir;
  FakeClock clock;
  std::unique_ptr<Storage> storage;
};

// Runs body(storage, clock) once per backend, each on a fresh store.
template <typename Body>
void ForEachBackend(Body body, bool only_purging_history = false) {
  for (const Backend& backend : kBackends) {
    if (only_purging_history && !backend.purges_history) continue;
    INFO("backend: ", backend.name);
    Store store;
    REQUIRE(backend.make(store.dir, &store.clock, &store.storage).ok());
    body(store.storage.get(), &store.clock);
  }
}

const CodeHasher& Hasher() {
  static const CodeHasher hasher("storage-test-secret");
  return hasher;
}

std::string HashOf(const std::string& user_id, const std::string& code) {
  return Hasher().Hash(user_id, code);
}

StoredCode CodeFor(const std::string& user_id, const std::string& code, Clock* clock,
                   int64_t expiry_ms = kExpiryMs) {
  const int64_t now = clock->NowMillis();
  return StoredCode{user_id, HashOf(user_id, code), now, now + expiry_ms};
}

VerifyResult Verify(Storage* storage, const std::string& user_id, const std::string& hash,
                    const VerifyLimits& limits = kLimits) {
  VerifyResult result;
  result.outcome = VerifyOutcome::kOk;  // so a call that sets nothing shows
  result.attempts_remaining = -1;
  result.expires_at_ms = -1;
  Status s = storage->VerifyCode(user_id, hash, limits, &result);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return result;
}

VerifyOutcome VerifyOutcomeOf(Storage* storage, const std::string& user_id,
                              const std::string& hash) {
  return Verify(storage, user_id, hash).outcome;
}

int64_t Purge(Storage* storage, int64_t grace_ms) {
  int64_t purged = -1;
  Status s = storage->PurgeExpired(grace_ms, 3600 * 1000, &purged);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return purged;
}

// ---------------------------------------------------------------------------
// The contract

TEST_CASE("Storage: a verified code is consumed") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock)).ok());
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "123456")) == VerifyOutcome::kOk);
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "123456")) == VerifyOutcome::kNotFound);
    CHECK(VerifyOutcomeOf(storage, "nobody", HashOf("nobody", "1")) == VerifyOutcome::kNotFound);
  });
}

TEST_CASE("Storage: wrong codes count down, then every try is locked") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    const StoredCode code = CodeFor("abc", "123456", clock);
    REQUIRE(storage->PutCode(code).ok());
    const std::string wrong = HashOf("abc", "654321");
    for (int remaining : {2, 1, 0}) {
      VerifyResult r = Verify(storage, "abc", wrong);
      CHECK(r.outcome == VerifyOutcome::kInvalid);
      CHECK(r.attempts_remaining == remaining);
      CHECK(r.expires_at_ms == code.expires_at_ms);
    }
    VerifyResult locked = Verify(storage, "abc", wrong);
    CHECK(locked.outcome == VerifyOutcome::kLocked);
    CHECK(locked.expires_at_ms == code.expires_at_ms);
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "123456")) == VerifyOutcome::kLocked);
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "123456")) == VerifyOutcome::kLocked);
    // A higher limit shows the counter stopped at 3 while locked.
    VerifyResult r = Verify(storage, "abc", wrong, VerifyLimits{5, kGraceMs});
    CHECK(r.outcome == VerifyOutcome::kInvalid);
    CHECK(r.attempts_remaining == 1);
  });
}

TEST_CASE("Storage: expired codes answer kExpired until the grace period ends") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    const StoredCode code = CodeFor("abc", "123456", clock);
    REQUIRE(storage->PutCode(code).ok());
    const std::string right = HashOf("abc", "123456");
    clock->Advance(kExpiryMs - 1);
    CHECK(Purge(storage, kGraceMs) == 0);
    clock->Advance(1);
    VerifyResult expired = Verify(storage, "abc", right);
    CHECK(expired.outcome == VerifyOutcome::kExpired);
    CHECK(expired.expires_at_ms == code.expires_at_ms);
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "1")) == VerifyOutcome::kExpired);
    clock->Advance(kGraceMs - 1);
    CHECK(VerifyOutcomeOf(storage, "abc", right) == VerifyOutcome::kExpired);
    clock->Advance(1);
    CHECK(VerifyOutcomeOf(storage, "abc", right) == VerifyOutcome::kNotFound);
    // The row is gone: an expired row would be purged here.
    CHECK(Purge(storage, 0) == 0);
  });
}

TEST_CASE("Storage: an expired code stays until purged when never verified") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock)).ok());
    clock->Advance(kExpiryMs + kGraceMs);
    CHECK(Purge(storage, 0) == 1);
    CHECK(Purge(storage, 0) == 0);
  });
}

TEST_CASE("Storage: PutCode replaces the earlier code and resets attempts") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    REQUIRE(storage->PutCode(CodeFor("abc", "111111", clock)).ok());
    const std::string wrong = HashOf("abc", "999999");
    REQUIRE(Verify(storage, "abc", wrong).attempts_remaining == 2);
    REQUIRE(Verify(storage, "abc", wrong).attempts_remaining == 1);
    REQUIRE(storage->PutCode(CodeFor("abc", "222222", clock)).ok());
    VerifyResult old_code = Verify(storage, "abc", HashOf("abc", "111111"));
    CHECK(old_code.outcome == VerifyOutcome::kInvalid);
    CHECK(old_code.attempts_remaining == 2);
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "222222")) == VerifyOutcome::kOk);
  });
}

TEST_CASE("Storage: PutCode replaces an expired code with a fresh expiry") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    REQUIRE(storage->PutCode(CodeFor("abc", "111111", clock)).ok());
    clock->Advance(kExpiryMs);
    REQUIRE(VerifyOutcomeOf(storage, "abc", HashOf("abc", "111111")) == VerifyOutcome::kExpired);
    REQUIRE(storage->PutCode(CodeFor("abc", "222222", clock)).ok());
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "222222")) == VerifyOutcome::kOk);
  });
}

TEST_CASE("Storage: DeleteCode deletes only the matching hash") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    const std::string first = HashOf("abc", "111111");
    REQUIRE(storage->PutCode(CodeFor("abc", "111111", clock)).ok());
    CHECK(storage->DeleteCode("abc", HashOf("abc", "222222")).ok());
    CHECK(storage->DeleteCode("other", first).ok());
    CHECK(VerifyOutcomeOf(storage, "abc", first) == VerifyOutcome::kOk);

    REQUIRE(storage->PutCode(CodeFor("abc", "111111", clock)).ok());
    CHECK(storage->DeleteCode("abc", first).ok());
    CHECK(VerifyOutcomeOf(storage, "abc", first) == VerifyOutcome::kNotFound);
    CHECK(storage->DeleteCode("abc", first).ok());  // nothing left: still OK
  });
}

TEST_CASE("Storage: PurgeExpired counts what it removed") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    REQUIRE(storage->PutCode(CodeFor("a", "1", clock, 1000)).ok());
    REQUIRE(storage->PutCode(CodeFor("b", "2", clock, 5000)).ok());
    REQUIRE(storage->PutCode(CodeFor("c", "3", clock, 100000)).ok());
    CHECK(Purge(storage, 0) == 0);
    clock->Advance(5000);  // a is past, b exactly at its expiry
    CHECK(Purge(storage, 0) == 2);
    CHECK(VerifyOutcomeOf(storage, "b", HashOf("b", "2")) == VerifyOutcome::kNotFound);
    CHECK(VerifyOutcomeOf(storage, "c", HashOf("c", "3")) == VerifyOutcome::kOk);

    REQUIRE(storage->PutCode(CodeFor("d", "4", clock, 1000)).ok());
    clock->Advance(1999);
    CHECK(Purge(storage, 1000) == 0);  // expiry + grace is one ms away
    clock->Advance(1);
    CHECK(Purge(storage, 1000) == 1);
  });
}

TEST_CASE("Storage: user IDs are case-insensitive") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    REQUIRE(storage->PutCode(CodeFor("abc", "111111", clock)).ok());
    StoredCode upper = CodeFor("abc", "222222", clock);
    upper.user_id = "ABC";
    REQUIRE(storage->PutCode(upper).ok());  // replaces, not a second row
    CHECK(VerifyOutcomeOf(storage, "AbC", HashOf("abc", "111111")) == VerifyOutcome::kInvalid);
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "222222")) == VerifyOutcome::kOk);
    CHECK(VerifyOutcomeOf(storage, "ABC", HashOf("abc", "222222")) == VerifyOutcome::kNotFound);
  });
}

TEST_CASE("Storage: CheckWritable is OK on a healthy store") {
  ForEachBackend([](Storage* storage, FakeClock*) {
    Status s = storage->CheckWritable();
    CHECK_MESSAGE(s.ok(), s.ToString());
  });
}

TEST_CASE("Storage: CountActiveCodes counts unexpired codes only") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    int64_t n = -1;
    REQUIRE(storage->CountActiveCodes(&n).ok());
    CHECK(n == 0);
    REQUIRE(storage->PutCode(CodeFor("a", "111111", clock)).ok());
    REQUIRE(storage->PutCode(CodeFor("b", "222222", clock, 1000)).ok());
    REQUIRE(storage->PutCode(CodeFor("a", "333333", clock)).ok());  // replaces a's
    REQUIRE(storage->CountActiveCodes(&n).ok());
    CHECK(n == 2);
    clock->Advance(1000);  // b's code expires now
    REQUIRE(storage->CountActiveCodes(&n).ok());
    CHECK(n == 1);
  });
}

// ---------------------------------------------------------------------------
// The contract: send limits and the per-user failure cap

constexpr int64_t kHourMs = 3600 * 1000;

// Only the limit under test is on.
SendLimits OnlyLimit(SendLimit which, int cap) {
  SendLimits l;
  l.cooldown_ms = which == SendLimit::kCooldown ? cap : 0;
  l.per_user = which == SendLimit::kUser ? cap : 0;
  l.per_phone = which == SendLimit::kPhone ? cap : 0;
  l.per_ip = which == SendLimit::kIp ? cap : 0;
  l.global = which == SendLimit::kGlobal ? cap : 0;
  l.window_ms = kHourMs;
  return l;
}

SendDecision Reserve(Storage* storage, const SendRequest& request, const SendLimits& limits) {
  SendDecision d;
  d.allowed = !d.allowed;  // so a call that sets nothing shows
  d.retry_after_ms = -1;
  Status s = storage->ReserveSend(request, limits, &d);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return d;
}

TEST_CASE("Storage: the resend cooldown refuses until it has passed, then allows") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    const SendLimits limits = OnlyLimit(SendLimit::kCooldown, 30000);
    const SendRequest abc{"abc", "+11111111111", "10.0.0.1"};
    CHECK(Reserve(storage, abc, limits).allowed);
    clock->Advance(10000);
    SendDecision d = Reserve(storage, abc, limits);
    CHECK_FALSE(d.allowed);
    CHECK(d.limit == SendLimit::kCooldown);
    CHECK(d.retry_after_ms == 20000);
    // Another user is not held back; the same user in other case is.
    CHECK(Reserve(storage, {"def", "+12222222222", "10.0.0.1"}, limits).allowed);
    CHECK_FALSE(Reserve(storage, {"ABC", "+11111111111", "10.0.0.1"}, limits).allowed);
    clock->Advance(19999);
    CHECK_FALSE(Reserve(storage, abc, limits).allowed);
    clock->Advance(1);
    CHECK(Reserve(storage, abc, limits).allowed);
  });
}

// `cap` sends pass, the next is refused by `which` until the first send
// leaves the rolling hour; `vary` makes the requests differ in everything
// but the key under test.
void CheckCapInRollingHour(Storage* storage, FakeClock* clock, SendLimit which,
                           SendRequest (*vary)(int i)) {
  const int cap = 3;
  const SendLimits limits = OnlyLimit(which, cap);
  for (int i = 0; i < cap; i++) {
    CHECK(Reserve(storage, vary(i), limits).allowed);
    clock->Advance(60000);  // sends at 0, 1 and 2 minutes
  }
  SendDecision d = Reserve(storage, vary(cap), limits);
  CHECK_FALSE(d.allowed);
  CHECK(d.limit == which);
  CHECK(d.retry_after_ms == kHourMs - 3 * 60000);  // until the send at 0 is an hour old
  clock->Advance(d.retry_after_ms - 1);
  CHECK_FALSE(Reserve(storage, vary(cap + 1), limits).allowed);
  clock->Advance(1);
  CHECK(Reserve(storage, vary(cap + 2), limits).allowed);
  CHECK_FALSE(Reserve(storage, vary(cap + 3), limits).allowed);  // 1 and 2 min + now
}

TEST_CASE("Storage: per-user, per-phone, per-IP and global caps over a rolling hour") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    SUBCASE("per user") {
      CheckCapInRollingHour(storage, clock, SendLimit::kUser, [](int i) {
        return SendRequest{i % 2 ? "abc" : "ABC", "+1555000000" + std::to_string(i),
                           "10.0.0." + std::to_string(i)};
      });
    }
    SUBCASE("per phone") {
      CheckCapInRollingHour(storage, clock, SendLimit::kPhone, [](int i) {
        return SendRequest{"user" + std::to_string(i), "+15550000000",
                           "10.0.0." + std::to_string(i)};
      });
    }
    SUBCASE("per IP") {
      CheckCapInRollingHour(storage, clock, SendLimit::kIp, [](int i) {
        return SendRequest{"user" + std::to_string(i), "+1555000000" + std::to_string(i),
                           "2001:db8::1"};
      });
    }
    SUBCASE("global") {
      CheckCapInRollingHour(storage, clock, SendLimit::kGlobal, [](int i) {
        return SendRequest{"user" + std::to_string(i), "+1555000000" + std::to_string(i),
                           "10.0.0." + std::to_string(i)};
      });
    }
  });
}

TEST_CASE("Storage: a refused send records nothing; an empty client IP has no IP cap") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    SendLimits limits = OnlyLimit(SendLimit::kUser, 1);
    limits.per_ip = 2;
    CHECK(Reserve(storage, {"abc", "+11111111111", "10.0.0.1"}, limits).allowed);
    for (int i = 0; i < 5; i++) {
      CHECK_FALSE(Reserve(storage, {"abc", "+11111111111", "10.0.0.1"}, limits).allowed);
    }
    // The five refusals did not count against the IP: one more user passes.
    CHECK(Reserve(storage, {"def", "+12222222222", "10.0.0.1"}, limits).allowed);
    CHECK_FALSE(Reserve(storage, {"ghi", "+13333333333", "10.0.0.1"}, limits).allowed);
    for (const char* user : {"u1", "u2", "u3"}) {
      CHECK(Reserve(storage, {user, "+14444444444", ""}, limits).allowed);
    }
    clock->Advance(kHourMs);
    CHECK(Reserve(storage, {"abc", "+11111111111", "10.0.0.1"}, limits).allowed);
  });
}

TEST_CASE("Storage: ReserveSendAndPut stores the code only with an allowed send") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    const SendLimits limits = OnlyLimit(SendLimit::kUser, 1);
    SendDecision d;
    REQUIRE(storage
                ->ReserveSendAndPut({"abc", "+11111111111", "10.0.0.1"}, limits,
                                    CodeFor("abc", "111111", clock), &d)
                .ok());
    CHECK(d.allowed);
    // Refused by the cap: the earlier code is untouched, the new one absent.
    d = SendDecision();
    d.allowed = true;  // so a call that sets nothing shows
    REQUIRE(storage
                ->ReserveSendAndPut({"abc", "+11111111111", "10.0.0.1"}, limits,
                                    CodeFor("abc", "222222", clock), &d)
                .ok());
    CHECK_FALSE(d.allowed);
    CHECK(d.limit == SendLimit::kUser);
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "222222")) == VerifyOutcome::kInvalid);
    CHECK(VerifyOutcomeOf(storage, "abc", HashOf("abc", "111111")) == VerifyOutcome::kOk);
    // The allowed send counted like ReserveSend's: the next is refused.
    CHECK_FALSE(Reserve(storage, {"abc", "+11111111111", ""}, limits).allowed);
  });
}

TEST_CASE("Storage: retry_after covers every limit that was reached") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    SendLimits limits;
    limits.cooldown_ms = 30000;
    limits.per_user = 2;
    limits.per_phone = limits.per_ip = limits.global = 0;
    CHECK(Reserve(storage, {"abc", "+11111111111", ""}, limits).allowed);
    clock->Advance(30000);
    CHECK(Reserve(storage, {"abc", "+11111111111", ""}, limits).allowed);
    SendDecision d = Reserve(storage, {"abc", "+11111111111", ""}, limits);
    CHECK_FALSE(d.allowed);
    CHECK(d.limit == SendLimit::kCooldown);      // the first one checked
    CHECK(d.retry_after_ms == kHourMs - 30000);  // but the hourly cap lasts longer
  });
}

// Verify limits with the per-user failure cap on.
VerifyLimits WithFailureCap(int cap, int64_t window_ms = kHourMs) {
  VerifyLimits l = kLimits;
  l.max_failures = cap;
  l.failure_window_ms = window_ms;
  return l;
}

TEST_CASE("Storage: failed verifications across codes throttle the user for the window") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    const VerifyLimits limits = WithFailureCap(4);
    // Two codes, two wrong guesses each: a new code does not reset the count.
    for (int code = 0; code < 2; code++) {
      REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock)).ok());
      for (int i = 0; i < 2; i++) {
        CHECK(Verify(storage, "abc", HashOf("abc", "000000"), limits).outcome ==
              VerifyOutcome::kInvalid);
        clock->Advance(1000);
      }
    }
    REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock)).ok());
    VerifyResult r = Verify(storage, "abc", HashOf("abc", "123456"), limits);
    CHECK(r.outcome == VerifyOutcome::kThrottled);  // even the right code
    CHECK(r.retry_after_ms == kHourMs - 4000);
    CHECK(Verify(storage, "other", HashOf("other", "1"), limits).outcome ==
          VerifyOutcome::kNotFound);  // other users are not affected
    clock->Advance(r.retry_after_ms - 1);
    CHECK(Verify(storage, "ABC", HashOf("abc", "123456"), limits).outcome ==
          VerifyOutcome::kThrottled);
    clock->Advance(1);  // the first failure has left the window
    REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock)).ok());
    CHECK(Verify(storage, "abc", HashOf("abc", "123456"), limits).outcome == VerifyOutcome::kOk);
  });
}

TEST_CASE("Storage: a successful verification clears the user's failures") {
  ForEachBackend([](Storage* storage, FakeClock* clock) {
    const VerifyLimits limits = WithFailureCap(3);
    for (int round = 0; round < 3; round++) {
      REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock)).ok());
      for (int i = 0; i < 2; i++) {
        CHECK(Verify(storage, "abc", HashOf("abc", "000000"), limits).outcome ==
              VerifyOutcome::kInvalid);
      }
      CHECK(Verify(storage, "abc", HashOf("abc", "123456"), limits).outcome == VerifyOutcome::kOk);
    }
    // Without the success in between, the third failure reaches the cap.
    REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock)).ok());
    for (int i = 0; i < 3; i++) Verify(storage, "abc", HashOf("abc", "000000"), limits);
    CHECK(Verify(storage, "abc", HashOf("abc", "123456"), limits).outcome ==
          VerifyOutcome::kThrottled);
  });
}

TEST_CASE("Storage: PurgeExpired drops history older than history_ms, and only that") {
  ForEachBackend(
      [](Storage* storage, FakeClock* clock) {
        const SendLimits limits = OnlyLimit(SendLimit::kUser, 1);
        const VerifyLimits vlimits = WithFailureCap(1, 10 * kHourMs);
        CHECK(Reserve(storage, {"abc", "+11111111111", ""}, limits).allowed);
        REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock, 10 * kHourMs)).ok());
        Verify(storage, "abc", HashOf("abc", "000000"), vlimits);
        clock->Advance(1000);
        int64_t purged = -1;
        // A window longer than history_ms would still count the purged rows:
        // purging with history 1000 ms makes both limits forget.
        REQUIRE(storage->PurgeExpired(0, 1001, &purged).ok());
        CHECK(Verify(storage, "abc", HashOf("abc", "000000"), vlimits).outcome ==
              VerifyOutcome::kThrottled);
        CHECK_FALSE(
            Reserve(storage, {"abc", "+11111111111", ""}, OnlyLimit(SendLimit::kUser, 1)).allowed);
        REQUIRE(storage->PurgeExpired(0, 1000, &purged).ok());
        CHECK(purged == 0);  // history rows are not counted as codes
        CHECK(Verify(storage, "abc", HashOf("abc", "000000"), vlimits).outcome ==
              VerifyOutcome::kInvalid);
        clock->Advance(1);
        CHECK(
            Reserve(storage, {"abc", "+11111111111", ""}, OnlyLimit(SendLimit::kUser, 1)).allowed);
      },
      /*only_purging_history=*/true);
}

// ---------------------------------------------------------------------------
// The rules (otp/rules.h): one table of cases, each run against the pure
// functions and against every backend. A case builds a state, applies one
// operation at `now`, then a second one that shows the state it left.

constexpr int64_t kT0Offset = 0;  // the state is built at the clock's start
const VerifyLimits kRuleLimits{3, kGraceMs, 5, kHourMs};

struct VerifyCase {
  const char* name;
  int extra_failures;  // failed verifications on earlier codes, all at T0
  bool has_code;       // a code put at T0 ...
  int64_t expires_in;  // ... expiring at T0 + this
  int attempts;        // ... with this many wrong guesses, at T0
  int64_t now;         // the verify happens at T0 + this
  bool right;          // with the right code (else a wrong one)
  bool right_after;    // then a second verify at the same time
  VerifyOutcome want;
  int want_remaining;  // for kInvalid
  VerifyOutcome want_after;
};

const VerifyCase kVerifyCases[] = {
    {"no code", 0, false, 0, 0, 1, true, true, VerifyOutcome::kNotFound, 0,
     VerifyOutcome::kNotFound},
    {"right code is consumed", 0, true, kExpiryMs, 0, 1, true, true, VerifyOutcome::kOk, 0,
     VerifyOutcome::kNotFound},
    {"wrong code counts one attempt", 0, true, kExpiryMs, 0, 1, false, true,
     VerifyOutcome::kInvalid, 2, VerifyOutcome::kOk},
    {"last attempt locks", 0, true, kExpiryMs, 2, 1, false, true, VerifyOutcome::kInvalid, 0,
     VerifyOutcome::kLocked},
    {"locked takes no guess", 0, true, kExpiryMs, 3, 1, true, true, VerifyOutcome::kLocked, 0,
     VerifyOutcome::kLocked},
    {"expired at expiry", 0, true, kExpiryMs, 0, kExpiryMs, true, true, VerifyOutcome::kExpired, 0,
     VerifyOutcome::kExpired},
    {"expired before locked", 0, true, kExpiryMs, 3, kExpiryMs + 1, true, true,
     VerifyOutcome::kExpired, 0, VerifyOutcome::kExpired},
    {"beyond grace is removed", 0, true, kExpiryMs, 0, kExpiryMs + kGraceMs, true, true,
     VerifyOutcome::kNotFound, 0, VerifyOutcome::kNotFound},
    {"five failures throttle", 5, false, 0, 0, 1000, true, true, VerifyOutcome::kThrottled, 0,
     VerifyOutcome::kThrottled},
    {"throttle before the code", 3, true, kExpiryMs, 2, 1, true, true, VerifyOutcome::kThrottled, 0,
     VerifyOutcome::kThrottled},
    {"the fifth failure throttles", 4, true, kExpiryMs, 0, 1, false, true, VerifyOutcome::kInvalid,
     2, VerifyOutcome::kThrottled},
    {"failures leave the window", 5, true, 2 * kHourMs, 0, kHourMs, true, true, VerifyOutcome::kOk,
     0, VerifyOutcome::kNotFound},
    {"one failure less still verifies", 4, true, kExpiryMs, 0, 1, true, false, VerifyOutcome::kOk,
     0, VerifyOutcome::kNotFound},
};

// The pure model: a code and the failure times.
struct VerifyModel {
  CodeState code;
  std::vector<int64_t> failures;

  VerifyResult Verify(const std::string& guess, int64_t now) {
    VerifyState state;
    state.code = code;
    std::vector<int64_t> recent = failures;
    std::sort(recent.rbegin(), recent.rend());
    if (kRuleLimits.max_failures > 0 && recent.size() >= size_t(kRuleLimits.max_failures)) {
      state.nth_failure_at_ms = recent[size_t(kRuleLimits.max_failures) - 1];
    }
    const VerifyDecision d = DecideVerify(state, guess, now, kRuleLimits);
    code = ApplyVerifyEffect(code, d.effect);
    if (d.effect == VerifyEffect::kConsume) failures.clear();
    if (d.effect == VerifyEffect::kCountFailure) failures.push_back(now);
    return d.result;
  }
};

// Builds the case's state in `storage` (whose clock is at T0).
void BuildVerifyState(const VerifyCase& c, Storage* storage, Clock* clock) {
  const std::string old_hash = HashOf("abc", "000000");
  for (int i = 0; i < c.extra_failures; i++) {
    if (i % 3 == 0) REQUIRE(storage->PutCode(CodeFor("abc", "000000", clock)).ok());
    REQUIRE(Verify(storage, "abc", HashOf("abc", "999999"), kRuleLimits).outcome ==
            VerifyOutcome::kInvalid);
  }
  REQUIRE(storage->DeleteCode("abc", old_hash).ok());
  if (!c.has_code) return;
  REQUIRE(storage->PutCode(CodeFor("abc", "123456", clock, c.expires_in)).ok());
  for (int i = 0; i < c.attempts; i++) {
    REQUIRE(Verify(storage, "abc", HashOf("abc", "999999"), kRuleLimits).outcome ==
            VerifyOutcome::kInvalid);
  }
}

void CheckSameResult(const VerifyResult& got, const VerifyResult& want) {
  CHECK(got.outcome == want.outcome);
  CHECK(
      got.attempts_remaining ==
      (want.outcome == VerifyOutcome::kInvalid ? want.attempts_remaining : got.attempts_remaining));
  if (want.outcome == VerifyOutcome::kThrottled) CHECK(got.retry_after_ms == want.retry_after_ms);
  if (want.outcome == VerifyOutcome::kInvalid || want.outcome == VerifyOutcome::kLocked ||
      want.outcome == VerifyOutcome::kExpired) {
    CHECK(got.expires_at_ms == want.expires_at_ms);
  }
}

TEST_CASE("Rules: every verify case gives the same answers in the rules and every store") {
  const std::string right = HashOf("abc", "123456");
  const std::string wrong = HashOf("abc", "999999");
  for (const VerifyCase& c : kVerifyCases) {
    INFO("case: ", std::string(c.name));
    const int64_t t0 = FakeClock().NowMillis() + kT0Offset;
    VerifyModel model;
    if (c.has_code) model.code = CodeState{true, right, t0 + c.expires_in, c.attempts};
    for (int i = 0; i < c.extra_failures + c.attempts; i++) model.failures.push_back(t0);
    const VerifyResult first = model.Verify(c.right ? right : wrong, t0 + c.now);
    const VerifyResult second = model.Verify(c.right_after ? right : wrong, t0 + c.now);
    // The rules themselves against the table.
    REQUIRE(first.outcome == c.want);
    if (c.want == VerifyOutcome::kInvalid) CHECK(first.attempts_remaining == c.want_remaining);
    REQUIRE(second.outcome == c.want_after);
    if (c.want == VerifyOutcome::kThrottled) CHECK(first.retry_after_ms == kHourMs - c.now);
    ForEachBackend([&](Storage* storage, FakeClock* clock) {
      REQUIRE(clock->NowMillis() == t0);
      BuildVerifyState(c, storage, clock);
      clock->Advance(c.now);
      CheckSameResult(Verify(storage, "abc", c.right ? right : wrong, kRuleLimits), first);
      CheckSameResult(Verify(storage, "abc", c.right_after ? right : wrong, kRuleLimits), second);
    });
  }
}

struct PriorSend {
  SendRequest request;
  int64_t at;  // T0 + this (<= 0)
};

struct SendCase {
  const char* name;
  std::vector<PriorSend> prior;
  SendRequest request;  // at T0, then again at T0
  bool want_allowed;
  SendLimit want_limit;
  int64_t want_retry_ms;
  bool want_allowed_after;
};

const SendLimits kRuleSendLimits{30000, 3, 4, 5, 8, kHourMs};
const SendRequest kU{"u", "+15550000001", "10.0.0.1"};

SendRequest Other(int i, const std::string& phone = "", const std::string& ip = "") {
  return SendRequest{"o" + std::to_string(i),
                     phone.empty() ? "+1555100000" + std::to_string(i) : phone,
                     ip.empty() ? "10.1.0." + std::to_string(i) : ip};
}

SendRequest On(SendRequest request, Channel channel) {
  request.channel = channel;
  return request;
}

const std::vector<SendCase>& SendCases() {
  static const std::vector<SendCase> cases = {
      {"fresh", {}, kU, true, SendLimit::kNone, 0, false},
      {"cooldown passed", {{kU, -30000}}, kU, true, SendLimit::kNone, 0, false},
      {"within the cooldown", {{kU, -29999}}, kU, false, SendLimit::kCooldown, 1, false},
      {"per-user cap",
       {{kU, -3000000}, {kU, -2000000}, {kU, -1000000}},
       kU,
       false,
       SendLimit::kUser,
       600000,
       false},
      {"per-user cap leaves the window",
       {{kU, -3600000}, {kU, -2000000}, {kU, -1000000}},
       kU,
       true,
       SendLimit::kNone,
       0,
       false},
      {"per-phone cap",
       {{Other(1, kU.phone), -400},
        {Other(2, kU.phone), -300},
        {Other(3, kU.phone), -200},
        {Other(4, kU.phone), -100}},
       kU,
       false,
       SendLimit::kPhone,
       kHourMs - 400,
       false},
      {"per-IP cap",
       {{Other(1, "", kU.client_ip), -500},
        {Other(2, "", kU.client_ip), -400},
        {Other(3, "", kU.client_ip), -300},
        {Other(4, "", kU.client_ip), -200},
        {Other(5, "", kU.client_ip), -100}},
       kU,
       false,
       SendLimit::kIp,
       kHourMs - 500,
       false},
      {"no IP, no IP cap",
       {{Other(1, "", kU.client_ip), -500},
        {Other(2, "", kU.client_ip), -400},
        {Other(3, "", kU.client_ip), -300},
        {Other(4, "", kU.client_ip), -200},
        {Other(5, "", kU.client_ip), -100}},
       SendRequest{"u", kU.phone, ""},
       true,
       SendLimit::kNone,
       0,
       false},
      {"global cap",
       {{Other(1), -800},
        {Other(2), -700},
        {Other(3), -600},
        {Other(4), -500},
        {Other(5), -400},
        {Other(6), -300},
        {Other(7), -200},
        {Other(8), -100}},
       kU,
       false,
       SendLimit::kGlobal,
       kHourMs - 800,
       false},
      {"the global cap counts only its own channel",
       {{On(Other(1), Channel::kVoice), -800},
        {On(Other(2), Channel::kVoice), -700},
        {On(Other(3), Channel::kVoice), -600},
        {On(Other(4), Channel::kVoice), -500},
        {On(Other(5), Channel::kWhatsApp), -400},
        {On(Other(6), Channel::kWhatsApp), -300},
        {On(Other(7), Channel::kWhatsApp), -200},
        {On(Other(8), Channel::kWhatsApp), -100}},
       kU,
       true,
       SendLimit::kNone,
       0,
       false},
      {"a channel's global cap",
       {{On(Other(1), Channel::kVoice), -800},
        {On(Other(2), Channel::kVoice), -700},
        {On(Other(3), Channel::kVoice), -600},
        {On(Other(4), Channel::kVoice), -500},
        {On(Other(5), Channel::kVoice), -400},
        {On(Other(6), Channel::kVoice), -300},
        {On(Other(7), Channel::kVoice), -200},
        {On(Other(8), Channel::kVoice), -100}},
       On(kU, Channel::kVoice),
       false,
       SendLimit::kGlobal,
       kHourMs - 800,
       false},
      {"the per-user cap counts every channel",
       {{kU, -3000000},
        {On(kU, Channel::kVoice), -2000000},
        {On(kU, Channel::kWhatsApp), -1000000}},
       kU,
       false,
       SendLimit::kUser,
       600000,
       false},
      {"the cooldown counts every channel",
       {{On(kU, Channel::kVoice), -29999}},
       kU,
       false,
       SendLimit::kCooldown,
       1,
       false},
      {"every limit counts for the retry time",
       {{kU, -3000000}, {kU, -2000000}, {kU, -10000}},
       kU,
       false,
       SendLimit::kCooldown,
       600000,
       false},
  };
  return cases;
}

struct SendModel {
  std::vector<PriorSend> history;

  // The n-th most recent send matching `match`, in (now - window, now].
  template <typename Match>
  std::optional<int64_t> Nth(int n, int64_t window, int64_t now, Match match) const {
    if (n <= 0 || window <= 0) return std::nullopt;
    std::vector<int64_t> at;
    for (const PriorSend& p : history) {
      if (match(p.request) && p.at > now - window) at.push_back(p.at);
    }
    std::sort(at.rbegin(), at.rend());
    if (at.size() < size_t(n)) return std::nullopt;
    return at[size_t(n) - 1];
  }

  SendDecision Reserve(const SendRequest& r, int64_t now) {
    const SendLimits& l = kRuleSendLimits;
    SendState state;
    state.last_of_user =
        Nth(1, l.cooldown_ms, now, [&](auto& p) { return p.user_id == r.user_id; });
    state.nth_of_user =
        Nth(l.per_user, l.window_ms, now, [&](auto& p) { return p.user_id == r.user_id; });
    state.nth_to_phone =
        Nth(l.per_phone, l.window_ms, now, [&](auto& p) { return p.phone == r.phone; });
    if (!r.client_ip.empty()) {
      state.nth_from_ip =
          Nth(l.per_ip, l.window_ms, now, [&](auto& p) { return p.client_ip == r.client_ip; });
    }
    state.nth_overall =
        Nth(l.global, l.window_ms, now, [&](auto& p) { return p.channel == r.channel; });
    const SendDecision d = DecideSend(state, !r.client_ip.empty(), now, l);
    if (d.allowed) history.push_back({r, now});
    return d;
  }
};

void CheckSameDecision(const SendDecision& got, const SendDecision& want) {
  CHECK(got.allowed == want.allowed);
  if (!want.allowed) {
    CHECK(got.limit == want.limit);
    CHECK(got.retry_after_ms == want.retry_after_ms);
  }
}

TEST_CASE("Rules: every send case gives the same answers in the rules and every store") {
  for (const SendCase& c : SendCases()) {
    INFO("case: ", std::string(c.name));
    SendModel model;
    for (const PriorSend& p : c.prior) {
      REQUIRE(model.Reserve(p.request, p.at).allowed);  // the history is all allowed
    }
    const SendDecision first = model.Reserve(c.request, 0);
    const SendDecision second = model.Reserve(c.request, 0);
    REQUIRE(first.allowed == c.want_allowed);
    if (!c.want_allowed) {
      CHECK(first.limit == c.want_limit);
      CHECK(first.retry_after_ms == c.want_retry_ms);
    }
    REQUIRE(second.allowed == c.want_allowed_after);
    ForEachBackend([&](Storage* storage, FakeClock* clock) {
      const int64_t t0 = clock->NowMillis();
      for (const PriorSend& p : c.prior) {
        clock->Advance(t0 + p.at - clock->NowMillis());
        REQUIRE(Reserve(storage, p.request, kRuleSendLimits).allowed);
      }
      clock->Advance(t0 - clock->NowMillis());
      CheckSameDecision(Reserve(storage, c.request, kRuleSendLimits), first);
      CheckSameDecision(Reserve(storage, c.request, kRuleSendLimits), second);
    });
  }
}

// ---------------------------------------------------------------------------
// SQLite: exact attempt counting under concurrency

struct Tally {
  std::atomic<int> invalid{0};
  std::atomic<int> locked{0};
  std::atomic<int> other{0};  // any other outcome, or an error
  std::atomic<int> remaining_sum{0};

  void Add(const Status& s, const VerifyResult& r) {
    if (!s.ok()) {
      other++;
    } else if (r.outcome == VerifyOutcome::kInvalid) {
      invalid++;
      remaining_sum += r.attempts_remaining;
    } else if (r.outcome == VerifyOutcome::kLocked) {
      locked++;
    } else {
      other++;
    }
  }
};

// `threads` threads each guess `wrong` once on storages[i % size]. Each
// first opens its connection (a verify of a user without a code), then all
// are released together, so the guesses really overlap.
void GuessInParallel(const std::vector<Storage*>& storages, int threads, const std::string& wrong,
                     Tally* tally) {
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> workers;
  for (int i = 0; i < threads; i++) {
    Storage* storage = storages[i % storages.size()];
    workers.emplace_back([storage, &ready, &go, &wrong, tally] {
      VerifyResult r;
      Status warm = storage->VerifyCode("warm-up", wrong, kLimits, &r);
      ready++;
      while (!go.load()) std::this_thread::yield();
      Status s = storage->VerifyCode("abc", wrong, kLimits, &r);
      tally->Add(warm.ok() ? s : warm, r);
    });
  }
  while (ready.load() < threads) std::this_thread::yield();
  go = true;
  for (std::thread& t : workers) t.join();
}

void CheckExactlyThreeInvalid(const Tally& tally, int guesses) {
  CHECK(tally.other.load() == 0);
  CHECK(tally.invalid.load() == 3);
  CHECK(tally.remaining_sum.load() == 2 + 1 + 0);
  CHECK(tally.locked.load() == guesses - 3);
}

struct SqliteStore {
  TempDir dir;
  FakeClock clock;
  std::shared_ptr<SqliteDb> db;
  std::unique_ptr<Storage> storage;

  SqliteStore() {
    SqliteOptions options;
    options.path = dir.File("otpd.db");
    REQUIRE(OpenSqliteDb(options, &db).ok());
    REQUIRE(NewSqliteStorage(db, &clock, &storage).ok());
  }
};

TEST_CASE("SqliteStorage: 64 parallel wrong guesses take exactly 3 attempts" *
          doctest::test_suite("tsan")) {
  SqliteStore store;
  for (int round = 0; round < 3; round++) {  // races are luck: give them chances
    INFO("round ", round);
    REQUIRE(store.storage->PutCode(CodeFor("abc", "123456", &store.clock)).ok());
    Tally tally;
    GuessInParallel({store.storage.get()}, 64, HashOf("abc", "000000"), &tally);
    CheckExactlyThreeInvalid(tally, 64);
    CHECK(VerifyOutcomeOf(store.storage.get(), "abc", HashOf("abc", "123456")) ==
          VerifyOutcome::kLocked);
  }
}

// 32 sends to one user at once, alternating between `a` and `b`, under a cap
// of 5: exactly 5 pass.
void CheckParallelSendsKeepTheCap(Storage* a, Storage* b) {
  const SendLimits limits = OnlyLimit(SendLimit::kUser, 5);
  std::atomic<int> allowed{0}, refused{0}, failed{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> workers;
  for (int i = 0; i < 32; i++) {
    Storage* storage = i % 2 ? b : a;
    workers.emplace_back([&, storage] {
      while (!go.load()) std::this_thread::yield();
      SendDecision d;
      Status s = storage->ReserveSend({"abc", "+11111111111", ""}, limits, &d);
      (!s.ok() ? failed : d.allowed ? allowed : refused)++;
    });
  }
  go = true;
  for (std::thread& t : workers) t.join();
  CHECK(failed.load() == 0);
  CHECK(allowed.load() == 5);
  CHECK(refused.load() == 27);
}

TEST_CASE("SqliteStorage: 32 parallel sends on two handles never exceed the cap" *
          doctest::test_suite("tsan")) {
  SqliteStore store;
  std::shared_ptr<SqliteDb> second_db;
  REQUIRE(OpenSqliteDb(store.db->options(), &second_db).ok());
  std::unique_ptr<Storage> second;
  REQUIRE(NewSqliteStorage(second_db, &store.clock, &second).ok());
  CheckParallelSendsKeepTheCap(store.storage.get(), second.get());
}

TEST_CASE("SqliteStorage: two handles on one file count attempts exactly" *
          doctest::test_suite("tsan")) {
  SqliteStore store;
  std::shared_ptr<SqliteDb> second_db;
  REQUIRE(OpenSqliteDb(store.db->options(), &second_db).ok());
  std::unique_ptr<Storage> second;
  REQUIRE(NewSqliteStorage(second_db, &store.clock, &second).ok());
  for (int round = 0; round < 3; round++) {
    INFO("round ", round);
    REQUIRE(store.storage->PutCode(CodeFor("abc", "123456", &store.clock)).ok());
    Tally tally;
    GuessInParallel({store.storage.get(), second.get()}, 64, HashOf("abc", "000000"), &tally);
    CheckExactlyThreeInvalid(tally, 64);
    CHECK(VerifyOutcomeOf(second.get(), "abc", HashOf("abc", "123456")) == VerifyOutcome::kLocked);
  }
}

// ---------------------------------------------------------------------------
// SQLite: a second process

// A pipe whose ends close with the object, so a child waiting on it sees EOF
// when the parent's test fails early.
struct Pipe {
  int fds[2] = {-1, -1};
  Pipe() { REQUIRE(pipe(fds) == 0); }
  ~Pipe() {
    CloseRead();
    CloseWrite();
  }
  void CloseRead() { Close(0); }
  void CloseWrite() { Close(1); }
  void Close(int i) {
    if (fds[i] >= 0) close(fds[i]);
    fds[i] = -1;
  }
};

// The child: waits for the go byte, opens its own handle on `path`, guesses
// `guesses` times and writes {invalid, locked, other} back. Never returns.
[[noreturn]] void GuessInChild(const std::string& path, int guesses, const std::string& wrong,
                               Pipe* go, Pipe* result) {
  go->CloseWrite();
  result->CloseRead();
  char byte;
  if (read(go->fds[0], &byte, 1) != 1) _exit(2);
  FakeClock clock;
  SqliteOptions options;
  options.path = path;
  std::shared_ptr<SqliteDb> db;
  std::unique_ptr<Storage> storage;
  if (!OpenSqliteDb(options, &db).ok() || !NewSqliteStorage(db, &clock, &storage).ok()) _exit(3);
  int counts[3] = {0, 0, 0};
  for (int i = 0; i < guesses; i++) {
    VerifyResult r;
    Status s = storage->VerifyCode("abc", wrong, kLimits, &r);
    if (s.ok() && r.outcome == VerifyOutcome::kInvalid) {
      counts[0]++;
    } else if (s.ok() && r.outcome == VerifyOutcome::kLocked) {
      counts[1]++;
    } else {
      counts[2]++;
    }
  }
  bool sent = write(result->fds[1], counts, sizeof counts) == static_cast<ssize_t>(sizeof counts);
  _exit(sent ? 0 : 4);
}

TEST_CASE("SqliteStorage: a forked second process counts attempts exactly" *
          doctest::test_suite("tsan")) {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  const std::string wrong = HashOf("abc", "000000");
  Pipe go, result;
  // Fork before this process opens the file: SQLite's per-process lock
  // bookkeeping must not be inherited by the child. Flush first, or the
  // child's copy of buffered output could be written twice.
  std::cout.flush();
  std::fflush(nullptr);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) GuessInChild(path, 32, wrong, &go, &result);
  go.CloseRead();
  result.CloseWrite();

  FakeClock clock;
  SqliteOptions options;
  options.path = path;
  std::shared_ptr<SqliteDb> db;
  std::unique_ptr<Storage> storage;
  Status opened = OpenSqliteDb(options, &db);
  if (opened.ok()) opened = NewSqliteStorage(db, &clock, &storage);
  if (opened.ok()) opened = storage->PutCode(CodeFor("abc", "123456", &clock));
  if (opened.ok()) REQUIRE(write(go.fds[1], "g", 1) == 1);
  go.CloseWrite();  // on failure the child sees EOF and exits
  Tally tally;
  if (opened.ok()) GuessInParallel({storage.get()}, 32, wrong, &tally);

  int counts[3] = {-1, -1, -1};
  const bool got =
      read(result.fds[0], counts, sizeof counts) == static_cast<ssize_t>(sizeof counts);
  int wstatus = 0;
  REQUIRE(waitpid(child, &wstatus, 0) == child);
  REQUIRE_MESSAGE(opened.ok(), opened.ToString());
  REQUIRE(got);
  CHECK(WIFEXITED(wstatus));
  CHECK(WEXITSTATUS(wstatus) == 0);
  CHECK(counts[2] == 0);
  CHECK(tally.other.load() == 0);
  CHECK(counts[0] + tally.invalid.load() == 3);
  CHECK(counts[1] + tally.locked.load() == 64 - 3);
  CHECK(VerifyOutcomeOf(storage.get(), "abc", HashOf("abc", "123456")) == VerifyOutcome::kLocked);
}

TEST_CASE(
    "SqliteStorage: writes behind the request run in the store's batches, each undone alone") {
  TempDir dir;
  FakeClock clock;
  SqliteOptions options;
  options.path = dir.File("otpd.db");
  options.pool_size = 1;
  options.clock = &clock;  // an exhausted pool answers Busy at once
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  std::unique_ptr<Storage> storage;
  REQUIRE(NewSqliteStorage(db, &clock, &storage).ok());
  auto insert = [](const char* data, bool fail) {
    return [data, fail](SqliteConnection* conn) {
      SqliteStatement stmt;
      Status s = conn->Prepare("INSERT INTO write_probe (data) VALUES (?1)", &stmt);
      if (s.ok()) {
        stmt.BindText(1, data);
        s = stmt.Run();
      }
      return s.ok() && fail ? Status::IOError("the body fails after its insert") : s;
    };
  };
  auto probes = [&] {
    SqliteLease lease;
    REQUIRE(db->Acquire(&lease).ok());
    SqliteStatement stmt;
    REQUIRE(lease->Prepare("SELECT group_concat(data, ',') FROM write_probe", &stmt).ok());
    bool row = false;
    REQUIRE(stmt.Step(&row).ok());
    return row ? stmt.ColumnText(0) : std::string();
  };
  {
    // The only pooled connection is taken: only the store's writer can run them.
    SqliteLease held;
    REQUIRE(db->Acquire(&held).ok());
    CHECK(db->WriteBehind(insert("kept", false)).ok());
    Status failed = db->WriteBehind(insert("undone", true));
    CHECK(failed.code() == Status::Code::kIOError);
    // The store's own decisions in the same stream still commit.
    REQUIRE(storage->PutCode(CodeFor("abc", "123456", &clock)).ok());
    CHECK(VerifyOutcomeOf(storage.get(), "abc", HashOf("abc", "123456")) == VerifyOutcome::kOk);
  }
  CHECK(probes() == "kept");
  storage.reset();
  // Without a store, on a pooled connection of their own.
  {
    SqliteLease held;
    REQUIRE(db->Acquire(&held).ok());
    CHECK(db->WriteBehind(insert("late", false)).code() == Status::Code::kBusy);
  }
  CHECK(db->WriteBehind(insert("late", false)).ok());
  CHECK(probes() == "kept,late");
}

TEST_CASE("SqliteStorage: audit records written behind parallel verifies all land, exactly" *
          doctest::test_suite("tsan")) {
  SqliteStore store;
  std::unique_ptr<AuditLog> audit;
  REQUIRE(NewSqliteAuditLog(store.db, &store.clock, &audit).ok());
  constexpr int kThreads = 8;
  constexpr int kRounds = 50;
  std::atomic<int> verified{0}, recorded{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; t++) {
    threads.emplace_back([&, t] {
      const std::string user = "t" + std::to_string(t);
      for (int i = 0; i < kRounds; i++) {
        if (!store.storage->PutCode(CodeFor(user, "123456", &store.clock)).ok()) return;
        if (VerifyOutcomeOf(store.storage.get(), user, HashOf(user, "123456")) ==
            VerifyOutcome::kOk) {
          verified++;
        }
        if (audit->Record(AuditEvent{-1, user, "+1*******111", "", "verify", "ok"}).ok()) {
          recorded++;
        }
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  CHECK(verified.load() == kThreads * kRounds);
  CHECK(recorded.load() == kThreads * kRounds);
  std::vector<AuditEvent> events;
  REQUIRE(audit->Query(AuditQuery{"", 0, 100000}, &events).ok());  // flushes first
  CHECK(events.size() == static_cast<size_t>(kThreads * kRounds));
  REQUIRE(audit->Query(AuditQuery{"t3", 0, 100000}, &events).ok());
  CHECK(events.size() == static_cast<size_t>(kRounds));
}

// ---------------------------------------------------------------------------
// SQLite: CheckWritable really writes

TEST_CASE("SqliteStorage: CheckWritable fails when a write fails") {
  SqliteStore store;
  REQUIRE(store.storage->CheckWritable().ok());
  SqliteLease lease;
  REQUIRE(store.db->Acquire(&lease).ok());
  SqliteConnection* conn = lease.get();
  // A BEGIN/ROLLBACK probe would pass this; a real write does not.
  REQUIRE(conn->Exec("CREATE TRIGGER no_update BEFORE UPDATE ON health"
                     " BEGIN SELECT RAISE(ABORT, 'writes refused'); END;"
                     "CREATE TRIGGER no_insert BEFORE INSERT ON health"
                     " BEGIN SELECT RAISE(ABORT, 'writes refused'); END;")
              .ok());
  Status s = store.storage->CheckWritable();
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("writes refused") != std::string::npos);
}

TEST_CASE("SqliteStorage: CheckWritable fails when the file is gone") {
  SqliteStore store;
  REQUIRE(store.storage->CheckWritable().ok());
  REQUIRE(unlink(store.db->options().path.c_str()) == 0);
  Status s = store.storage->CheckWritable();
  CHECK(s.code() == Status::Code::kIOError);
  CHECK(s.message().find(store.db->options().path) != std::string::npos);
}

TEST_CASE("SqliteStorage: a store with another secret fingerprint is refused") {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.File("otpd.db");
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  FakeClock clock;
  std::unique_ptr<Storage> first;
  REQUIRE(NewSqliteStorage(db, &clock, SqliteStorageOptions{"fingerprint-a"}, &first).ok());
  std::unique_ptr<Storage> other;
  Status s = NewSqliteStorage(db, &clock, SqliteStorageOptions{"fingerprint-b"}, &other);
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message().find("another secret") != std::string::npos);
  CHECK(s.message().find("fingerprint-") == std::string::npos);
  CHECK(other == nullptr);
  // The same secret again, and a store that brings none, are welcome.
  std::unique_ptr<Storage> same;
  CHECK(NewSqliteStorage(db, &clock, SqliteStorageOptions{"fingerprint-a"}, &same).ok());
  std::unique_ptr<Storage> unchecked;
  CHECK(NewSqliteStorage(db, &clock, &unchecked).ok());
  // The command the message gives makes the file take a new secret.
  SqliteLease lease;
  REQUIRE(db->Acquire(&lease).ok());
  REQUIRE(
      lease->Exec("DELETE FROM otps; DELETE FROM settings WHERE key = 'secret_fingerprint'").ok());
  lease.Reset();
  CHECK(NewSqliteStorage(db, &clock, SqliteStorageOptions{"fingerprint-b"}, &other).ok());
}

TEST_CASE("SqliteStorage: a full database fails CheckWritable until a write commits again") {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.File("otpd.db");
  options.max_page_count = 48;  // a disk that fills after a few hundred codes
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  FakeClock clock;
  std::unique_ptr<Storage> storage;
  REQUIRE(NewSqliteStorage(db, &clock, &storage).ok());
  REQUIRE(storage->CheckWritable().ok());
  Status put;
  int stored = 0;
  for (; stored < 100000; stored++) {
    put = storage->PutCode(CodeFor("user" + std::to_string(stored), "123456", &clock));
    if (!put.ok()) break;
  }
  REQUIRE(stored > 0);
  REQUIRE(put.code() == Status::Code::kIOError);
  // The health row's upsert alone would still fit; readiness must not say so.
  Status ready = storage->CheckWritable();
  CHECK(ready.code() == Status::Code::kIOError);
  CHECK(ready.message().find("full") != std::string::npos);
  CHECK(storage->CheckWritable().code() == Status::Code::kIOError);
  // Room again (the codes expire and are purged): the purge's commit clears it.
  clock.Advance(kExpiryMs + kGraceMs);
  int64_t purged = 0;
  REQUIRE(storage->PurgeExpired(kGraceMs, kHourMs, &purged).ok());
  CHECK(purged == stored);
  CHECK(storage->CheckWritable().ok());
  CHECK(storage->PutCode(CodeFor("again", "123456", &clock)).ok());
}

TEST_CASE("SqliteStorage: writes to a removed or replaced database file are refused") {
  for (const bool replace : {false, true}) {
    INFO("replaced: ", replace);
    SqliteStore store;
    const std::string path = store.db->options().path;
    REQUIRE(store.storage->PutCode(CodeFor("abc", "123456", &store.clock)).ok());
    if (replace) {
      FILE* other = fopen((path + ".new").c_str(), "w");
      REQUIRE(other != nullptr);
      fclose(other);
      REQUIRE(rename((path + ".new").c_str(), path.c_str()) == 0);
    } else {
      REQUIRE(unlink(path.c_str()) == 0);
    }
    CHECK(store.storage->PutCode(CodeFor("abc", "654321", &store.clock)).code() ==
          Status::Code::kIOError);
    VerifyResult r;
    CHECK(store.storage->VerifyCode("abc", HashOf("abc", "000000"), kLimits, &r).code() ==
          Status::Code::kIOError);
    SendDecision d;
    CHECK(store.storage->ReserveSend({"abc", "+11111111111", ""}, SendLimits(), &d).code() ==
          Status::Code::kIOError);
    CHECK(store.storage->CheckWritable().code() == Status::Code::kIOError);
  }
}

TEST_CASE("SqliteStorage: CheckWritable is Busy while another connection holds the write lock") {
  SqliteStore store;
  SqliteOptions options = store.db->options();
  options.busy_timeout_ms = 50;
  std::shared_ptr<SqliteDb> short_wait;
  REQUIRE(OpenSqliteDb(options, &short_wait).ok());
  std::unique_ptr<Storage> probe;
  REQUIRE(NewSqliteStorage(short_wait, &store.clock, &probe).ok());
  REQUIRE(probe->CheckWritable().ok());

  SqliteLease lease;
  REQUIRE(store.db->Acquire(&lease).ok());
  SqliteConnection* holder = lease.get();
  {
    SqliteTransaction txn(holder);
    REQUIRE(txn.Begin().ok());
    Status s = probe->CheckWritable();
    CHECK(s.code() == Status::Code::kBusy);
  }  // rolled back: the lock is free again
  CHECK(probe->CheckWritable().ok());
}

#ifdef OTPD_REDIS
// ---------------------------------------------------------------------------
// Redis: two stores on one server and prefix are two otpd nodes.

struct RedisNodes {
  FakeClock clock;
  RedisOptions options = TestRedisOptions();
  std::unique_ptr<Storage> a, b;

  RedisNodes() {
    REQUIRE(NewRedisStorage(options, &clock, &a).ok());
    REQUIRE(NewRedisStorage(options, &clock, &b).ok());
  }
};

// A loopback port nothing listens on (bound, then released).
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  close(fd);
  return ntohs(addr.sin_port);
}

// One command on its own connection to the test server.
std::string RedisSay(const std::vector<std::string>& argv) {
  redisContext* c = redisConnect("127.0.0.1", SharedTestRedis().port());
  REQUIRE((c != nullptr && c->err == 0));
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  auto* r = static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lengths.data()));
  REQUIRE(r != nullptr);
  std::string out = r->str != nullptr ? std::string(r->str, r->len) : std::to_string(r->integer);
  freeReplyObject(r);
  redisFree(c);
  return out;
}

TEST_CASE("RedisStorage: 64 parallel wrong guesses on two nodes take exactly 3 attempts" *
          doctest::test_suite("tsan")) {
  RedisNodes nodes;
  for (int round = 0; round < 3; round++) {
    INFO("round ", round);
    REQUIRE(nodes.a->PutCode(CodeFor("abc", "123456", &nodes.clock)).ok());
    Tally tally;
    GuessInParallel({nodes.a.get(), nodes.b.get()}, 64, HashOf("abc", "000000"), &tally);
    CheckExactlyThreeInvalid(tally, 64);
    CHECK(VerifyOutcomeOf(nodes.b.get(), "abc", HashOf("abc", "123456")) == VerifyOutcome::kLocked);
  }
}

TEST_CASE("RedisStorage: 32 parallel sends on two nodes never exceed the cap" *
          doctest::test_suite("tsan")) {
  RedisNodes nodes;
  CheckParallelSendsKeepTheCap(nodes.a.get(), nodes.b.get());
}

TEST_CASE("RedisStorage: scripts are loaded again after the server forgets them") {
  RedisNodes nodes;
  REQUIRE(nodes.a->PutCode(CodeFor("abc", "123456", &nodes.clock)).ok());
  REQUIRE(RedisSay({"SCRIPT", "FLUSH"}) == "OK");
  CHECK(Verify(nodes.b.get(), "abc", HashOf("abc", "000000")).attempts_remaining == 2);
  REQUIRE(RedisSay({"SCRIPT", "FLUSH"}) == "OK");
  CHECK(VerifyOutcomeOf(nodes.a.get(), "abc", HashOf("abc", "123456")) == VerifyOutcome::kOk);
}

TEST_CASE("RedisStorage: keys live under the prefix, each with a TTL, codes only hashed") {
  RedisNodes nodes;
  REQUIRE(nodes.a->PutCode(CodeFor("Abc", "123456", &nodes.clock)).ok());
  CHECK(Verify(nodes.a.get(), "abc", HashOf("abc", "000000"), VerifyLimits{3, kGraceMs, 5, kHourMs})
            .outcome == VerifyOutcome::kInvalid);
  SendLimits limits;
  limits.window_ms = kHourMs;
  CHECK(Reserve(nodes.b.get(), {"abc", "+11111111111", "10.0.0.1"}, limits).allowed);
  REQUIRE(nodes.b->CheckWritable().ok());
  const std::string p = nodes.options.prefix;
  const std::vector<std::string> keys = {p + "code:abc",
                                         p + "codes",
                                         p + "failures:abc",
                                         p + "sends:user:abc",
                                         p + "sends:phone:+11111111111",
                                         p + "sends:ip:10.0.0.1",
                                         p + "sends:all",
                                         p + "health"};
  for (const std::string& key : keys) {
    INFO(key);
    const int64_t ttl = std::stoll(RedisSay({"PTTL", key}));
    CHECK(ttl > 0);
    CHECK(ttl <= kHourMs + 1000);  // the longest: the windows
  }
  // Besides these, only the data-loss marker, kept without a TTL on
  // purpose: if it expired it would look like Redis losing its data.
  CHECK(RedisSay({"PTTL", p + "alive"}) == "-1");
  CHECK(RedisSay({"EVAL", "return #redis.call('KEYS', ARGV[1])", "0", p + "*"}) ==
        std::to_string(keys.size() + 1));
  CHECK(RedisSay({"HGET", p + "code:abc", "hash"}) == HashOf("Abc", "123456"));
}

TEST_CASE("RedisStorage: with a key hasher, no phone number or IP shows in a key name") {
  FakeClock clock;
  RedisOptions options = TestRedisOptions();
  options.key_hasher = &Hasher();
  std::unique_ptr<Storage> storage;
  REQUIRE(NewRedisStorage(options, &clock, &storage).ok());
  SendLimits limits;
  limits.window_ms = kHourMs;
  CHECK(Reserve(storage.get(), {"abc", "+15550001111", "192.0.2.7"}, limits).allowed);
  CHECK_FALSE(
      Reserve(storage.get(), {"def", "+15550001111", "192.0.2.7"}, OnlyLimit(SendLimit::kPhone, 1))
          .allowed);  // still counted by phone
  CHECK_FALSE(
      Reserve(storage.get(), {"ghi", "+15550002222", "192.0.2.7"}, OnlyLimit(SendLimit::kIp, 1))
          .allowed);  // and by IP
  const std::string keys = RedisSay(
      {"EVAL", "return table.concat(redis.call('KEYS', ARGV[1]), ' ')", "0", options.prefix + "*"});
  CHECK(keys.find("sends:phone:" + Hasher().Pseudonym("phone:+15550001111")) != std::string::npos);
  CHECK(keys.find("5550001111") == std::string::npos);
  CHECK(keys.find("192.0.2.7") == std::string::npos);
}

// Unavailable without a connect: the pool is waiting out its backoff.
bool Reconnecting(const Status& s) {
  return s.code() == Status::Code::kUnavailable &&
         s.message().find("(reconnecting)") != std::string::npos;
}

TEST_CASE("RedisStorage: an unreachable server is Unavailable, retried after a doubling backoff") {
  FakeClock clock;  // the backoff is on its monotonic time
  RedisOptions options = TestRedisOptions();
  options.endpoint.port = UnusedPort();  // nothing listens there
  std::unique_ptr<Storage> storage;
  REQUIRE(NewRedisStorage(options, &clock, &storage).ok());
  Status s = storage->CheckWritable();
  CHECK(s.code() == Status::Code::kUnavailable);
  CHECK_FALSE(Reconnecting(s));  // it tried to connect
  CHECK(s.message().find("127.0.0.1:" + std::to_string(options.endpoint.port)) !=
        std::string::npos);
  // Within the backoff every call fails at once, without a connect.
  VerifyResult r;
  int reconnecting = 0;
  for (int i = 0; i < 100; i++) {
    if (Reconnecting(storage->VerifyCode("abc", "x", kLimits, &r))) reconnecting++;
  }
  CHECK(reconnecting == 100);
  // The next connect comes when the backoff has passed, and not a
  // millisecond before; each failure doubles it, up to 5 s.
  for (int64_t backoff_ms : {100, 200, 400, 800, 1600, 3200, 5000, 5000}) {
    CAPTURE(backoff_ms);
    clock.AdvanceMonotonicMicros((backoff_ms - 1) * 1000);
    CHECK(Reconnecting(storage->CheckWritable()));
    clock.AdvanceMonotonicMicros(1000);
    s = storage->CheckWritable();
    CHECK(s.code() == Status::Code::kUnavailable);
    CHECK_FALSE(Reconnecting(s));
  }
  CHECK(clock.slept_micros() == 0);  // nothing waited
}

TEST_CASE("RedisStorage: a wrong password is a configuration error, not an outage") {
  FakeClock clock;
  RedisOptions options = TestRedisOptions();
  options.endpoint.password = "not-the-password";
  std::unique_ptr<Storage> storage;
  REQUIRE(NewRedisStorage(options, &clock, &storage).ok());
  Status s = storage->CheckWritable();
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message().find("AUTH") != std::string::npos);
  CHECK(s.message().find("not-the-password") == std::string::npos);
}
TEST_CASE("RedisStorage: a node with another secret is refused; the same secret is welcome") {
  FakeClock clock;
  RedisOptions options = TestRedisOptions();
  options.secret_fingerprint = "fingerprint-one";
  std::unique_ptr<Storage> first, same, other;
  REQUIRE(NewRedisStorage(options, &clock, &first).ok());
  REQUIRE(first->CheckWritable().ok());
  CHECK(RedisSay({"PTTL", options.prefix + "secret-check"}) == "-1");  // kept
  REQUIRE(NewRedisStorage(options, &clock, &same).ok());
  CHECK(same->CheckWritable().ok());
  options.secret_fingerprint = "fingerprint-two";
  REQUIRE(NewRedisStorage(options, &clock, &other).ok());
  Status s = other->CheckWritable();
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message().find("same secret") != std::string::npos);
  VerifyResult r;
  CHECK_FALSE(other->VerifyCode("abc", "x", kLimits, &r).ok());
}
#endif  // OTPD_REDIS

}  // namespace
}  // namespace otpd
