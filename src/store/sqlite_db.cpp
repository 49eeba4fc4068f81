#include "store/sqlite_db.h"

#include <fcntl.h>
#include <sched.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

namespace otpd {
namespace {

// The schema, one step per version: kMigrations[i] takes a database from
// version i to i + 1, and SqliteSchemaVersion() is the number of steps.
// Append-only: a step that has shipped is never edited; later changes
// (a locale column, send history, an audit table) are new steps.
const char* const kMigrations[] = {
    // Version 1: users, live codes, and the row /readyz rewrites.
    R"sql(
CREATE TABLE users (
  user_id TEXT PRIMARY KEY COLLATE NOCASE
    CHECK (typeof(user_id) = 'text' AND length(CAST(user_id AS BLOB)) BETWEEN 1 AND 128),
  -- NULL: the user exists but has no phone on record.
  phone TEXT CHECK (phone IS NULL OR (phone GLOB '+[1-9]*' AND length(phone) BETWEEN 3 AND 16
                                      AND substr(phone, 2) NOT GLOB '*[^0-9]*')),
  -- 1: added by the [users] table of the config file, removed by a sync
  -- that no longer lists it. 0: added with SQL or `otpd users`.
  from_config INTEGER NOT NULL DEFAULT 0 CHECK (from_config IN (0, 1)),
  -- Milliseconds since the Unix epoch, like every time in this file.
  created_at INTEGER DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)),
  updated_at INTEGER DEFAULT (CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER))
) WITHOUT ROWID;

-- No foreign key to users: the code of a user removed with SQL just expires.
CREATE TABLE otps (
  user_id TEXT PRIMARY KEY COLLATE NOCASE,
  code_hash BLOB NOT NULL,
  issued_at INTEGER NOT NULL,
  expires_at INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE INDEX otps_expires_at ON otps (expires_at);

-- One row, rewritten by Storage::CheckWritable: a real write for /readyz.
CREATE TABLE health (
  id INTEGER PRIMARY KEY CHECK (id = 1),
  checked_at INTEGER NOT NULL
);
)sql",
    // Users' language for the SMS template ("es", "pt-BR"); NULL: default.
    R"sql(
ALTER TABLE users ADD COLUMN locale TEXT
  CHECK (locale IS NULL OR (length(locale) BETWEEN 1 AND 35
                            AND locale NOT GLOB '*[^A-Za-z0-9_-]*'));
)sql",
    // Send history and failed verifications, which the abuse limits count
    // (Storage::ReserveSend, Storage::VerifyCode). Pruned by PurgeExpired.
    R"sql(
CREATE TABLE sends (
  user_id TEXT NOT NULL COLLATE NOCASE,
  phone TEXT NOT NULL,
  client_ip TEXT NOT NULL,  -- '' when unknown
  at INTEGER NOT NULL
);
CREATE INDEX sends_user_at ON sends (user_id, at);
CREATE INDEX sends_phone_at ON sends (phone, at);
CREATE INDEX sends_ip_at ON sends (client_ip, at);
CREATE INDEX sends_at ON sends (at);

CREATE TABLE verify_failures (
  user_id TEXT NOT NULL COLLATE NOCASE,
  at INTEGER NOT NULL
);
CREATE INDEX verify_failures_user_at ON verify_failures (user_id, at);
CREATE INDEX verify_failures_at ON verify_failures (at);
)sql",
    // The audit trail (audit.h): no codes, masked phones only.
    R"sql(
CREATE TABLE audit (
  at INTEGER NOT NULL,
  user_id TEXT NOT NULL COLLATE NOCASE,
  phone TEXT NOT NULL,  -- masked
  client_ip TEXT NOT NULL,
  event TEXT NOT NULL,
  outcome TEXT NOT NULL
);
CREATE INDEX audit_user_at ON audit (user_id, at);
CREATE INDEX audit_at ON audit (at);
)sql",
    // Settings every process on the file must agree on (the code-hash
    // secret's fingerprint), and the scratch table /readyz's probe writes
    // 64 KiB into and deletes again.
    R"sql(
CREATE TABLE settings (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE write_probe (data BLOB);
)sql",
    // Sends the global cap (sms_budget_per_hour) counts: 0 for concealed
    // sends, which text nobody (SendRequest::counts_toward_global).
    R"sql(
ALTER TABLE sends ADD COLUMN counts_global INTEGER NOT NULL DEFAULT 1
  CHECK (counts_global IN (0, 1));
)sql",
    // The channel of each send (SendRequest::channel): the global cap is
    // per channel. Sends from before this step were all SMS.
    R"sql(
