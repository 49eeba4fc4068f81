// Storage in the `otps` table of the SQLite database (see sqlite_db.cpp for
// the schema). Every multi-step operation is one BEGIN IMMEDIATE
// transaction: the write lock is taken before the row is read, so threads
// and processes sharing the file are serialized and no attempt is lost.
#include <algorithm>
#include <utility>

#include "core/code_hash.h"
#include "store/sqlite_db.h"
#include "otp/storage.h"

namespace otpd {
namespace {

constexpr char kPutSql[] =
    "INSERT INTO otps (user_id, code_hash, issued_at, expires_at, attempts)"
    " VALUES (?1, ?2, ?3, ?4, 0)"
    " ON CONFLICT (user_id) DO UPDATE SET code_hash = excluded.code_hash,"
    " issued_at = excluded.issued_at, expires_at = excluded.expires_at, attempts = 0";
constexpr char kDeleteMatchingSql[] = "DELETE FROM otps WHERE user_id = ?1 AND code_hash = ?2";
constexpr char kSelectSql[] =
    "SELECT code_hash, expires_at, attempts FROM otps WHERE user_id = ?1";
constexpr char kDeleteSql[] = "DELETE FROM otps WHERE user_id = ?1";
constexpr char kAddAttemptSql[] = "UPDATE otps SET attempts = attempts + 1 WHERE user_id = ?1";
constexpr char kPurgeSql[] = "DELETE FROM otps WHERE expires_at <= ?1";
constexpr char kCountActiveSql[] = "SELECT count(*) FROM otps WHERE expires_at > ?1";
constexpr char kPurgeSendsSql[] = "DELETE FROM sends WHERE at <= ?1";
constexpr char kPurgeFailuresSql[] = "DELETE FROM verify_failures WHERE at <= ?1";

// The time of the (?3 + 1)-th most recent row after ?2 (of one key ?1):
// when it exists, the cap ?3 + 1 is reached, and it frees up when that row
// leaves the window.
constexpr char kNthSendOfUserSql[] =
    "SELECT at FROM sends WHERE user_id = ?1 AND at > ?2 ORDER BY at DESC LIMIT 1 OFFSET ?3";
constexpr char kNthSendToPhoneSql[] =
    "SELECT at FROM sends WHERE phone = ?1 AND at > ?2 ORDER BY at DESC LIMIT 1 OFFSET ?3";
constexpr char kNthSendFromIpSql[] =
    "SELECT at FROM sends WHERE client_ip = ?1 AND at > ?2 ORDER BY at DESC LIMIT 1 OFFSET ?3";
// Over all sends; ?1 is bound like the others and matches everything.
constexpr char kNthSendSql[] =
    "SELECT at FROM sends WHERE ?1 = ?1 AND counts_global = 1 AND at > ?2"
    " ORDER BY at DESC LIMIT 1 OFFSET ?3";
constexpr char kNthFailureSql[] =
    "SELECT at FROM verify_failures WHERE user_id = ?1 AND at > ?2"
    " ORDER BY at DESC LIMIT 1 OFFSET ?3";
constexpr char kInsertSendSql[] =
    "INSERT INTO sends (user_id, phone, client_ip, at, counts_global)"
    " VALUES (?1, ?2, ?3, ?4, ?5)";
constexpr char kInsertFailureSql[] = "INSERT INTO verify_failures (user_id, at) VALUES (?1, ?2)";
constexpr char kClearFailuresSql[] = "DELETE FROM verify_failures WHERE user_id = ?1";
constexpr char kHealthSql[] =
    "INSERT INTO health (id, checked_at) VALUES (1, ?1)"
    " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";

struct CodeRow {
  std::string code_hash;
  int64_t expires_at_ms = 0;
  int64_t attempts = 0;
};

class SqliteStorage : public Storage {
 public:
  SqliteStorage(std::shared_ptr<SqliteDb> db, Clock* clock) : db_(std::move(db)), clock_(clock) {}

  Status PutCode(const StoredCode& code) override;
  Status DeleteCode(const std::string& user_id, const std::string& code_hash) override;
  Status VerifyCode(const std::string& user_id, const std::string& code_hash,
                    const VerifyLimits& limits, VerifyResult* result) override;
  Status ReserveSend(const SendRequest& request, const SendLimits& limits,
                     SendDecision* decision) override;
  Status PurgeExpired(int64_t grace_ms, int64_t history_ms, int64_t* purged) override;
  Status CheckWritable() override;
  Status CountActiveCodes(int64_t* count) override;

