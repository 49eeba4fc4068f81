// Storage in the `otps` table of the SQLite database (see sqlite_db.cpp for
// the schema). Every multi-step operation is one BEGIN IMMEDIATE
// transaction: the write lock is taken before the row is read, so threads
// and processes sharing the file are serialized and no attempt is lost.
#include <utility>

#include "code_hash.h"
#include "sqlite_db.h"
#include "storage.h"

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
  Status PurgeExpired(int64_t grace_ms, int64_t* purged) override;
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

Status SqliteStorage::VerifyLocked(SqliteConnection* conn, const std::string& user_id,
                                   const std::string& code_hash, const VerifyLimits& limits,
                                   VerifyResult* result) {
  bool found = false;
  CodeRow row;
  Status s = ReadCode(conn, user_id, &found, &row);
  if (!s.ok()) return s;
  // Read after the lock was taken: time spent waiting for it counts.
  const int64_t now = clock_->NowMillis();
  *result = VerifyResult();
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
    return RunForUser(conn, kDeleteSql, user_id);
  }
  result->outcome = VerifyOutcome::kInvalid;
  result->attempts_remaining = static_cast<int>(limits.max_attempts - (row.attempts + 1));
  return RunForUser(conn, kAddAttemptSql, user_id);
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

// The answers that change nothing (no code, expired within the grace
// period, locked) come from a plain read, without the write lock: a
// concurrent send or verify can only move such a code to a state that a
// verify ordered before it would not see. A hash comparison, and every
// change, happens in VerifyLocked's transaction only.
Status SqliteStorage::VerifyReadOnly(SqliteConnection* conn, const std::string& user_id,
                                     const VerifyLimits& limits, VerifyResult* result,
                                     bool* answered) {
  bool found = false;
  CodeRow row;
  Status s = ReadCode(conn, user_id, &found, &row);
  if (!s.ok()) return s;
  const int64_t now = clock_->NowMillis();
  *result = VerifyResult();
  *answered = true;
  if (!found) {
    result->outcome = VerifyOutcome::kNotFound;
    return Status::OK();
  }
  result->expires_at_ms = row.expires_at_ms;
  const bool expired = now >= row.expires_at_ms;
  if (expired && now - row.expires_at_ms < limits.expired_grace_ms) {
    result->outcome = VerifyOutcome::kExpired;
  } else if (!expired && row.attempts >= limits.max_attempts) {
    result->outcome = VerifyOutcome::kLocked;
  } else {
    *answered = false;  // a guess to compare, or a row to delete
  }
  return Status::OK();
}

Status SqliteStorage::PurgeExpired(int64_t grace_ms, int64_t* purged) {
  if (grace_ms < 0) return Status::InvalidArgument("PurgeExpired: negative grace period");
  SqliteLease lease;
  Status s = db_->Acquire(&lease);
  SqliteConnection* conn = lease.get();
  if (!s.ok()) return s;
  return WriteTransaction(conn, [&] {
    SqliteStatement stmt;
    Status ps = conn->Prepare(kPurgeSql, &stmt);
    if (!ps.ok()) return ps;
    // expires_at + grace <= now, written so the index on expires_at is used.
    stmt.BindInt64(1, clock_->NowMillis() - grace_ms);
    ps = stmt.Run();
    if (ps.ok()) *purged = conn->Changes();
    return ps;
  });
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