ALTER TABLE sends ADD COLUMN channel TEXT NOT NULL DEFAULT 'sms'
  CHECK (channel IN ('sms', 'voice', 'whatsapp'));
)sql",
    // The code store becomes an append-only log of decisions (code_log.h):
    // one row per code issued, wrong guess, code used up or removed, send
    // and (migrated) failure. Live codes, attempts, send history and
    // failures are carried over. `otps` stays as a view of the live codes
    // over the log; inserting into it, updating or deleting from it with
    // plain SQL appends rows, which every otpd on the file applies.
    R"sql(
CREATE TABLE code_log (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  kind INTEGER NOT NULL CHECK (kind BETWEEN 1 AND 6),
  user_id TEXT NOT NULL COLLATE NOCASE,
  at INTEGER NOT NULL,
  code_hash BLOB,
  expires_at INTEGER,
  n INTEGER NOT NULL DEFAULT 0,
  phone TEXT,
  client_ip TEXT,
  channel TEXT
);
-- Only the codes are indexed by user (the otps view finds a user's code
-- with it); the other rows are appended to the end of the table alone, so
-- a batch of decisions dirties a handful of pages, not one per decision.
CREATE INDEX code_log_codes ON code_log (user_id, seq) WHERE kind = 1;

INSERT INTO code_log (kind, user_id, at, code_hash, expires_at, n)
  SELECT 1, user_id, issued_at, code_hash, expires_at, attempts FROM otps ORDER BY user_id;
INSERT INTO code_log (kind, user_id, at, n, phone, client_ip, channel)
  SELECT 5, user_id, at, counts_global, phone, client_ip, channel FROM sends ORDER BY at;
INSERT INTO code_log (kind, user_id, at)
  SELECT 6, user_id, at FROM verify_failures ORDER BY at;
DROP TABLE otps;
DROP TABLE sends;
DROP TABLE verify_failures;

CREATE VIEW otps (user_id, code_hash, issued_at, expires_at, attempts) AS
  SELECT p.user_id, p.code_hash, p.at, p.expires_at,
         p.n + (SELECT count(*) FROM code_log f
                WHERE f.user_id = p.user_id AND f.seq > p.seq AND f.kind = 2)
  FROM code_log p
  WHERE p.kind = 1 AND NOT EXISTS (SELECT 1 FROM code_log k
                                   WHERE k.user_id = p.user_id AND k.seq > p.seq
                                     AND k.kind IN (1, 3, 4));

CREATE TRIGGER otps_insert INSTEAD OF INSERT ON otps BEGIN
  SELECT RAISE(ABORT, 'UNIQUE constraint failed: otps.user_id')
    WHERE EXISTS (SELECT 1 FROM otps WHERE user_id = NEW.user_id);
  INSERT INTO code_log (kind, user_id, at, code_hash, expires_at, n)
    VALUES (1, NEW.user_id, NEW.issued_at, NEW.code_hash, NEW.expires_at,
            COALESCE(NEW.attempts, 0));
END;
CREATE TRIGGER otps_delete INSTEAD OF DELETE ON otps BEGIN
  INSERT INTO code_log (kind, user_id, at) VALUES (4, OLD.user_id, OLD.issued_at);
END;
CREATE TRIGGER otps_update INSTEAD OF UPDATE ON otps BEGIN
  INSERT INTO code_log (kind, user_id, at) VALUES (4, OLD.user_id, OLD.issued_at);
  INSERT INTO code_log (kind, user_id, at, code_hash, expires_at, n)
    VALUES (1, NEW.user_id, NEW.issued_at, NEW.code_hash, NEW.expires_at, NEW.attempts);
END;
)sql",
    // The audit trail is appended to in time order and indexed by time
    // only. Its index by user put every record in a page of its own once
    // the table outgrew a batch: with a week of history (2M records) a
    // verify-code run fell from 24.8k to 15k requests a second and its p99
    // rose from 6 to 42 ms. A per-user query now reads its time window
    // (README, "Audit trail"); an operator who wants the index back can
    // create it with SQL and the queries use it.
    R"sql(
DROP INDEX IF EXISTS audit_user_at;
)sql",
    // What libphonenumber said of each user's phone, so a send does not
    // parse it again (tens of microseconds of regular expressions, a
    // quarter of a send's CPU): a cache of a pure function, keyed by the
    // phone as users holds it and by the plans that judged it
    // (PhonePlansId). Any row may be deleted; the next send parses again.
    // The triggers drop a number's row when a user's phone changes or the
    // user is removed, so a number otpd no longer has does not linger here
    // (another user with the same number has it parsed again). e164 NULL:
    // the same as phone.
    R"sql(
CREATE TABLE phone_checks (
  phone TEXT PRIMARY KEY,
  plans TEXT NOT NULL,
  e164 TEXT,
  region TEXT NOT NULL,
  type TEXT NOT NULL
) WITHOUT ROWID;
CREATE TRIGGER users_phone_changed AFTER UPDATE OF phone ON users
  WHEN OLD.phone IS NOT NEW.phone BEGIN
  DELETE FROM phone_checks WHERE phone = OLD.phone;
