#include "sqlite_db.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

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
    case Status::Code::kBusy: return Status::Busy(std::move(msg));
    case Status::Code::kIOError: return Status::IOError(std::move(msg));
    case Status::Code::kInvalidArgument: return Status::InvalidArgument(std::move(msg));
    default: return Status::Internal(std::move(msg));
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
  const bool db_has_it =
      db != nullptr && (sqlite3_extended_errcode(db) & 0xff) == (rc & 0xff);
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

void SqliteStatement::Reset(sqlite3_stmt* stmt) {
  if (stmt_ != nullptr) {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }
  stmt_ = stmt;
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

void SqliteStatement::BindNull(int index) {
  int rc = sqlite3_bind_null(stmt_, index);
  if (rc != SQLITE_OK && bind_error_ == 0) bind_error_ = rc;
}

Status SqliteStatement::Step(bool* row) {
  if (stmt_ == nullptr) return Status::Internal("Step on a statement that was not prepared");
  if (bind_error_ != 0) {
    return SqliteStatus(nullptr, bind_error_, "cannot bind a parameter of " +
                                                  Abbreviate(sqlite3_sql(stmt_)));
  }
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW || rc == SQLITE_DONE) {
    *row = rc == SQLITE_ROW;
    return Status::OK();
  }
  return SqliteStatus(sqlite3_db_handle(stmt_), rc, Abbreviate(sqlite3_sql(stmt_)));
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

bool SqliteStatement::ColumnIsNull(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

// ---------------------------------------------------------------------------
// SqliteConnection

Status SqliteConnection::Open(const SqliteOptions& options,
                              std::unique_ptr<SqliteConnection>* conn) {
  sqlite3* db = nullptr;
  // No SQLITE_OPEN_CREATE: OpenSqliteDb created the file with the right mode,
  // and a file removed since then must not come back empty. NOMUTEX: a
  // connection is only ever used by one thread.
  int rc = sqlite3_open_v2(options.path.c_str(), &db,
                           SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, nullptr);
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

Status SqliteConnection::Configure(const SqliteOptions& options) {
  sqlite3_extended_result_codes(db_, 1);
  int rc = sqlite3_busy_timeout(db_, options.busy_timeout_ms);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, "cannot set busy_timeout on " + options.path);
  const std::string pragmas =
      "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON; PRAGMA mmap_size = " +
      std::to_string(options.mmap_size) + ";";
  rc = sqlite3_exec(db_, pragmas.c_str(), nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, "cannot open database " + options.path);
  return Status::OK();
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
  stmt->Reset(it->second);
  return Status::OK();
}

Status SqliteConnection::Exec(const char* sql) {
  int rc = sqlite3_exec(db_, sql, nullptr, nullptr, nullptr);
  if (rc != SQLITE_OK) return SqliteStatus(db_, rc, Abbreviate(sql));
  return Status::OK();
}

int64_t SqliteConnection::Changes() const { return sqlite3_changes64(db_); }

// ---------------------------------------------------------------------------
// SqliteTransaction

Status SqliteTransaction::Begin() {
  SqliteStatement stmt;
  Status s = conn_->Prepare("BEGIN IMMEDIATE", &stmt);
  if (s.ok()) s = stmt.Run();
  open_ = s.ok();
  return s;
}

Status SqliteTransaction::Commit() {
  SqliteStatement stmt;
  Status s = conn_->Prepare("COMMIT", &stmt);
  if (s.ok()) s = stmt.Run();
  if (s.ok()) open_ = false;
  return s;
}

SqliteTransaction::~SqliteTransaction() {
  // A failed statement (I/O error, disk full) may already have rolled back.
  if (!open_ || sqlite3_get_autocommit(conn_->handle())) return;
  SqliteStatement stmt;
  if (conn_->Prepare("ROLLBACK", &stmt).ok()) stmt.Run();
}

// ---------------------------------------------------------------------------
// SqliteDb

// The connections this thread holds, one per live handle. Entries of handles
// destroyed since are recognized by their expired weak_ptr (a new handle may
// reuse the address) and dropped; their connections were closed by the
// handle. At thread exit the thread's connections go back to their handles.
struct SqliteDb::ThreadCache {
  struct Entry {
    const SqliteDb* key;
    std::weak_ptr<SqliteDb> db;
    SqliteConnection* conn;
  };
  std::vector<Entry> entries;

  ~ThreadCache() {
    for (Entry& entry : entries) {
      if (std::shared_ptr<SqliteDb> db = entry.db.lock()) db->Release(entry.conn);
    }
  }

  SqliteConnection* Find(const SqliteDb* key) const {
    for (const Entry& entry : entries) {
      if (entry.key == key && !entry.db.expired()) return entry.conn;
    }
    return nullptr;
  }

  void DropExpired() {
    std::vector<Entry> live;
    for (Entry& entry : entries) {
      if (!entry.db.expired()) live.push_back(std::move(entry));
    }
    entries.swap(live);
  }
};

SqliteDb::ThreadCache& SqliteDb::ThisThreadCache() {
  thread_local ThreadCache cache;
  return cache;
}

SqliteDb::~SqliteDb() = default;

Status SqliteDb::Connection(SqliteConnection** conn) {
  ThreadCache& cache = ThisThreadCache();
  if (SqliteConnection* found = cache.Find(this)) {
    *conn = found;
    return Status::OK();
  }
  cache.DropExpired();
  std::unique_ptr<SqliteConnection> fresh;
  Status s = SqliteConnection::Open(options_, &fresh);
  if (!s.ok()) return s;
  SqliteConnection* raw = fresh.get();
  {
    std::lock_guard<std::mutex> lock(mu_);
    connections_.emplace(raw, std::move(fresh));
  }
  cache.entries.push_back({this, weak_from_this(), raw});
  *conn = raw;
  return Status::OK();
}

void SqliteDb::Release(SqliteConnection* conn) {
  std::unique_ptr<SqliteConnection> closing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = connections_.find(conn);
    if (it == connections_.end()) return;
    closing = std::move(it->second);
    connections_.erase(it);
  }
}

size_t SqliteDb::ConnectionCount() {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_.size();
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

Status SqliteDb::Initialize() {
  Status s = CreateDatabaseFile(options_.path);
  SqliteConnection* conn = nullptr;
  if (s.ok()) s = Connection(&conn);
  if (s.ok()) s = SetUpFileRetrying(conn, options_);
  if (!s.ok()) return s;
  struct stat st;
  if (stat(options_.path.c_str(), &st) != 0) {
    return ErrnoStatus("cannot stat database file", options_.path, errno);
  }
  dev_ = st.st_dev;
  ino_ = st.st_ino;
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