 private:
  // Runs `sql` with ?1 = user_id (and ?2 = blob, when not null).
  static Status RunForUser(SqliteConnection* conn, const char* sql, const std::string& user_id,
                           const std::string* blob = nullptr);
  static Status ReadCode(SqliteConnection* conn, const std::string& user_id, bool* found,
                         CodeRow* row);
  // VerifyCode's answers that need no write; *answered false: go on to
  // VerifyLocked.
  Status VerifyReadOnly(SqliteConnection* conn, const std::string& user_id,
                        const VerifyLimits& limits, VerifyResult* result, bool* answered);
  // Whether `cap` rows of `key` lie in the window (now - window_ms, now]
  // of `sql` (one of the kNth* queries); if so, *retry_ms is how long until
  // one leaves it. cap <= 0 never reaches.
  static Status CapReached(SqliteConnection* conn, const char* sql, const std::string& key,
                           int cap, int64_t window_ms, int64_t now, bool* reached,
                           int64_t* retry_ms);
  // ReserveSend's decision, inside its open transaction.
  static Status DecideSend(SqliteConnection* conn, const SendRequest& request,
                           const SendLimits& limits, int64_t now, SendDecision* decision);
  static Status RecordFailure(SqliteConnection* conn, const std::string& user_id, int64_t now);
  // VerifyCode's decision and write, inside its open transaction.
  Status VerifyLocked(SqliteConnection* conn, const std::string& user_id,
                      const std::string& code_hash, const VerifyLimits& limits,
                      VerifyResult* result);