END;
CREATE TRIGGER users_deleted AFTER DELETE ON users BEGIN
  DELETE FROM phone_checks WHERE phone = OLD.phone;
END;
)sql",
};

constexpr int kSchemaVersion = static_cast<int>(sizeof(kMigrations) / sizeof(kMigrations[0]));

// The first line of a statement, short enough for an error message.
std::string Abbreviate(const char* sql) {
  std::string text = sql ? sql : "";
  const size_t start = text.find_first_not_of(" \n");
  if (start == std::string::npos) return "";
  text = text.substr(start, text.find('\n', start) - start);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

Status ErrnoStatus(const std::string& what, const std::string& path, int err) {
  std::string msg = what + " " + path + ": " + std::strerror(err);
  if (err == ENOENT) msg += " (its directory must exist)";
  return Status::IOError(msg);
}

// `s` with `prefix` in front of its message, same code.
Status Prefixed(const Status& s, const std::string& prefix) {
  std::string msg = prefix + ": " + s.message();
  switch (s.code()) {
    case Status::Code::kBusy:
      return Status::Busy(std::move(msg));
    case Status::Code::kIOError:
      return Status::IOError(std::move(msg));
    case Status::Code::kInvalidArgument:
      return Status::InvalidArgument(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

// Creates the file ourselves so it is 0600 whatever the umask; SQLite gives
// the -wal and -shm files the main file's permissions.
Status CreateDatabaseFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    if (errno == EEXIST) return Status::OK();
    return ErrnoStatus("cannot create database file", path, errno);
  }
  Status s;
  if (fchmod(fd, 0600) != 0) s = ErrnoStatus("cannot chmod database file", path, errno);
  close(fd);
  return s;
}

Status ReadUserVersion(SqliteConnection* conn, int* version) {
  SqliteStatement stmt;
  Status s = conn->Prepare("PRAGMA user_version", &stmt);
  bool row = false;
  if (s.ok()) s = stmt.Step(&row);
  if (s.ok() && !row) s = Status::Internal("PRAGMA user_version returned no row");
  if (s.ok()) *version = static_cast<int>(stmt.ColumnInt64(0));
  return s;
}

Status RefuseNewer(const std::string& path, int version) {
  return Status::InvalidArgument("database " + path + " has schema version " +
                                 std::to_string(version) + ", newer than version " +
                                 std::to_string(kSchemaVersion) +
                                 " that this otpd knows; run a newer otpd");
}

// Inside BEGIN IMMEDIATE, re-reading the version: a second process that
// opened the same new file waits for the lock, then finds nothing to do.
Status MigrateLocked(SqliteConnection* conn, const std::string& path) {
  int version = 0;
  Status s = ReadUserVersion(conn, &version);
  if (!s.ok()) return s;
  if (version > kSchemaVersion) return RefuseNewer(path, version);
  for (int v = version; v < kSchemaVersion; v++) {
    s = conn->Exec(kMigrations[v]);
    if (!s.ok()) {
      return Prefixed(s, "cannot migrate " + path + " to schema version " + std::to_string(v + 1));
    }
  }
  const std::string set = "PRAGMA user_version = " + std::to_string(kSchemaVersion);
  return conn->Exec(set.c_str());
}

// WAL is a property of the file, so setting it once at open is enough.
// REQUIRES: the connection has read the file, so that on a file already in
// WAL mode this is a no-op.
Status EnableWal(SqliteConnection* conn, const std::string& path) {
  SqliteStatement stmt;
  Status s = conn->Prepare("PRAGMA journal_mode = WAL", &stmt);
  bool row = false;
  if (s.ok()) s = stmt.Step(&row);
  if (!s.ok()) return Prefixed(s, "cannot switch database " + path + " to WAL mode");
  const std::string mode = row ? stmt.ColumnText(0) : "";
  if (mode != "wal") {
    return Status::IOError("cannot switch database " + path + " to WAL mode (journal_mode is '" +
                           mode + "')");
  }
  return Status::OK();
}

// Reads the version first (a file that is not a database fails there, and a
// newer one is refused before anything is written), then sets WAL mode and
// migrates under the write lock.
Status SetUpFile(SqliteConnection* conn, const std::string& path) {
  int version = 0;
  Status s = ReadUserVersion(conn, &version);
  if (!s.ok()) return Prefixed(s, "cannot open database " + path);
  if (version > kSchemaVersion) return RefuseNewer(path, version);
  s = EnableWal(conn, path);
  if (!s.ok() || version == kSchemaVersion) return s;
  SqliteTransaction txn(conn);
  s = txn.Begin();
  if (s.ok()) s = MigrateLocked(conn, path);
  if (s.ok()) s = txn.Commit();
  return s;
}

// Switching a new file to WAL can answer SQLITE_BUSY at once, without the
// busy handler, while another connection is switching it too. Every step of
// SetUpFile is idempotent, so it is retried until busy_timeout has passed.
Status SetUpFileRetrying(SqliteConnection* conn, const SqliteOptions& options) {
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_timeout_ms);
  Status s = SetUpFile(conn, options.path);
  while (s.code() == Status::Code::kBusy && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    s = SetUpFile(conn, options.path);
  }
  return s;
}

}  // namespace

