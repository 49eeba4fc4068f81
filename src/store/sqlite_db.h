// SqliteDb: the one SQLite database file otpd keeps users and codes in.
//
// Opening creates the file (mode 0600) if needed, sets WAL mode, and
// migrates the schema to the current version (PRAGMA user_version). The
// handle lends connections from a small pool (pool_size), each with its own
// cache of prepared statements: a connection is used by one thread at a
// time, and the number of connections (and their memory) does not grow
// with the number of request threads. Thread-safe.
//
// The classes below SqliteDb (connection, statement, transaction) are for
// the SQLite adapters (storage_sqlite.cpp, users_sqlite.cpp) only; no other
// layer includes <sqlite3.h>.
#ifndef OTPD_SQLITE_DB_H_
#define OTPD_SQLITE_DB_H_

#include <sys/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

struct sqlite3;
struct sqlite3_stmt;

namespace otpd {

struct SqliteOptions {
  std::string path;            // database file; its directory must exist
  int busy_timeout_ms = 5000;  // how long a writer waits for the lock
  // The time and waits of the busy handler (a writer waiting for another
  // process's lock) and of Acquire (for a connection to come back); null:
  // SystemClock(). Tests inject a fake one.
  Clock* clock = nullptr;
  // Memory-mapped I/O: off. Measured with make bench it was not faster here,
  // and every mapped page of the file counts in the process's RSS.
  int64_t mmap_size = 0;
  int cache_kib = 2000;  // page cache per connection (SQLite's default)
  size_t pool_size = 8;  // connections at most; writers are serialized anyway
  // > 0: a background thread checkpoints the WAL this often (PASSIVE, so it
  // never blocks a writer) and request connections never checkpoint; an
  // automatic checkpoint would otherwise run, fsync included, inside a
  // commit, stalling every writer queued behind it. 0: SQLite's automatic
  // checkpoints (every 1000 pages), for short-lived tools.
  int checkpoint_interval_ms = 0;
  // PRAGMA synchronous: "NORMAL" (a commit is durable against a crash of
  // otpd; a power failure can lose the last commits) or "FULL" (an fsync
  // per commit: durable against power failure too).
  std::string synchronous = "NORMAL";
  // > 0 (with checkpoint_interval_ms): past half of this many bytes a
  // commit wakes the checkpointer, which copies the WAL and restarts it;
  // the commit that leaves the WAL above it checkpoints it at once
  // (TRUNCATE), still holding this process's writer lock; and
  // journal_size_limit is set to it, so the WAL stays bounded under
  // sustained writes. 0: no bound.
  int64_t wal_limit_bytes = 0;
  // CheckWritable fails while the file system of the database has less
  // than this many bytes free for otpd (a full disk). 0: not checked.
  int64_t min_free_bytes = 0;
  // PRAGMA max_page_count on every connection (tests fill a database with
  // it). 0: SQLite's default.
  int64_t max_page_count = 0;
};

class SqliteDb;
class SqliteConnection;

// Opens (creating and migrating) the database at options.path. On success
// *db is the open handle. On failure *db is untouched and the Status names
// the file and the reason: the directory does not exist, the file is not a
// SQLite database, or its schema is newer than this build knows (a newer
// file is never modified). A file this call created is left in place.
Status OpenSqliteDb(const SqliteOptions& options, std::shared_ptr<SqliteDb>* db);

// The schema version this build creates and expects.
int SqliteSchemaVersion();

// The one mapping from a SQLite result code to a Status: BUSY/LOCKED ->
// Busy, CONSTRAINT -> InvalidArgument, IOERR/FULL/READONLY/CANTOPEN/NOTADB/
// CORRUPT -> IOError, anything else -> Internal. The message is
// "<context>: <sqlite3_errmsg(db)>" (sqlite3_errstr(rc) when db is null).
// REQUIRES: rc is not SQLITE_OK, SQLITE_ROW or SQLITE_DONE.
Status SqliteStatus(sqlite3* db, int rc, const std::string& context);

// A cached prepared statement lent out for one use. The destructor resets it
// and clears its bindings, so it never keeps a read transaction open.
// Not thread-safe: lives on the stack of the thread that owns the connection.
class SqliteStatement {
 public:
  SqliteStatement() = default;
  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // Parameters are 1-based. A failed bind is remembered and returned by the
  // next Step() or Run(). Text and blobs are copied.
  void BindText(int index, const std::string& value);
  void BindBlob(int index, const std::string& value);
  void BindInt64(int index, int64_t value);