  const std::shared_ptr<SqliteDb> db_;
  Clock* const clock_;
};

Status SqliteStorage::RunForUser(SqliteConnection* conn, const char* sql,
                                 const std::string& user_id, const std::string* blob) {
  SqliteStatement stmt;
  Status s = conn->Prepare(sql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  if (blob != nullptr) stmt.BindBlob(2, *blob);
  return stmt.Run();
}

Status SqliteStorage::PutCode(const StoredCode& code) {
  if (code.user_id.empty() || code.code_hash.empty()) {
    return Status::InvalidArgument("PutCode needs a user ID and a code hash");
  }
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  return WriteTransaction(conn, [&] {
    SqliteStatement stmt;
    Status ps = conn->Prepare(kPutSql, &stmt);
    if (!ps.ok()) return ps;
    stmt.BindText(1, code.user_id);
    stmt.BindBlob(2, code.code_hash);
    stmt.BindInt64(3, code.issued_at_ms);
    stmt.BindInt64(4, code.expires_at_ms);
    return stmt.Run();
  });
}

Status SqliteStorage::DeleteCode(const std::string& user_id, const std::string& code_hash) {
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  return WriteTransaction(conn,
                          [&] { return RunForUser(conn, kDeleteMatchingSql, user_id, &code_hash); });
}

Status SqliteStorage::ReadCode(SqliteConnection* conn, const std::string& user_id, bool* found,
                               CodeRow* row) {
  SqliteStatement stmt;
  Status s = conn->Prepare(kSelectSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  s = stmt.Step(found);
  if (s.ok() && *found) {
    row->code_hash = stmt.ColumnBlob(0);
    row->expires_at_ms = stmt.ColumnInt64(1);
    row->attempts = stmt.ColumnInt64(2);
  }
  return s;
}

Status SqliteStorage::CapReached(SqliteConnection* conn, const char* sql,
                                 const std::string& key, int cap, int64_t window_ms, int64_t now,
                                 bool* reached, int64_t* retry_ms) {
  *reached = false;
  if (cap <= 0 || window_ms <= 0) return Status::OK();
  SqliteStatement stmt;
  Status s = conn->Prepare(sql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, key);
  stmt.BindInt64(2, now - window_ms);
  stmt.BindInt64(3, cap - 1);
  s = stmt.Step(reached);
  if (s.ok() && *reached) *retry_ms = stmt.ColumnInt64(0) + window_ms - now;
  return s;
}

Status SqliteStorage::DecideSend(SqliteConnection* conn, const SendRequest& request,
                                 const SendLimits& limits, int64_t now, SendDecision* decision) {
  struct Check {
    SendLimit limit;
    const char* sql;
    const std::string* key;
    int cap;
    int64_t window_ms;
  };
  const std::string none;
  const Check checks[] = {
      {SendLimit::kCooldown, kNthSendOfUserSql, &request.user_id, 1, limits.cooldown_ms},
      {SendLimit::kUser, kNthSendOfUserSql, &request.user_id, limits.per_user, limits.window_ms},
      {SendLimit::kPhone, kNthSendToPhoneSql, &request.phone, limits.per_phone, limits.window_ms},
      {SendLimit::kIp, kNthSendFromIpSql, &request.client_ip,
       request.client_ip.empty() ? 0 : limits.per_ip, limits.window_ms},
      {SendLimit::kGlobal, kNthSendSql, &none, limits.global, limits.window_ms},
  };
  *decision = SendDecision();
  decision->allowed = true;
  // Every limit is checked, so the answer's retry time clears them all.
  for (const Check& c : checks) {
    bool reached = false;
    int64_t retry_ms = 0;
    Status s = CapReached(conn, c.sql, *c.key, c.cap, c.window_ms, now, &reached, &retry_ms);
    if (!s.ok()) return s;
    if (!reached) continue;
    if (decision->allowed) decision->limit = c.limit;
    decision->allowed = false;
    decision->retry_after_ms = std::max(decision->retry_after_ms, retry_ms);
  }
  return Status::OK();
}

Status SqliteStorage::ReserveSend(const SendRequest& request, const SendLimits& limits,
                                  SendDecision* decision) {
  if (request.user_id.empty()) return Status::InvalidArgument("ReserveSend needs a user ID");
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  SqliteTransaction txn(conn);
  s = txn.Begin();
  if (!s.ok()) return s;
  // Read after the lock was taken: time spent waiting for it counts.
  const int64_t now = clock_->NowMillis();
  SendDecision decided;
  s = DecideSend(conn, request, limits, now, &decided);
  if (s.ok() && decided.allowed) {
    SqliteStatement stmt;
    s = conn->Prepare(kInsertSendSql, &stmt);
    if (s.ok()) {
      stmt.BindText(1, request.user_id);
      stmt.BindText(2, request.phone);
      stmt.BindText(3, request.client_ip);
      stmt.BindInt64(4, now);
      stmt.BindInt64(5, request.counts_toward_global ? 1 : 0);
      s = stmt.Run();
    }
  }
  if (s.ok()) s = txn.Commit();
  if (s.ok()) *decision = decided;
  return s;
}

Status SqliteStorage::VerifyLocked(SqliteConnection* conn, const std::string& user_id,
                                   const std::string& code_hash, const VerifyLimits& limits,
                                   VerifyResult* result) {
  // Read after the lock was taken: time spent waiting for it counts.
  const int64_t now = clock_->NowMillis();
  *result = VerifyResult();
  bool throttled = false;
  Status s = CapReached(conn, kNthFailureSql, user_id, limits.max_failures,
                        limits.failure_window_ms, now, &throttled, &result->retry_after_ms);
  if (!s.ok()) return s;
  if (throttled) {
    result->outcome = VerifyOutcome::kThrottled;
    return Status::OK();
  }
  bool found = false;
  CodeRow row;
  s = ReadCode(conn, user_id, &found, &row);
  if (!s.ok()) return s;
  if (!found) {
    result->outcome = VerifyOutcome::kNotFound;
    return Status::OK();
  }
  result->expires_at_ms = row.expires_at_ms;
  if (now - row.expires_at_ms >= limits.expired_grace_ms) {
    result->outcome = VerifyOutcome::kNotFound;
    return RunForUser(conn, kDeleteSql, user_id);
  }
  if (now >= row.expires_at_ms) {
    result->outcome = VerifyOutcome::kExpired;
    return Status::OK();
  }
  if (row.attempts >= limits.max_attempts) {
    result->outcome = VerifyOutcome::kLocked;
    return Status::OK();
  }
  if (CodeHasher::Equal(row.code_hash, code_hash)) {
    result->outcome = VerifyOutcome::kOk;
    s = RunForUser(conn, kDeleteSql, user_id);
    return s.ok() ? RunForUser(conn, kClearFailuresSql, user_id) : s;
  }
  result->outcome = VerifyOutcome::kInvalid;
  result->attempts_remaining = static_cast<int>(limits.max_attempts - (row.attempts + 1));
  s = RunForUser(conn, kAddAttemptSql, user_id);
  return s.ok() ? RecordFailure(conn, user_id, now) : s;
}

Status SqliteStorage::RecordFailure(SqliteConnection* conn, const std::string& user_id,
                                    int64_t now) {
  SqliteStatement stmt;
  Status s = conn->Prepare(kInsertFailureSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  stmt.BindInt64(2, now);
  return stmt.Run();
}

Status SqliteStorage::VerifyCode(const std::string& user_id, const std::string& code_hash,
                                 const VerifyLimits& limits, VerifyResult* result) {
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  VerifyResult decided;
  bool answered = false;
  s = VerifyReadOnly(conn, user_id, limits, &decided, &answered);
  if (s.ok() && !answered) {
    s = WriteTransaction(conn,
                         [&] { return VerifyLocked(conn, user_id, code_hash, limits, &decided); });
  }
  if (s.ok()) *result = decided;
  return s;
}

// The answers that change nothing (throttled, no code, expired within the
// grace period, locked) come from plain reads, without the write lock: a
// concurrent send or verify can only move such a code to a state that a
// verify ordered before it would not see. A hash comparison, and every
// change, happens in VerifyLocked's transaction only.
Status SqliteStorage::VerifyReadOnly(SqliteConnection* conn, const std::string& user_id,
                                     const VerifyLimits& limits, VerifyResult* result,
                                     bool* answered) {
  const int64_t now = clock_->NowMillis();
  *result = VerifyResult();
  bool found = false;
  CodeRow row;
  Status s = ReadCode(conn, user_id, &found, &row);
  if (!s.ok()) return s;
  *answered = true;
  if (!found) {
    result->outcome = VerifyOutcome::kNotFound;
  } else {
    result->expires_at_ms = row.expires_at_ms;
    const bool expired = now >= row.expires_at_ms;
    if (expired && now - row.expires_at_ms < limits.expired_grace_ms) {
      result->outcome = VerifyOutcome::kExpired;
    } else if (!expired && row.attempts >= limits.max_attempts) {
      result->outcome = VerifyOutcome::kLocked;
    } else {
      *answered = false;  // a guess to compare, or a row to delete: VerifyLocked
      return Status::OK();  // (which checks the failure cap itself)
    }
  }
  // An answer without a write; the failure cap still comes first.
  bool throttled = false;
  s = CapReached(conn, kNthFailureSql, user_id, limits.max_failures, limits.failure_window_ms,
                 now, &throttled, &result->retry_after_ms);
  if (s.ok() && throttled) result->outcome = VerifyOutcome::kThrottled;
  return s;
}

Status SqliteStorage::PurgeExpired(int64_t grace_ms, int64_t history_ms, int64_t* purged) {
  if (grace_ms < 0 || history_ms < 0) {
    return Status::InvalidArgument("PurgeExpired: negative grace or history period");
  }
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  if (!s.ok()) return s;
  SqliteConnection* conn = lease.get();
  const int64_t now = clock_->NowMillis();
  int64_t codes = 0;
  // Three short transactions, not one: each is atomic alone, and the write
  // lock is never held for the whole sweep.
  for (const auto& [sql, cutoff] : {std::make_pair(kPurgeSql, now - grace_ms),
                                    std::make_pair(kPurgeSendsSql, now - history_ms),
                                    std::make_pair(kPurgeFailuresSql, now - history_ms)}) {
    s = WriteTransaction(conn, [&, sql = sql, cutoff = cutoff] {
      SqliteStatement stmt;
      Status ps = conn->Prepare(sql, &stmt);
      if (!ps.ok()) return ps;
      // expires_at + grace <= now, written so the index on expires_at is used.
      stmt.BindInt64(1, cutoff);
      ps = stmt.Run();
      if (ps.ok() && sql == kPurgeSql) codes = conn->Changes();
      return ps;
    });
    if (!s.ok()) return s;
  }
  *purged = codes;
  return Status::OK();
}

// A real committed write, so a read-only file or file system, a full disk or
// a lock held too long all show; plus a check that the file is still the one
// opened (writes to an unlinked file would vanish at the next start).
Status SqliteStorage::CheckWritable() {
  Status s = db_->CheckFileUnchanged();
  if (!s.ok()) return s;
  SqliteLease lease;
  s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  return WriteTransaction(conn, [&] {
    SqliteStatement stmt;
    Status ps = conn->Prepare(kHealthSql, &stmt);
    if (!ps.ok()) return ps;
    stmt.BindInt64(1, clock_->NowMillis());
    return stmt.Run();
  });
}

// Uses the expires_at index; cheap enough for every scrape.
Status SqliteStorage::CountActiveCodes(int64_t* count) {
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  SqliteStatement stmt;
  s = conn->Prepare(kCountActiveSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindInt64(1, clock_->NowMillis());
  bool row = false;
  s = stmt.Step(&row);
  if (s.ok()) *count = row ? stmt.ColumnInt64(0) : 0;
  return s;
}

}  // namespace

Status NewSqliteStorage(std::shared_ptr<SqliteDb> db, Clock* clock,
                        std::unique_ptr<Storage>* storage) {
  if (db == nullptr || clock == nullptr) {
    return Status::InvalidArgument("NewSqliteStorage needs a database and a clock");
  }
  storage->reset(new SqliteStorage(std::move(db), clock));
  return Status::OK();
}

}  // namespace otpd