int SqliteSchemaVersion() { return kSchemaVersion; }

Status SqliteStatus(sqlite3* db, int rc, const std::string& context) {
  const bool db_has_it = db != nullptr && (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff);
  std::string msg = context + ": " + (db_has_it ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
      return Status::Busy(std::move(msg));
    case SQLITE_CONSTRAINT:
      return Status::InvalidArgument(std::move(msg));
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOTADB:
    case SQLITE_CORRUPT:
      return Status::IOError(std::move(msg));
    default:
      return Status::Internal(std::move(msg));
  }
}

// ---------------------------------------------------------------------------
// SqliteStatement

SqliteStatement::~SqliteStatement() { Reset(nullptr); }

void SqliteStatement::Reset(sqlite3_stmt* stmt, SqliteConnection* conn) {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  stmt_ = stmt;
  conn_ = conn;
  bind_error_ = 0;
}

void SqliteStatement::BindText(int index, const std::string& value) {
  int rc = sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()),
                             SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

void SqliteStatement::BindBlob(int index, const std::string& value) {
  int rc = sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()),
                             SQLITE_TRANSIENT);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

void SqliteStatement::BindInt64(int index, int64_t value) {
  int rc = sqlite3_bind_int64(stmt_, index, value);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

Status SqliteStatement::Step(bool* row) {
  if (stmt_ == nullptr) return Status::Internal("Step on a statement that was not prepared");
  if (bind_error_ != 0) {
    return SqliteStatus(nullptr, bind_error_,
                        "cannot bind a parameter of " + Abbreviate(sqlite3_sql(stmt_)));
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    *row = rc == SQLITE_ROW;
    return Status::OK();
  }
  Status s = SqliteStatus(sqlite3_db_handle(stmt_), rc, Abbreviate(sqlite3_sql(stmt_)));
  if (conn_ != nullptr) conn_->NoteFailure(rc, s);
  return s;
}

Status SqliteStatement::Run() {
  bool row = false;
  Status s = Step(&row);
  if (s.ok() && row) {
    s = Status::Internal("statement returned rows: " + Abbreviate(sqlite3_sql(stmt_)));
  }
  return s;
}

int64_t SqliteStatement::ColumnInt64(int column) const {
  return sqlite3_column_int64(stmt_, column);
}

std::string SqliteStatement::ColumnText(int column) const {
  const unsigned char* text = sqlite3_column_text(stmt_, column);
  if (text == nullptr) return std::string();
  return std::string(reinterpret_cast<const char*>(text),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

std::string SqliteStatement::ColumnBlob(int column) const {
  const void* blob = sqlite3_column_blob(stmt_, column);
  if (blob == nullptr) return std::string();
  return std::string(static_cast<const char*>(blob),
                     static_cast<size_t>(sqlite3_column_bytes(stmt_, column)));
}

// ---------------------------------------------------------------------------
// SqliteConnection

Status SqliteConnection::Open(const SqliteOptions& options,
                              std::unique_ptr<SqliteConnection>* conn) {
  sqlite3* db = nullptr;
  // No SQLITE_OPEN_CREATE: OpenSqliteDb created the file with the right mode,
  // and a file removed since then must not come back empty. NOMUTEX: a
  // connection is only ever used by one thread.
  int rc = sqlite3_open_v2(options.path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX,
                           nullptr);
  if (rc != SQLITE_OK) {
    Status s = SqliteStatus(db, rc, "cannot open database " + options.path);
    sqlite3_close(db);
    return s;
  }
  std::unique_ptr<SqliteConnection> fresh(new SqliteConnection(db));
  Status s = fresh->Configure(options);
  if (s.ok()) *conn = std::move(fresh);
  return s;
}

// Waits for another connection's write lock. SQLite's own busy_timeout
// sleeps 1 to 100 ms between tries, which under many request threads turns
// a lock held for tens of microseconds into a p99 of hundreds of
// milliseconds; yielding first and then sleeping briefly keeps the wait
// close to the time the lock is actually held, up to busy_timeout_ms.
int SqliteConnection::BusyWait(void* args, int count) {
  const auto* busy = static_cast<const BusyWaitArgs*>(args);
  thread_local int64_t started_us = 0;
  const int64_t now_us = busy->clock->MonotonicMicros();
  if (count == 0) started_us = now_us;
  if (now_us - started_us >= int64_t{busy->timeout_ms} * 1000) return 0;
  if (count < 20) {
    sched_yield();
  } else {
    busy->clock->SleepMicros(count < 200 ? 50 : 500);
  }
  return 1;
}

Status SqliteConnection::Configure(const SqliteOptions& options) {
  sqlite3_extended_result_codes(db_, 1);
  busy_.timeout_ms = options.busy_timeout_ms;
  busy_.clock = options.clock != nullptr ? options.clock : SystemClock();
  int rc = sqlite3_busy_handler(db_, BusyWait, &busy_);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, "cannot set busy_timeout on " + options.path);
  if (options.synchronous != "NORMAL" && options.synchronous != "FULL") {
    return Status::InvalidArgument("synchronous must be NORMAL or FULL, not \"" +
                                   options.synchronous + "\"");
  }
  const bool bounded = options.checkpoint_interval_ms > 0 && options.wal_limit_bytes > 0;
  std::string pragmas =
      "PRAGMA synchronous = " + options.synchronous +
      "; PRAGMA foreign_keys = ON; PRAGMA mmap_size = " + std::to_string(options.mmap_size) +
      "; PRAGMA cache_size = -" + std::to_string(options.cache_kib) +
      "; PRAGMA wal_autocheckpoint = " + (options.checkpoint_interval_ms > 0 ? "0" : "1000") + ";";
  if (bounded) {
    pragmas += " PRAGMA journal_size_limit = " + std::to_string(options.wal_limit_bytes) + ";";
  }
  if (options.max_page_count > 0) {
    pragmas += " PRAGMA max_page_count = " + std::to_string(options.max_page_count) + ";";
  }
  rc = sqlite3_exec(db_, pragmas.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, "cannot open database " + options.path);
  if (bounded) {
    sqlite3_stmt* stmt = nullptr;
    int64_t page_size = 4096;
    if (sqlite3_prepare_v2(db_, "PRAGMA page_size", -1, &stmt, nullptr) == SQLITE_OK &&
        sqlite3_step(stmt) == SQLITE_ROW) {
      page_size = std::max<int64_t>(512, sqlite3_column_int64(stmt, 0));
    }
    sqlite3_finalize(stmt);
    wal_limit_frames_ = std::max<int64_t>(1, options.wal_limit_bytes / page_size);
    sqlite3_wal_hook(db_, WalHook, this);
  }
  return Status::OK();
}

// Runs after each commit. Past half the limit it wakes the checkpointer,
// which copies the WAL into the database without blocking anyone (PASSIVE)
// and then restarts it from the start, so the commits queued behind this
// one never wait for a copy of the whole WAL. At the limit (the
// checkpointer fell behind) the commit checkpoints itself, with SQLite's
// write lock released but this process's writer mutex still held
// (SqliteTransaction::Commit), so no thread of this process queues a
// commit behind a WAL that only grows: TRUNCATE waits (busy handler) for
// readers and other processes' writers, copies the WAL into the database
// and empties it. On failure (busy) the next commit tries again.
int SqliteConnection::WalHook(void* arg, sqlite3* db, const char* name, int frames) {
  SqliteConnection* conn = static_cast<SqliteConnection*>(arg);
  if (frames < conn->wal_limit_frames_) {
    if (frames >= conn->wal_limit_frames_ / 2 && conn->owner_ != nullptr) {
      conn->owner_->RequestCheckpoint();
    }
    return SQLITE_OK;
  }
  // After the checkpointer's copy, if one is under way (it would make this
  // one fail busy while the WAL grows).
  std::unique_lock<std::mutex> copying;
  if (conn->owner_ != nullptr) copying = std::unique_lock<std::mutex>(conn->owner_->copy_mu_);
  const int rc = sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_TRUNCATE, nullptr, nullptr);
  if (rc == SQLITE_OK && conn->owner_ != nullptr) conn->owner_->bounded_checkpoints_++;
  return SQLITE_OK;
}

void SqliteConnection::NoteFailure(int rc, const Status& s) {
  const int primary = rc & 0xff;
  if (owner_ != nullptr &&
      (primary == SQLITE_FULL || primary == SQLITE_READONLY || primary == SQLITE_IOERR)) {
    owner_->SetWriteError(s);
  }
}

SqliteConnection::~SqliteConnection() {
  for (auto& entry : statements_) sqlite3_finalize(entry.second);
  sqlite3_close(db_);
}

Status SqliteConnection::Prepare(const char* sql, SqliteStatement* stmt) {
  auto it = statements_.find(sql);
  if (it == statements_.end()) {
    sqlite3_stmt* raw = nullptr;
    int rc = sqlite3_prepare_v3(db_, sql, -1, SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
    if (rc != SQLITE_OK) return SqliteStatus(db_, rc, "cannot prepare " + Abbreviate(sql));
    if (raw == nullptr) return Status::Internal("empty statement: " + Abbreviate(sql));
    it = statements_.emplace(sql, raw).first;
  }
  stmt->Reset(it->second, this);
  return Status::OK();
}

Status SqliteConnection::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc == SQLITE_OK) return Status::OK();
  Status s = SqliteStatus(db_, rc, Abbreviate(sql));
  NoteFailure(rc, s);
  return s;
}