  // Advances one row: *row is true with a row to read, false when done.
  Status Step(bool* row);
  // Runs a statement that returns no rows to completion.
  Status Run();

  // Columns of the current row, 0-based. NULL reads as 0 / "".
  int64_t ColumnInt64(int column) const;
  std::string ColumnText(int column) const;
  std::string ColumnBlob(int column) const;

 private:
  friend class SqliteConnection;
  void Reset(sqlite3_stmt* stmt, SqliteConnection* conn = nullptr);

  sqlite3_stmt* stmt_ = nullptr;
  SqliteConnection* conn_ = nullptr;  // the connection it was lent from
  int bind_error_ = 0;                // first failed bind's result code, 0 when none
};

// One sqlite3 connection with its prepared-statement cache. Not thread-safe:
// SqliteDb gives each thread its own, and only that thread may use it.
class SqliteConnection {
 public:
  // Opens an existing file read-write and applies the per-connection
  // settings (busy timeout, synchronous=NORMAL, foreign_keys, mmap_size).
  // On failure *conn is untouched and nothing stays open.
  static Status Open(const SqliteOptions& options, std::unique_ptr<SqliteConnection>* conn);
  ~SqliteConnection();  // finalizes every cached statement, then closes
  SqliteConnection(const SqliteConnection&) = delete;
  SqliteConnection& operator=(const SqliteConnection&) = delete;

  // Lends the cached statement for `sql` (prepared on first use), reset and
  // with no bindings. On failure *stmt is unchanged.
  // REQUIRES: the same `sql` is not lent twice at once on this connection.
  Status Prepare(const char* sql, SqliteStatement* stmt);

  // Runs one or more statements that return no rows (not cached).
  Status Exec(const char* sql);

  // Rows changed by the last INSERT, UPDATE or DELETE on this connection.
  int64_t Changes() const;
  // The rowid of the last row INSERTed on this connection.
  int64_t LastInsertRowid() const;

  sqlite3* handle() const { return db_; }

 private:
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  Status Configure(const SqliteOptions& options);

  // A failed statement's result code and status: a write error (FULL,
  // READONLY, IOERR) is reported to the owning SqliteDb (WriteHealth).
  void NoteFailure(int rc, const Status& s);
  static int WalHook(void* conn, sqlite3* db, const char* name, int frames);
  // SQLite's busy handler; `args` is the connection's busy_.
  static int BusyWait(void* args, int count);

  struct BusyWaitArgs {
    int timeout_ms = 5000;
    Clock* clock = nullptr;  // never null once configured
  };
  BusyWaitArgs busy_;                  // read by the busy handler
  int64_t wal_limit_frames_ = 0;       // > 0: WalHook checkpoints above it
  std::mutex* write_mutex_ = nullptr;  // the handle's; taken by SqliteTransaction
  SqliteDb* owner_ = nullptr;          // the handle that lent it
  friend class SqliteStatement;
  friend class SqliteTransaction;
  friend class SqliteDb;
  sqlite3* db_;
  std::unordered_map<std::string, sqlite3_stmt*> statements_;
};

// BEGIN IMMEDIATE ... COMMIT on one connection. The write lock is taken at
// Begin(), so a transaction that reads and then writes never loses a race
// with another thread or process. Within one process, writers first queue
// on the handle's writer mutex (they sleep until it is free instead of
// polling SQLite's lock), so only other processes meet the busy handler.
// The destructor rolls back unless Commit() succeeded. Not thread-safe; declare it before the
// statements it covers so they are reset first.
class SqliteTransaction {
 public:
  explicit SqliteTransaction(SqliteConnection* conn) : conn_(conn) {}
  ~SqliteTransaction();
  SqliteTransaction(const SqliteTransaction&) = delete;
  SqliteTransaction& operator=(const SqliteTransaction&) = delete;

