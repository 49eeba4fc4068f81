// Storage in the `otps` table of the SQLite database (see sqlite_db.cpp for
// the schema). Every multi-step operation is one BEGIN IMMEDIATE
// transaction: the write lock is taken before the row is read, so threads
// and processes sharing the file are serialized and no attempt is lost.
#include <algorithm>
#include <optional>
#include <utility>

#include "core/code_hash.h"
#include "store/sqlite_db.h"
#include "otp/rules.h"
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
// Over all users' sends on one channel ?1.
constexpr char kNthSendSql[] =
    "SELECT at FROM sends WHERE channel = ?1 AND counts_global = 1 AND at > ?2"
    " ORDER BY at DESC LIMIT 1 OFFSET ?3";
constexpr char kNthFailureSql[] =
    "SELECT at FROM verify_failures WHERE user_id = ?1 AND at > ?2"
    " ORDER BY at DESC LIMIT 1 OFFSET ?3";
constexpr char kInsertSendSql[] =
    "INSERT INTO sends (user_id, phone, client_ip, at, counts_global, channel)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
constexpr char kInsertFailureSql[] = "INSERT INTO verify_failures (user_id, at) VALUES (?1, ?2)";
constexpr char kClearFailuresSql[] = "DELETE FROM verify_failures WHERE user_id = ?1";
constexpr char kInsertFingerprintSql[] =
    "INSERT INTO settings (key, value) VALUES ('secret_fingerprint', ?1)"
    " ON CONFLICT (key) DO NOTHING";
constexpr char kSelectFingerprintSql[] =
    "SELECT value FROM settings WHERE key = 'secret_fingerprint'";