int64_t SqliteConnection::Changes() const { return sqlite3_changes64(db_); }

int64_t SqliteConnection::LastInsertRowid() const { return sqlite3_last_insert_rowid(db_); }

// ---------------------------------------------------------------------------
// SqliteTransaction

Status SqliteTransaction::Begin() {
  // A write to a file that was removed or replaced would vanish at the
  // next start: refused, and /readyz fails with it.
  if (conn_->owner_ != nullptr && conn_->owner_->ino_ != 0) {
    Status moved = conn_->owner_->CheckFileUnchanged();
    if (!moved.ok()) {
      conn_->owner_->SetWriteError(moved);
      return moved;
    }
  }
  if (conn_->write_mutex_ != nullptr) writer_ = std::unique_lock<std::mutex>(*conn_->write_mutex_);
  SqliteStatement stmt;
  Status s = conn_->Prepare("BEGIN IMMEDIATE", &stmt);
  if (s.ok()) s = stmt.Run();
  open_ = s.ok();
  if (!open_ && writer_.owns_lock()) writer_.unlock();
  return s;
}

Status SqliteTransaction::Commit() {
  SqliteStatement stmt;
  Status s = conn_->Prepare("COMMIT", &stmt);
  if (s.ok()) s = stmt.Run();
  if (s.ok()) {
    open_ = false;
    if (writer_.owns_lock()) writer_.unlock();
    if (conn_->owner_ != nullptr) conn_->owner_->ClearWriteError();
  }
  return s;
}