  // Takes the write lock, waiting up to busy_timeout_ms; Busy when it could
  // not. REQUIRES: no transaction is open on the connection.
  Status Begin();
  // On failure the transaction is rolled back by the destructor.
  Status Commit();

 private:
  SqliteConnection* conn_;
  bool open_ = false;
  std::unique_lock<std::mutex> writer_;  // held from Begin to the end
};

// Runs `body` inside one write transaction on `conn` and commits it; on any
// failure rolls back and returns the failure. For single-statement writes
// too, so every in-process writer queues on the same mutex.
Status WriteTransaction(SqliteConnection* conn, const std::function<Status()>& body);

// A connection lent by SqliteDb::Acquire, for one operation on one thread;
// the destructor gives it back. Declare it before the transactions and
// statements that use it, so they are finished first. Not thread-safe.
class SqliteLease {
 public:
  SqliteLease() = default;
  ~SqliteLease() { Reset(); }
  SqliteLease(const SqliteLease&) = delete;
  SqliteLease& operator=(const SqliteLease&) = delete;

  SqliteConnection* get() const { return conn_; }
  SqliteConnection* operator->() const { return conn_; }
  // Gives the connection back now (nothing when empty).
  void Reset();

 private:
  friend class SqliteDb;
  void Set(SqliteDb* db, SqliteConnection* conn) {
    db_ = db;
    conn_ = conn;
  }
  SqliteDb* db_ = nullptr;
  SqliteConnection* conn_ = nullptr;
};

// The open database: made only by OpenSqliteDb, shared by the Storage and
// UserDirectory built on it. Thread-safe; see the top of this file.
class SqliteDb : public std::enable_shared_from_this<SqliteDb> {
 public:
  // Stops the checkpointer and closes every connection, whichever thread
  // opened it.
  // REQUIRES: no thread is inside a call on this handle or its connections.
  ~SqliteDb();
  SqliteDb(const SqliteDb&) = delete;
  SqliteDb& operator=(const SqliteDb&) = delete;

  const SqliteOptions& options() const { return options_; }

  // Lends a connection until *lease is destroyed or Reset: an idle one, a
  // new one while fewer than pool_size exist, or the first given back
  // within busy_timeout_ms (else Busy). On failure *lease is empty.
  // REQUIRES: not called in a fork()ed child on a handle its parent opened;
  // the lease does not outlive this handle.
  Status Acquire(SqliteLease* lease);

  // Copies the whole database to a new file at `dest_path` with SQLite's
  // online backup API: a consistent snapshot of one moment, taken while
  // other threads and processes go on writing (WAL readers do not block
  // writers). The copy is mode 0600, in rollback-journal mode (one
  // self-contained file) and passes integrity_check. AlreadyExists when
  // dest_path exists (never overwritten); on any other failure the partial
  // copy is removed.
  Status Backup(const std::string& dest_path);

  // How many connections are open right now, over all threads.
  size_t ConnectionCount();

  // OK while options().path is still the file that was opened: IOError when
  // it was removed or replaced (SQLite would go on writing to the unlinked
  // file, and every write would be lost at the next start).
  Status CheckFileUnchanged() const;

  // OK unless a write failed with a full disk, a read-only file or an I/O
  // error (SQLITE_FULL, READONLY, IOERR) since the last committed write:
  // then IOError with that failure. Set by any failed statement; cleared
  // by the next COMMIT that succeeds, or by ProbeWrite.
  Status WriteHealth() const;