constexpr char kHealthSql[] =
    "INSERT INTO health (id, checked_at) VALUES (1, ?1)"
    " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at";

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
  // The time of the n-th most recent row of `key` in (now - window_ms, now]
  // by `sql` (one of the kNth* queries); nullopt when fewer, n <= 0 or
  // window_ms <= 0.
  static Status NthRecent(SqliteConnection* conn, const char* sql, const std::string& key, int n,
                          int64_t window_ms, int64_t now, std::optional<int64_t>* at);
  static Status ReadSendState(SqliteConnection* conn, const SendRequest& request,
                              const SendLimits& limits, int64_t now, SendState* state);
  static Status ReadVerifyState(SqliteConnection* conn, const std::string& user_id,
                                const VerifyLimits& limits, int64_t now, VerifyState* state);
  static Status ApplyVerify(SqliteConnection* conn, const std::string& user_id,
                            VerifyEffect effect, int64_t now);
  static Status RecordFailure(SqliteConnection* conn, const std::string& user_id, int64_t now);

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
  return db_->GroupWrite([&](SqliteConnection* conn) {
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
  return db_->GroupWrite([&](SqliteConnection* conn) {
    return RunForUser(conn, kDeleteMatchingSql, user_id, &code_hash);
  });
}

Status SqliteStorage::NthRecent(SqliteConnection* conn, const char* sql, const std::string& key,
                                int n, int64_t window_ms, int64_t now,
                                std::optional<int64_t>* at) {
  at->reset();
  if (n <= 0 || window_ms <= 0) return Status::OK();
  SqliteStatement stmt;
  Status s = conn->Prepare(sql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, key);
  stmt.BindInt64(2, now - window_ms);
  stmt.BindInt64(3, n - 1);
  bool row = false;
  s = stmt.Step(&row);
  if (s.ok() && row) *at = stmt.ColumnInt64(0);
  return s;
}

Status SqliteStorage::ReadSendState(SqliteConnection* conn, const SendRequest& request,
                                    const SendLimits& limits, int64_t now, SendState* state) {
  const std::string channel = ChannelName(request.channel);
  struct Read {
    const char* sql;
    const std::string* key;
    int n;
    int64_t window_ms;
    std::optional<int64_t>* at;
  };
  const Read reads[] = {
      {kNthSendOfUserSql, &request.user_id, 1, limits.cooldown_ms, &state->last_of_user},
      {kNthSendOfUserSql, &request.user_id, limits.per_user, limits.window_ms,
       &state->nth_of_user},
      {kNthSendToPhoneSql, &request.phone, limits.per_phone, limits.window_ms,
       &state->nth_to_phone},
      {kNthSendFromIpSql, &request.client_ip, request.client_ip.empty() ? 0 : limits.per_ip,
       limits.window_ms, &state->nth_from_ip},
      {kNthSendSql, &channel, limits.global, limits.window_ms, &state->nth_overall},
  };
  for (const Read& r : reads) {
    Status s = NthRecent(conn, r.sql, *r.key, r.n, r.window_ms, now, r.at);
    if (!s.ok()) return s;
  }
  return Status::OK();
}

Status SqliteStorage::ReserveSend(const SendRequest& request, const SendLimits& limits,
                                  SendDecision* decision) {
  if (request.user_id.empty()) return Status::InvalidArgument("ReserveSend needs a user ID");
  SendDecision decided;
  Status s = db_->GroupWrite([&](SqliteConnection* conn) {
    // Read after the lock was taken: time spent waiting for it counts.
    const int64_t now = clock_->NowMillis();
    SendState state;
    Status ws = ReadSendState(conn, request, limits, now, &state);
    if (!ws.ok()) return ws;
    decided = DecideSend(state, !request.client_ip.empty(), now, limits);
    if (!decided.allowed) return Status::OK();
    SqliteStatement stmt;
    ws = conn->Prepare(kInsertSendSql, &stmt);
    if (!ws.ok()) return ws;
    stmt.BindText(1, request.user_id);
    stmt.BindText(2, request.phone);
    stmt.BindText(3, request.client_ip);
    stmt.BindInt64(4, now);
    stmt.BindInt64(5, request.counts_toward_global ? 1 : 0);
    stmt.BindText(6, ChannelName(request.channel));
    return stmt.Run();
  });
  if (s.ok()) *decision = decided;
  return s;
}

Status SqliteStorage::ReadVerifyState(SqliteConnection* conn, const std::string& user_id,
                                      const VerifyLimits& limits, int64_t now,
                                      VerifyState* state) {
  *state = VerifyState();
  Status s = NthRecent(conn, kNthFailureSql, user_id, limits.max_failures,
                       limits.failure_window_ms, now, &state->nth_failure_at_ms);
  if (!s.ok()) return s;
  SqliteStatement stmt;
  s = conn->Prepare(kSelectSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, user_id);
  s = stmt.Step(&state->code.exists);
  if (s.ok() && state->code.exists) {
    state->code.code_hash = stmt.ColumnBlob(0);
    state->code.expires_at_ms = stmt.ColumnInt64(1);
    state->code.attempts = stmt.ColumnInt64(2);
  }
  return s;
}

Status SqliteStorage::ApplyVerify(SqliteConnection* conn, const std::string& user_id,
                                  VerifyEffect effect, int64_t now) {
  switch (effect) {
    case VerifyEffect::kNone:
      return Status::OK();
    case VerifyEffect::kDeleteCode:
      return RunForUser(conn, kDeleteSql, user_id);
    case VerifyEffect::kConsume: {
      Status s = RunForUser(conn, kDeleteSql, user_id);
      return s.ok() ? RunForUser(conn, kClearFailuresSql, user_id) : s;
    }
    case VerifyEffect::kCountFailure: {
      Status s = RunForUser(conn, kAddAttemptSql, user_id);
      return s.ok() ? RecordFailure(conn, user_id, now) : s;
    }
  }
  return Status::Internal("unknown verify effect");
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

// The decisions that change nothing (throttled, no code, expired within
// the grace period, locked) are answered from plain reads, without the
// write lock: a concurrent send or verify can only move such a code to a
// state that a verify ordered before it would not see. Any decision with
// an effect is taken again, and applied, inside one BEGIN IMMEDIATE
// transaction.
Status SqliteStorage::VerifyCode(const std::string& user_id, const std::string& code_hash,
                                 const VerifyLimits& limits, VerifyResult* result) {
  VerifyState state;
  VerifyDecision decided;
  {
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    if (!s.ok()) return s;
    s = ReadVerifyState(lease.get(), user_id, limits, clock_->NowMillis(), &state);
    if (!s.ok()) return s;
    decided = DecideVerify(state, code_hash, clock_->NowMillis(), limits);
  }
  Status s;
  if (decided.effect != VerifyEffect::kNone) {
    s = db_->GroupWrite([&](SqliteConnection* conn) {
      // Read after the lock was taken: time spent waiting for it counts.
      const int64_t now = clock_->NowMillis();
      Status ws = ReadVerifyState(conn, user_id, limits, now, &state);
      if (!ws.ok()) return ws;
      decided = DecideVerify(state, code_hash, now, limits);
      return ApplyVerify(conn, user_id, decided.effect, now);
    });
  }
  if (s.ok()) *result = decided.result;
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
// opened (writes to an unlinked file would vanish at the next start). See
// SqliteDb::ProbeWrite.
Status SqliteStorage::CheckWritable() {
  return db_->ProbeWrite([this](SqliteConnection* conn) {
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

// Stores `fingerprint` in the settings table when none is there, and
// refuses one that differs from the stored one.
Status CheckSecretFingerprint(SqliteDb* db, const std::string& fingerprint) {
  if (fingerprint.empty()) return Status::OK();
  SqliteLease lease;
  Status s = db->Acquire(&lease);
  if (!s.ok()) return s;
  SqliteConnection* conn = lease.get();
  std::string stored;
  s = WriteTransaction(conn, [&] {
    SqliteStatement insert;
    Status ws = conn->Prepare(kInsertFingerprintSql, &insert);
    if (!ws.ok()) return ws;
    insert.BindText(1, fingerprint);
    ws = insert.Run();
    SqliteStatement select;
    if (ws.ok()) ws = conn->Prepare(kSelectFingerprintSql, &select);
    bool row = false;
    if (ws.ok()) ws = select.Step(&row);
    if (ws.ok() && row) stored = select.ColumnText(0);
    return ws;
  });
  if (!s.ok()) return s;
  if (stored == fingerprint) return Status::OK();
  const std::string& path = db->options().path;
  return Status::InvalidArgument(
      "database " + path +
      " holds codes hashed with another secret; start otpd with the secret the other "
      "processes on this file use (secret or secret_file), or, if that secret is lost, "
      "forget its codes: sqlite3 " + path +
      " \"DELETE FROM otps; DELETE FROM settings WHERE key = 'secret_fingerprint'\"");
}

}  // namespace

Status NewSqliteStorage(std::shared_ptr<SqliteDb> db, Clock* clock,
                        std::unique_ptr<Storage>* storage) {
  return NewSqliteStorage(std::move(db), clock, SqliteStorageOptions(), storage);
}

Status NewSqliteStorage(std::shared_ptr<SqliteDb> db, Clock* clock,
                        const SqliteStorageOptions& options, std::unique_ptr<Storage>* storage) {
  if (db == nullptr || clock == nullptr) {
    return Status::InvalidArgument("NewSqliteStorage needs a database and a clock");
  }
  Status s = CheckSecretFingerprint(db.get(), options.secret_fingerprint);
  if (!s.ok()) return s;
  storage->reset(new SqliteStorage(std::move(db), clock));
  return Status::OK();
}

}  // namespace otpd