SqliteTransaction::~SqliteTransaction() {
  // A failed statement (I/O error, disk full) may already have rolled back.
  if (!open_ || sqlite3_get_autocommit(conn_->handle())) return;
  SqliteStatement stmt;
  if (conn_->Prepare("ROLLBACK", &stmt).ok()) stmt.Run();
}

Status WriteTransaction(SqliteConnection* conn, const std::function<Status()>& body) {
  SqliteTransaction txn(conn);
  Status s = txn.Begin();
  if (s.ok()) s = body();
  if (s.ok()) s = txn.Commit();
  return s;
}

// ---------------------------------------------------------------------------
// SqliteDb

SqliteDb::~SqliteDb() {
  if (checkpointer_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      stopping_ = true;
    }
    checkpoint_cv_.notify_all();
    checkpointer_.join();
  }
}

// PASSIVE: copies what it can without waiting for, or blocking, readers and
// writers; the fsync of the database file happens here, not in a commit.
// Asked by WalHook past half the WAL limit, it then also restarts the WAL
// (RESTART: the copy is already done, so writers wait only for the frames
// committed since), keeping the file's blocks for the next frames.
void SqliteDb::CheckpointLoop() {
  std::unique_lock<std::mutex> lock(checkpoint_mu_);
  const auto interval = std::chrono::milliseconds(options_.checkpoint_interval_ms);
  while (true) {
    checkpoint_cv_.wait_for(lock, interval, [this] { return stopping_ || checkpoint_asked_; });
    if (stopping_) return;
    const bool asked = checkpoint_asked_;
    checkpoint_asked_ = false;
    lock.unlock();
    SqliteLease lease;
    if (Acquire(&lease).ok()) {
      int rc = SQLITE_OK;
      {
        std::lock_guard<std::mutex> copying(copy_mu_);
        rc = sqlite3_wal_checkpoint_v2(lease->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                       nullptr);
      }
      if (asked && rc == SQLITE_OK) {
        // Between this process's transactions (its writer mutex), so it
        // waits only for other processes.
        // The frames committed since are copied first (PASSIVE again, 1 to
        // 2 ms in a verify run; the slowest RESTARTs that copied them
        // themselves took 6 to 9 ms), so the RESTART only resets the WAL.
        std::lock_guard<std::mutex> writers(write_mutex_);
        std::lock_guard<std::mutex> copying(copy_mu_);
        sqlite3_wal_checkpoint_v2(lease->handle(), nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                  nullptr);
        if (sqlite3_wal_checkpoint_v2(lease->handle(), nullptr, SQLITE_CHECKPOINT_RESTART, nullptr,
                                      nullptr) == SQLITE_OK) {
          background_restarts_++;
        }
      }
    }
    lease.Reset();
    lock.lock();
  }
}

