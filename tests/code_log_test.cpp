// The SQLite code store's log (store/code_log.h, storage_sqlite.cpp):
// state rebuilt from the file at a restart, rows written with plain SQL on
// the otps view, compaction that keeps the log bounded while two handles
// on one file stay exact, and send caps whose cost does not grow.
#include "store/code_log.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/code_hash.h"
#include "otp/storage.h"
#include "store/sqlite_db.h"
#include "test_util.h"

namespace otpd {
namespace {

constexpr int64_t kExpiry = 300 * 1000;
const VerifyLimits kVerifyLimits{3, 600 * 1000, 5, 3600 * 1000};

std::string Hash(const std::string& user, const std::string& code) {
  static const CodeHasher hasher("code-log-test-secret-0123456789");
  return hasher.Hash(user, code);
}

StoredCode Code(const std::string& user, const std::string& code, Clock* clock) {
  const int64_t now = clock->NowMillis();
  return StoredCode{user, Hash(user, code), now, now + kExpiry};
}

std::shared_ptr<SqliteDb> Open(const std::string& path) {
  SqliteOptions options;
  options.path = path;
  std::shared_ptr<SqliteDb> db;
  Status s = OpenSqliteDb(options, &db);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return db;
}

std::unique_ptr<Storage> Store(const std::shared_ptr<SqliteDb>& db, Clock* clock) {
  std::unique_ptr<Storage> storage;
  Status s = NewSqliteStorage(db, clock, &storage);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return storage;
}

VerifyResult Verify(Storage* storage, const std::string& user, const std::string& code) {
  VerifyResult r;
  r.attempts_remaining = -1;
  Status s = storage->VerifyCode(user, Hash(user, code), kVerifyLimits, &r);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return r;
}

SendDecision Send(Storage* storage, const std::string& user, const SendLimits& limits) {
  SendDecision d;
  Status s = storage->ReserveSend({user, "+15550000001", "10.0.0.1"}, limits, &d);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return d;
}

std::string Query(const std::shared_ptr<SqliteDb>& db, const char* sql) {
  SqliteLease lease;
  REQUIRE(db->Acquire(&lease).ok());
  SqliteStatement stmt;
  REQUIRE(lease->Prepare(sql, &stmt).ok());
  bool row = false;
  REQUIRE(stmt.Step(&row).ok());
  return row ? stmt.ColumnText(0) : "";
}

void Exec(const std::shared_ptr<SqliteDb>& db, const char* sql) {
  SqliteLease lease;
  REQUIRE(db->Acquire(&lease).ok());
  Status s = lease->Exec(sql);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
}

int64_t Purge(Storage* storage) {
  int64_t purged = -1;
  Status s = storage->PurgeExpired(600 * 1000, 3600 * 1000, &purged);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return purged;
}

TEST_CASE("SqliteStorage: a restart rebuilds codes, attempts, failures and sends") {
  TempDir dir;
  FakeClock clock;
  SendLimits cooldown;
  cooldown.per_user = cooldown.per_phone = cooldown.per_ip = cooldown.global = 0;
  {
    auto db = Open(dir.File("otpd.db"));
    auto storage = Store(db, &clock);
    REQUIRE(storage->PutCode(Code("abc", "123456", &clock)).ok());
    REQUIRE(Verify(storage.get(), "abc", "000000").attempts_remaining == 2);
    REQUIRE(storage->PutCode(Code("used", "123456", &clock)).ok());
    REQUIRE(Verify(storage.get(), "used", "123456").outcome == VerifyOutcome::kOk);
    REQUIRE(Send(storage.get(), "abc", cooldown).allowed);
    CHECK(Query(db, "SELECT attempts FROM otps WHERE user_id = 'abc'") == "1");
  }
  auto db = Open(dir.File("otpd.db"));
  auto storage = Store(db, &clock);
  const VerifyResult again = Verify(storage.get(), "abc", "000000");
  CHECK(again.outcome == VerifyOutcome::kInvalid);
  CHECK(again.attempts_remaining == 1);
  CHECK(Verify(storage.get(), "used", "123456").outcome == VerifyOutcome::kNotFound);
  const SendDecision d = Send(storage.get(), "abc", cooldown);
  CHECK_FALSE(d.allowed);
  CHECK(d.limit == SendLimit::kCooldown);
  int64_t active = -1;
  REQUIRE(storage->CountActiveCodes(&active).ok());
  CHECK(active == 1);
}

TEST_CASE("SqliteStorage: codes changed with SQL on the otps view reach a running store") {
  TempDir dir;
  FakeClock clock;
  auto db = Open(dir.File("otpd.db"));
  auto storage = Store(db, &clock);
  REQUIRE(Verify(storage.get(), "sql", "123456").outcome == VerifyOutcome::kNotFound);
  // An operator's INSERT (the hash as otpd computes it) ...
  SqliteLease lease;
  REQUIRE(db->Acquire(&lease).ok());
  SqliteStatement insert;
  REQUIRE(lease
              ->Prepare("INSERT INTO otps (user_id, code_hash, issued_at, expires_at)"
                        " VALUES ('SQL', ?1, ?2, ?3)",
                        &insert)
              .ok());
  insert.BindBlob(1, Hash("sql", "123456"));
  insert.BindInt64(2, clock.NowMillis());
  insert.BindInt64(3, clock.NowMillis() + kExpiry);
  REQUIRE(insert.Run().ok());
  lease.Reset();
  CHECK(Verify(storage.get(), "sql", "000000").outcome == VerifyOutcome::kInvalid);
  CHECK(Query(db, "SELECT attempts FROM otps WHERE user_id = 'sql'") == "1");
  // ... and DELETE are seen by the next request.
  Exec(db, "DELETE FROM otps WHERE user_id = 'sql'");
  CHECK(Verify(storage.get(), "sql", "123456").outcome == VerifyOutcome::kNotFound);
  CHECK(Query(db, "SELECT count(*) FROM otps") == "0");
}

TEST_CASE("SqliteStorage: compaction bounds the log; two handles on one file stay exact") {
  TempDir dir;
  FakeClock clock;
  auto db_a = Open(dir.File("otpd.db"));
  auto db_b = Open(dir.File("otpd.db"));
  auto a = Store(db_a, &clock);
  auto b = Store(db_b, &clock);
  for (int i = 0; i < 50; i++) {
    const std::string user = "u" + std::to_string(i);
    REQUIRE(a->PutCode(Code(user, "111111", &clock)).ok());
    REQUIRE(a->PutCode(Code(user, "123456", &clock)).ok());  // the first one is dead
    REQUIRE(Verify(b.get(), user, "123456").outcome == VerifyOutcome::kOk);
  }
  REQUIRE(a->PutCode(Code("live", "123456", &clock)).ok());
  REQUIRE(Verify(b.get(), "live", "000000").outcome == VerifyOutcome::kInvalid);
  CHECK(Query(db_a, "SELECT count(*) FROM code_log") == "152");
  // A has read B's rows: its first compaction only leaves a mark ...
  Purge(a.get());
  CHECK(Query(db_a, "SELECT count(*) FROM code_log") == "152");
  // ... which, once old enough, lets every dead row go.
  clock.Advance(61 * 1000);
  Purge(a.get());
  CHECK(Query(db_a, "SELECT count(*) FROM code_log") == "2");  // live's code and its guess
  // B, whose state included the deleted rows, still answers exactly.
  const VerifyResult second = Verify(b.get(), "live", "000000");
  CHECK(second.outcome == VerifyOutcome::kInvalid);
  CHECK(second.attempts_remaining == 1);
  CHECK(Verify(b.get(), "u7", "123456").outcome == VerifyOutcome::kNotFound);
  // B fell behind the compaction (A wrote meanwhile): it reloads, exactly.
  REQUIRE(a->PutCode(Code("u7", "222222", &clock)).ok());
  clock.Advance(61 * 1000);
  Purge(a.get());
  Purge(a.get());
  CHECK(Verify(b.get(), "u7", "222222").outcome == VerifyOutcome::kOk);
  const VerifyResult third = Verify(a.get(), "live", "000000");
  CHECK(third.outcome == VerifyOutcome::kInvalid);
  CHECK(third.attempts_remaining == 0);
  CHECK(Query(db_b, "SELECT attempts FROM otps WHERE user_id = 'live'") == "3");
}

TEST_CASE("SqliteStorage: one purge deletes thousands of dead rows, a chunk per batch") {
  TempDir dir;
  FakeClock clock;
  auto db = Open(dir.File("otpd.db"));
  auto storage = Store(db, &clock);
  // 5 000 replaced codes: more dead rows than one batch deletes.
  for (int i = 0; i < 5000; i++) {
    REQUIRE(storage->PutCode(Code("u" + std::to_string(i % 10), "111111", &clock)).ok());
  }
  CHECK(Query(db, "SELECT count(*) FROM code_log") == "5000");
  Purge(storage.get());
  CHECK(Query(db, "SELECT count(*) FROM code_log") == "10");  // each user's last code
  for (int i = 0; i < 10; i++) {
    CHECK(Verify(storage.get(), "u" + std::to_string(i), "111111").outcome == VerifyOutcome::kOk);
  }
}

TEST_CASE("SqliteStorage: send history past its window leaves the log") {
  TempDir dir;
  FakeClock clock;
  auto db = Open(dir.File("otpd.db"));
  auto storage = Store(db, &clock);
  SendLimits none;
  none.cooldown_ms = 0;
  none.per_user = none.per_phone = none.per_ip = none.global = 0;
  for (int i = 0; i < 20; i++) REQUIRE(Send(storage.get(), "u" + std::to_string(i), none).allowed);
  clock.Advance(3600 * 1000 - 1);
  Purge(storage.get());
  CHECK(Query(db, "SELECT count(*) FROM code_log") == "20");
  clock.Advance(1);
  Purge(storage.get());
  CHECK(Query(db, "SELECT count(*) FROM code_log") == "0");
}

TEST_CASE("RecentEvents: the n-th most recent event, in order, whatever n") {
  RecentEvents events;
  CHECK_FALSE(events.NthRecent(1).has_value());
  for (int64_t at : {10, 30, 20, 40}) events.Add(at, at);  // one late
  CHECK(events.NthRecent(1) == 40);
  CHECK(events.NthRecent(2) == 30);
  CHECK(events.NthRecent(4) == 10);
  CHECK_FALSE(events.NthRecent(5).has_value());
  CHECK_FALSE(events.NthRecent(0).has_value());
  std::vector<int64_t> dead;
  events.DropOld(20, [&](int64_t seq) { dead.push_back(seq); });
  CHECK(dead == std::vector<int64_t>{10, 20});
  CHECK(events.size() == 2);
  CHECK(events.NthRecent(2) == 30);
}

TEST_CASE("CodeLogState: a replaced or used-up code and its history become dead rows") {
  CodeLogState state;
  auto row = [](int64_t seq, LogKind kind, const std::string& user) {
    LogRow r;
    r.seq = seq;
    r.kind = kind;
    r.user_id = user;
    r.at = seq;
    r.code_hash = "h" + std::to_string(seq);
    r.expires_at = 1000;
    return r;
  };
  state.Apply(row(1, LogKind::kPut, "Abc"));
  state.Apply(row(2, LogKind::kWrongGuess, "abc"));  // COLLATE NOCASE: the same user
  CHECK(state.ReadVerify("ABC", kVerifyLimits).code.attempts == 1);
  CHECK(state.TakeDead(100).empty());
  state.Apply(row(3, LogKind::kPut, "abc"));
  CHECK(state.ReadVerify("abc", kVerifyLimits).code.attempts == 0);
  CHECK(state.TakeDead(100) == std::vector<int64_t>{1});  // the guess still counts as failure
  state.Apply(row(4, LogKind::kConsume, "abc"));
  std::vector<int64_t> dead = state.TakeDead(3);
  std::sort(dead.begin(), dead.end());
  CHECK(dead == std::vector<int64_t>{2, 3});
  CHECK(state.TakeDead(100) == std::vector<int64_t>{4});
  CHECK_FALSE(state.ReadVerify("abc", kVerifyLimits).code.exists);
}

}  // namespace
}  // namespace otpd