  // /readyz's write check: the file is still the one opened, its file
  // system has min_free_bytes free, and a real write commits: while
  // WriteHealth is failing, one that needs 64 KiB of new space (so reused
  // space in the WAL or the free list cannot hide a full disk); else a
  // one-row upsert. A probe that commits clears WriteHealth.
  Status ProbeWrite(const std::function<Status(SqliteConnection*)>& upsert);
  // ProbeWrite with the upsert of the `health` row, stamped `now_ms`.
  Status ProbeHealth(int64_t now_ms);

  // Opens a connection outside the pool for one owner that writes often
  // (the code store's writer): its transactions queue on this process's
  // writer mutex like every other, and its write errors show in
  // WriteHealth. Must be closed before this handle is destroyed.
  Status OpenWriter(std::unique_ptr<SqliteConnection>* conn);

  // Writes done behind the request (the audit trail, delivery rows): `body`
  // runs inside a write transaction and its Status is returned. While a
  // runner is set (SetWriteRunner: the SQLite code store), `body` runs in
  // one of the runner's own transactions on its writer connection, so the
  // process's writes share commits and that connection's page cache is
  // not thrown away by commits of other connections; otherwise in a
  // transaction of its own on a pooled connection.
  using WriteBody = std::function<Status(SqliteConnection*)>;
  class WriteRunner {
   public:
    virtual ~WriteRunner() = default;
    // Runs `body` inside a write transaction and returns once it has
    // committed (or failed).
    virtual Status RunWrite(const WriteBody& body) = 0;
  };
  Status WriteBehind(const WriteBody& body);
  // Sets the runner (nullptr: none); waits for calls of the previous one to
  // return. REQUIRES: not called from inside WriteBehind.
  void SetWriteRunner(WriteRunner* runner);
  // How many TRUNCATE checkpoints the WAL limit has run in a commit, and
  // how many times the checkpointer restarted the WAL (tests, bench).
  int64_t BoundedCheckpoints() const { return bounded_checkpoints_.load(); }
  int64_t BackgroundRestarts() const { return background_restarts_.load(); }

 private:
  friend class SqliteLease;
  friend Status OpenSqliteDb(const SqliteOptions& options, std::shared_ptr<SqliteDb>* db);

  explicit SqliteDb(SqliteOptions options) : options_(std::move(options)) {}
  Status Initialize();
  void Return(SqliteConnection* conn);

  const SqliteOptions options_;
  dev_t dev_ = 0;  // identity of the file opened, for CheckFileUnchanged
  ino_t ino_ = 0;

  friend class SqliteConnection;
  friend class SqliteTransaction;
  void SetWriteError(const Status& s);
  void ClearWriteError();
  std::atomic<bool> write_failed_{false};
  mutable std::mutex health_mu_;
  std::string write_error_;  // guarded by health_mu_
  std::atomic<int64_t> bounded_checkpoints_{0};
  std::atomic<int64_t> background_restarts_{0};
  // Wakes the checkpointer now (WalHook, past half the WAL limit).
  void RequestCheckpoint();
  std::shared_mutex runner_mu_;
  WriteRunner* runner_ = nullptr;  // guarded by runner_mu_

  std::mutex write_mutex_;  // one writer at a time in this process
  std::mutex mu_;           // guards the pool below
  std::condition_variable pool_cv_;
  std::vector<std::unique_ptr<SqliteConnection>> all_;
  std::vector<SqliteConnection*> idle_;
  size_t opening_ = 0;  // connections being opened outside the lock

  void CheckpointLoop();
  std::mutex checkpoint_mu_;
  // Held by every checkpoint of this process; after write_mutex_ when both.
  std::mutex copy_mu_;
  std::condition_variable checkpoint_cv_;
  bool stopping_ = false;          // guarded by checkpoint_mu_
  bool checkpoint_asked_ = false;  // guarded by checkpoint_mu_
  std::thread checkpointer_;       // runs while checkpoint_interval_ms > 0
};

}  // namespace otpd

#endif  // OTPD_SQLITE_DB_H_