void SqliteDb::RequestCheckpoint() {
  if (!checkpointer_.joinable()) return;
  std::lock_guard<std::mutex> lock(checkpoint_mu_);
  if (checkpoint_asked_) return;
  checkpoint_asked_ = true;
  checkpoint_cv_.notify_one();
}

// Lends an idle connection, opens a new one while fewer than pool_size
// exist, or waits for one to come back (up to busy_timeout_ms). Opening
// happens outside the lock; `opening_` reserves the slot meanwhile.
Status SqliteDb::Acquire(SqliteLease* lease) {
  lease->Reset();
  std::unique_lock<std::mutex> lock(mu_);
  Clock* clock = options_.clock != nullptr ? options_.clock : SystemClock();
  const int64_t deadline_us = clock->MonotonicMicros() + int64_t{options_.busy_timeout_ms} * 1000;
  while (idle_.empty() && all_.size() + opening_ >= options_.pool_size) {
    if (clock->WaitUntilMicros(&pool_cv_, &lock, deadline_us) && idle_.empty() &&
        all_.size() + opening_ >= options_.pool_size) {
      return Status::Busy("all " + std::to_string(options_.pool_size) +
                          " database connections stayed busy for busy_timeout_ms");
    }
  }
  if (!idle_.empty()) {
    lease->Set(this, idle_.back());
    idle_.pop_back();
    return Status::OK();
  }
  opening_++;
  lock.unlock();
  std::unique_ptr<SqliteConnection> fresh;
  Status s = SqliteConnection::Open(options_, &fresh);
  lock.lock();
  opening_--;
  if (!s.ok()) {
    pool_cv_.notify_one();
    return s;
  }
  fresh->write_mutex_ = &write_mutex_;
  fresh->owner_ = this;
  lease->Set(this, fresh.get());
  all_.push_back(std::move(fresh));
  return Status::OK();
}

void SqliteDb::Return(SqliteConnection* conn) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(conn);
  }
  pool_cv_.notify_one();
}

void SqliteLease::Reset() {
  if (db_ != nullptr) db_->Return(conn_);
  db_ = nullptr;
  conn_ = nullptr;
}

namespace {

// Runs the backup from `src` into the open, empty `dest`, then makes the
// copy a single self-contained file.
Status CopyInto(sqlite3* src, sqlite3* dest) {
  sqlite3_backup* backup = sqlite3_backup_init(dest, "main", src, "main");
  if (backup == nullptr) return SqliteStatus(dest, sqlite3_errcode(dest), "backup");
  // -1: every page in one step, under one read transaction, so the copy is
  // one moment of the source even while writers commit.
  int rc = sqlite3_backup_step(backup, -1);
  const int finish = sqlite3_backup_finish(backup);
  if (rc != SQLITE_DONE) return SqliteStatus(nullptr, rc, "backup step");
  if (finish != SQLITE_OK) return SqliteStatus(dest, finish, "backup");
  rc = sqlite3_exec(dest, "PRAGMA journal_mode=DELETE", nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(dest, rc, "backup journal_mode");
  return Status::OK();
}

}  // namespace

Status SqliteDb::Backup(const std::string& dest_path) {
  // Created here with O_EXCL, so an existing file is never touched and the
  // copy is private from the first byte.
  const int fd = ::open(dest_path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) {
    const std::string why = strerror(errno);
    if (errno == EEXIST) return Status::AlreadyExists(dest_path + " already exists");
    return Status::IOError("cannot create " + dest_path + ": " + why);
  }
  ::close(fd);
  SqliteLease lease;
  Status s = Acquire(&lease);
  SqliteConnection* conn = lease.get();
  sqlite3* dest = nullptr;
  if (s.ok()) {
    const int rc = sqlite3_open_v2(dest_path.c_str(), &dest, SQLITE_OPEN_READWRITE, nullptr);
    if (rc != SQLITE_OK) s = SqliteStatus(dest, rc, "open " + dest_path);
  }
  if (s.ok()) s = CopyInto(conn->handle(), dest);
  sqlite3_close_v2(dest);
  if (!s.ok()) ::unlink(dest_path.c_str());
  return s;
}

size_t SqliteDb::ConnectionCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return all_.size();
}

Status SqliteDb::CheckFileUnchanged() const {
  struct stat st;
  if (stat(options_.path.c_str(), &st) != 0) {
    return ErrnoStatus("database file is gone:", options_.path, errno);
  }
  if (st.st_dev != dev_ || st.st_ino != ino_) {
    return Status::IOError("database file " + options_.path +
                           " was replaced after otpd opened it; restart otpd");
  }
  return Status::OK();
}

Status SqliteDb::OpenWriter(std::unique_ptr<SqliteConnection>* conn) {
  Status s = SqliteConnection::Open(options_, conn);
  if (s.ok()) {
    (*conn)->write_mutex_ = &write_mutex_;
    (*conn)->owner_ = this;
  }
  return s;
}

Status SqliteDb::WriteBehind(const WriteBody& body) {
  {
    std::shared_lock<std::shared_mutex> lock(runner_mu_);
    if (runner_ != nullptr) return runner_->RunWrite(body);
  }
  SqliteLease lease;
  Status s = Acquire(&lease);
  if (!s.ok()) return s;
  SqliteConnection* conn = lease.get();
  return WriteTransaction(conn, [&] { return body(conn); });
}

void SqliteDb::SetWriteRunner(WriteRunner* runner) {
  std::unique_lock<std::shared_mutex> lock(runner_mu_);
  runner_ = runner;
}

void SqliteDb::SetWriteError(const Status& s) {
  std::lock_guard<std::mutex> lock(health_mu_);
  write_error_ = s.message();
  write_failed_.store(true);
}

void SqliteDb::ClearWriteError() {
  if (!write_failed_.load(std::memory_order_relaxed)) return;
  std::lock_guard<std::mutex> lock(health_mu_);
  write_failed_.store(false);
  write_error_.clear();
}

Status SqliteDb::WriteHealth() const {
  if (!write_failed_.load()) return Status::OK();
  std::lock_guard<std::mutex> lock(health_mu_);
  if (!write_failed_.load()) return Status::OK();
  return Status::IOError("the last write failed: " + write_error_);
}

Status SqliteDb::ProbeWrite(const std::function<Status(SqliteConnection*)>& upsert) {
  Status s = CheckFileUnchanged();
  if (!s.ok()) return s;
  if (options_.min_free_bytes > 0) {
    const size_t slash = options_.path.rfind('/');
    const std::string dir = slash == std::string::npos ? "." : options_.path.substr(0, slash + 1);
    struct statvfs fs;
    if (statvfs(dir.c_str(), &fs) == 0 &&
        static_cast<int64_t>(fs.f_bavail) * static_cast<int64_t>(fs.f_frsize) <
            options_.min_free_bytes) {
      return Status::IOError("the file system of " + options_.path + " has under " +
                             std::to_string(options_.min_free_bytes) + " bytes free");
    }
  }
  SqliteLease lease;
  s = Acquire(&lease);
  if (!s.ok()) return s;
  SqliteConnection* conn = lease.get();
  const bool failing = !WriteHealth().ok();
  s = WriteTransaction(conn, [&] {
    if (!failing) return upsert(conn);
    SqliteStatement stmt;
    Status ps = conn->Prepare("INSERT INTO write_probe (data) VALUES (zeroblob(65536))", &stmt);
    if (ps.ok()) ps = stmt.Run();
    SqliteStatement del;
    if (ps.ok()) ps = conn->Prepare("DELETE FROM write_probe", &del);
    if (ps.ok()) ps = del.Run();
    return ps.ok() ? upsert(conn) : ps;
  });
  if (!s.ok() && failing) {
    Status last = WriteHealth();
    if (!last.ok()) return last;
  }
  return s;
}

Status SqliteDb::ProbeHealth(int64_t now_ms) {
  return ProbeWrite([now_ms](SqliteConnection* conn) {
    SqliteStatement stmt;
    Status s = conn->Prepare(
        "INSERT INTO health (id, checked_at) VALUES (1, ?1)"
        " ON CONFLICT (id) DO UPDATE SET checked_at = excluded.checked_at",
        &stmt);
    if (!s.ok()) return s;
    stmt.BindInt64(1, now_ms);
    return stmt.Run();
  });
}

Status SqliteDb::Initialize() {
  Status s = CreateDatabaseFile(options_.path);
  SqliteLease conn;
  if (s.ok()) s = Acquire(&conn);
  if (s.ok()) s = SetUpFileRetrying(conn.get(), options_);
  if (!s.ok()) return s;
  struct stat st;
  if (stat(options_.path.c_str(), &st) != 0) {
    return ErrnoStatus("cannot stat database file", options_.path, errno);
  }
  dev_ = st.st_dev;
  ino_ = st.st_ino;
  if (options_.checkpoint_interval_ms > 0)
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
  return Status::OK();
}

Status OpenSqliteDb(const SqliteOptions& options, std::shared_ptr<SqliteDb>* db) {
  if (options.path.empty()) return Status::InvalidArgument("database path is empty");
  if (options.busy_timeout_ms < 0 || options.mmap_size < 0) {
    return Status::InvalidArgument("busy_timeout_ms and mmap_size must not be negative");
  }
  if (sqlite3_threadsafe() == 0) {
    return Status::Internal("this SQLite library was built without thread support");
  }
  std::shared_ptr<SqliteDb> handle(new SqliteDb(options));
  Status s = handle->Initialize();
  if (s.ok()) *db = std::move(handle);
  return s;
}

}  // namespace otpd
