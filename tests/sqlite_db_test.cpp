// SqliteDb: the file, its mode, the schema and its migration, and the
// per-thread connections.
#include "store/sqlite_db.h"

#include <doctest/doctest.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "test_util.h"

namespace otpd {
namespace {

// A plain sqlite3 connection, as an operator's sqlite3 shell would have.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    REQUIRE(sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) == SQLITE_OK);
    sqlite3_busy_timeout(db_, 5000);
  }
  ~RawDb() { sqlite3_close(db_); }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // The primary result code of running `sql`.
  int Exec(const std::string& sql) {
    return sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, nullptr) & 0xff;
  }

  // The first column of the first row, as text ("" when there is none).
  std::string Query(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    REQUIRE(sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) == SQLITE_OK);
    std::string out;
    if (sqlite3_step(stmt) == SQLITE_ROW && sqlite3_column_text(stmt, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0));
    }
    sqlite3_finalize(stmt);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

SqliteOptions OptionsFor(const std::string& path) {
  SqliteOptions options;
  options.path = path;
  return options;
}

std::shared_ptr<SqliteDb> MustOpen(const std::string& path) {
  std::shared_ptr<SqliteDb> db;
  Status s = OpenSqliteDb(OptionsFor(path), &db);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  REQUIRE(db != nullptr);
  return db;
}

int ModeOf(const std::string& path) {
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  return static_cast<int>(st.st_mode & 0777);
}

std::string Contents(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---------------------------------------------------------------------------
// The file

TEST_CASE("OpenSqliteDb creates the file and its -wal and -shm with mode 0600") {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  const mode_t old_umask = umask(022);  // SQLite alone would give 0644
  std::shared_ptr<SqliteDb> db = MustOpen(path);
  umask(old_umask);
  CHECK(ModeOf(path) == 0600);
  CHECK(ModeOf(path + "-wal") == 0600);
  CHECK(ModeOf(path + "-shm") == 0600);
}

TEST_CASE("OpenSqliteDb sets WAL mode and the current schema version") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  RawDb raw(dir.File("otpd.db"));
  CHECK(raw.Query("PRAGMA journal_mode") == "wal");
  CHECK(SqliteSchemaVersion() >= 1);
  CHECK(raw.Query("PRAGMA user_version") == std::to_string(SqliteSchemaVersion()));
  CHECK(raw.Query("SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view')"
                  " AND name IN ('users', 'otps', 'code_log')") == "3");
  // The audit trail is indexed by time only (README, "Audit trail").
  CHECK(raw.Query("SELECT group_concat(name) FROM sqlite_master WHERE type = 'index'"
                  " AND tbl_name = 'audit'") == "audit_at");
}

TEST_CASE("Each connection carries the configured settings") {
  TempDir dir;
  SqliteOptions options = OptionsFor(dir.File("otpd.db"));
  options.mmap_size = 1 << 20;
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  std::string mmap, sync, fk;
  SqliteLease migrated;  // held, so the worker gets a connection of its own
  REQUIRE(db->Acquire(&migrated).ok());
  std::thread worker([&] {
    SqliteLease conn_lease;
    if (!db->Acquire(&conn_lease).ok()) return;
    SqliteConnection* conn = conn_lease.get();
    auto read = [conn](const char* sql) {
      SqliteStatement stmt;
      bool row = false;
      if (!conn->Prepare(sql, &stmt).ok() || !stmt.Step(&row).ok() || !row) return std::string();
      return stmt.ColumnText(0);
    };
    mmap = read("PRAGMA mmap_size");
    sync = read("PRAGMA synchronous");
    fk = read("PRAGMA foreign_keys");
  });
  worker.join();
  CHECK(mmap == std::to_string(1 << 20));
  CHECK(sync == "1");  // NORMAL
  CHECK(fk == "1");
}

TEST_CASE("A writer waits busy_timeout_ms for another process's lock, then Busy") {
  TempDir dir;
  SqliteOptions options = OptionsFor(dir.File("otpd.db"));
  options.busy_timeout_ms = 300;
  FakeClock clock;  // the busy handler's sleeps move it instead of waiting
  options.clock = &clock;
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  SqliteLease conn_lease;
  REQUIRE(db->Acquire(&conn_lease).ok());
  SqliteConnection* conn = conn_lease.get();
  RawDb other(options.path);  // stands for another process
  REQUIRE(other.Exec("BEGIN IMMEDIATE") == SQLITE_OK);
  REQUIRE(clock.slept_micros() == 0);
  Status s = WriteTransaction(conn, [] { return Status::OK(); });
  CHECK(s.code() == Status::Code::kBusy);
  // It slept until busy_timeout_ms had passed, and not a step longer: 180
  // sleeps of 50 us, then 582 of 500 us.
  CHECK(clock.slept_micros() == 300 * 1000);
  // Released while we wait: the writer gets the lock without failing. A
  // handle on the real clock whose wait (60 s) only guards a hang, so
  // however late the other side commits, the writer is still waiting for it.
  SqliteOptions patient = options;
  patient.clock = nullptr;
  patient.busy_timeout_ms = 60000;
  std::shared_ptr<SqliteDb> patient_db;
  REQUIRE(OpenSqliteDb(patient, &patient_db).ok());
  SqliteLease patient_lease;
  REQUIRE(patient_db->Acquire(&patient_lease).ok());
  std::thread release([&] { other.Exec("COMMIT"); });
  s = WriteTransaction(patient_lease.get(), [] { return Status::OK(); });
  release.join();
  CHECK(s.ok());
}

TEST_CASE("Writers in one process queue on the handle's mutex, not on SQLite's lock") {
  TempDir dir;
  SqliteOptions options = OptionsFor(dir.File("otpd.db"));
  options.busy_timeout_ms = 1;  // SQLite's lock alone would fail most of them
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; t++) {
    threads.emplace_back([&] {
      SqliteLease conn_lease;
      if (!db->Acquire(&conn_lease).ok()) {
        failures++;
        return;
      }
      SqliteConnection* conn = conn_lease.get();
      for (int i = 0; i < 50; i++) {
        Status s = WriteTransaction(conn, [&] {
          std::this_thread::sleep_for(std::chrono::microseconds(200));  // hold the lock
          return conn->Exec("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, 1)");
        });
        if (!s.ok()) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
}

TEST_CASE("Reopening a database changes nothing") {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  MustOpen(path).reset();
  {
    RawDb raw(path);
    REQUIRE(raw.Exec("INSERT INTO users (user_id, phone) VALUES ('keep', '+15551234567')") ==
            SQLITE_OK);
  }
  std::shared_ptr<SqliteDb> db = MustOpen(path);
  RawDb raw(path);
  CHECK(raw.Query("PRAGMA user_version") == std::to_string(SqliteSchemaVersion()));
  CHECK(raw.Query("SELECT phone FROM users WHERE user_id = 'keep'") == "+15551234567");
}

// Schema version 9 dropped the audit trail's index by user; version 10
// added phone_checks.
constexpr int kAuditIndexDropped = 9;

// The file as version 8 left it: indexed by user too, no phone_checks.
void BackToVersion8(const std::string& path) {
  RawDb raw(path);
  REQUIRE(raw.Exec("DROP TABLE phone_checks; DROP TRIGGER IF EXISTS users_phone_changed;"
                   " DROP TRIGGER IF EXISTS users_deleted") == SQLITE_OK);
  REQUIRE(raw.Exec("CREATE INDEX audit_user_at ON audit (user_id, at)") == SQLITE_OK);
  REQUIRE(raw.Exec("PRAGMA user_version = " + std::to_string(kAuditIndexDropped - 1)) == SQLITE_OK);
}

TEST_CASE("Migration 9 drops the audit trail's index by user and keeps its records") {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  MustOpen(path).reset();
  BackToVersion8(path);
  {
    RawDb raw(path);
    REQUIRE(raw.Exec("INSERT INTO audit (at, user_id, phone, client_ip, event, outcome)"
                     " VALUES (5, 'kept', '', '127.0.0.1', 'verify', 'ok')") == SQLITE_OK);
  }
  std::shared_ptr<SqliteDb> db = MustOpen(path);
  RawDb raw(path);
  CHECK(raw.Query("PRAGMA user_version") == std::to_string(SqliteSchemaVersion()));
  CHECK(raw.Query("SELECT count(*) FROM sqlite_master WHERE name = 'audit_user_at'") == "0");
  CHECK(raw.Query("SELECT count(*) FROM sqlite_master WHERE name = 'audit_at'") == "1");
  CHECK(raw.Query("SELECT user_id || ' ' || outcome FROM audit") == "kept ok");
  // Migration 10 ran after it.
  CHECK(raw.Query("SELECT count(*) FROM sqlite_master WHERE name IN"
                  " ('phone_checks', 'users_phone_changed', 'users_deleted')") == "3");
  // An operator's own index by user survives every later start.
  db.reset();
  REQUIRE(raw.Exec("CREATE INDEX audit_user_at ON audit (user_id, at)") == SQLITE_OK);
  db = MustOpen(path);
  CHECK(raw.Query("SELECT count(*) FROM sqlite_master WHERE name = 'audit_user_at'") == "1");
}

TEST_CASE("Handles opening one new file at once migrate it once") {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  std::atomic<bool> go{false};
  for (int i = 0; i < 8; i++) {
    threads.emplace_back([&] {
      while (!go.load()) std::this_thread::yield();
      std::shared_ptr<SqliteDb> db;
      if (!OpenSqliteDb(OptionsFor(path), &db).ok()) failures++;
    });
  }
  go = true;
  for (std::thread& t : threads) t.join();
  CHECK(failures.load() == 0);
  RawDb raw(path);
  CHECK(raw.Query("PRAGMA user_version") == std::to_string(SqliteSchemaVersion()));
}

TEST_CASE("A database with a newer schema is refused and left alone") {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  const std::string newer = std::to_string(SqliteSchemaVersion() + 1);
  MustOpen(path).reset();
  {
    RawDb raw(path);
    REQUIRE(raw.Exec("PRAGMA user_version = " + newer) == SQLITE_OK);
  }
  std::shared_ptr<SqliteDb> db;
  Status s = OpenSqliteDb(OptionsFor(path), &db);
  CHECK(s.IsInvalidArgument());
  CHECK(Contains(s.message(), "newer"));
  CHECK(Contains(s.message(), path));
  CHECK(Contains(s.message(), "version " + newer));
  CHECK(db == nullptr);
  RawDb raw(path);
  CHECK(raw.Query("PRAGMA user_version") == newer);
}

TEST_CASE("A file that is not a database is refused with a clear error") {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  const std::string text(8192, 'x');
  std::ofstream(path, std::ios::binary) << text;
  std::shared_ptr<SqliteDb> db;
  Status s = OpenSqliteDb(OptionsFor(path), &db);
  CHECK(s.code() == Status::Code::kIOError);
  CHECK(Contains(s.message(), path));
  CHECK(Contains(s.message(), "not a database"));
  CHECK(db == nullptr);
  CHECK(Contents(path) == text);
}

TEST_CASE("A missing directory gives a clear error") {
  TempDir dir;
  const std::string path = dir.File("missing/otpd.db");
  std::shared_ptr<SqliteDb> db;
  Status s = OpenSqliteDb(OptionsFor(path), &db);
  CHECK(s.code() == Status::Code::kIOError);
  CHECK(Contains(s.message(), path));
  CHECK(Contains(s.message(), "directory"));
  CHECK_FALSE(std::filesystem::exists(dir.File("missing")));
}

TEST_CASE("CheckFileUnchanged notices a replaced file") {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  std::shared_ptr<SqliteDb> db = MustOpen(path);
  REQUIRE(db->CheckFileUnchanged().ok());
  REQUIRE(rename(path.c_str(), dir.File("moved.db").c_str()) == 0);
  std::ofstream(path) << "";
  Status s = db->CheckFileUnchanged();
  CHECK(s.code() == Status::Code::kIOError);
  CHECK(Contains(s.message(), "replaced"));
}

// ---------------------------------------------------------------------------
// The schema

TEST_CASE("The schema rejects bad phones written with plain SQL") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  RawDb raw(dir.File("otpd.db"));
  int n = 0;
  for (const char* phone : {"15551234567", "+05551234567", "+1", "+1234567890123456", "+1555a34567",
                            "", "+1 5551234567", "++15551234567"}) {
    INFO("phone: '", phone, "'");
    CHECK(raw.Exec("INSERT INTO users (user_id, phone) VALUES ('u" + std::to_string(n++) + "', '" +
                   phone + "')") == SQLITE_CONSTRAINT);
  }
  CHECK(raw.Query("SELECT count(*) FROM users") == "0");
  for (const char* phone : {"+12", "+123456789012345", "+15551234567"}) {
    INFO("phone: '", phone, "'");
    CHECK(raw.Exec("INSERT INTO users (user_id, phone) VALUES ('u" + std::to_string(n++) + "', '" +
                   phone + "')") == SQLITE_OK);
  }
  CHECK(raw.Exec("INSERT INTO users (user_id, phone) VALUES ('nophone', NULL)") == SQLITE_OK);
}

TEST_CASE("The schema rejects empty and over-long user IDs, counting bytes") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  RawDb raw(dir.File("otpd.db"));
  auto insert = [&raw](const std::string& id) {
    return raw.Exec("INSERT INTO users (user_id) VALUES ('" + id + "')");
  };
  CHECK(insert("") == SQLITE_CONSTRAINT);
  CHECK(insert(std::string(129, 'a')) == SQLITE_CONSTRAINT);
  std::string e_acute_65;  // 65 characters, 130 bytes
  for (int i = 0; i < 65; i++) e_acute_65 += "\xc3\xa9";
  CHECK(insert(e_acute_65) == SQLITE_CONSTRAINT);
  CHECK(raw.Query("SELECT count(*) FROM users") == "0");
  CHECK(insert(std::string(128, 'a')) == SQLITE_OK);
  CHECK(insert(e_acute_65.substr(2)) == SQLITE_OK);  // 128 bytes
}

TEST_CASE("User IDs are unique regardless of case in both tables") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  RawDb raw(dir.File("otpd.db"));
  REQUIRE(raw.Exec("INSERT INTO users (user_id) VALUES ('abc')") == SQLITE_OK);
  CHECK(raw.Exec("INSERT INTO users (user_id) VALUES ('ABC')") == SQLITE_CONSTRAINT);
  REQUIRE(raw.Exec("INSERT INTO otps (user_id, code_hash, issued_at, expires_at)"
                   " VALUES ('abc', x'01', 1, 2)") == SQLITE_OK);
  CHECK(raw.Exec("INSERT INTO otps (user_id, code_hash, issued_at, expires_at)"
                 " VALUES ('aBc', x'02', 1, 2)") == SQLITE_CONSTRAINT);
}

// ---------------------------------------------------------------------------
// Errors

TEST_CASE("SqliteStatus maps result codes") {
  CHECK(SqliteStatus(nullptr, SQLITE_BUSY, "x").code() == Status::Code::kBusy);
  CHECK(SqliteStatus(nullptr, SQLITE_LOCKED, "x").code() == Status::Code::kBusy);
  CHECK(SqliteStatus(nullptr, SQLITE_BUSY_SNAPSHOT, "x").code() == Status::Code::kBusy);
  CHECK(SqliteStatus(nullptr, SQLITE_CONSTRAINT_CHECK, "x").IsInvalidArgument());
  for (int rc : {SQLITE_IOERR_WRITE, SQLITE_FULL, SQLITE_READONLY, SQLITE_CANTOPEN, SQLITE_NOTADB,
                 SQLITE_CORRUPT}) {
    INFO("rc: ", rc);
    CHECK(SqliteStatus(nullptr, rc, "x").code() == Status::Code::kIOError);
  }
  CHECK(SqliteStatus(nullptr, SQLITE_MISUSE, "x").code() == Status::Code::kInternal);
  CHECK(SqliteStatus(nullptr, SQLITE_ERROR, "x").code() == Status::Code::kInternal);
  CHECK(SqliteStatus(nullptr, SQLITE_FULL, "saving").message() ==
        "saving: database or disk is full");
}

TEST_CASE("SqliteStatus carries the connection's error message") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  SqliteLease conn_lease;
  REQUIRE(db->Acquire(&conn_lease).ok());
  SqliteConnection* conn = conn_lease.get();
  Status s = conn->Exec("INSERT INTO users (user_id) VALUES ('')");
  CHECK(s.IsInvalidArgument());
  CHECK(Contains(s.message(), "CHECK constraint failed"));
  s = conn->Exec("SELECT * FROM no_such_table");
  CHECK(s.code() == Status::Code::kInternal);
  CHECK(Contains(s.message(), "no such table: no_such_table"));
}

// ---------------------------------------------------------------------------
// Connections, statements, transactions

TEST_CASE("A lent connection is one borrower's; a returned one is lent again") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  SqliteLease first, second;
  REQUIRE(db->Acquire(&first).ok());
  REQUIRE(db->Acquire(&second).ok());
  CHECK(first.get() != nullptr);
  CHECK(first.get() != second.get());
  SqliteConnection* returned = first.get();
  first.Reset();
  CHECK(first.get() == nullptr);
  SqliteLease third;
  REQUIRE(db->Acquire(&third).ok());
  CHECK(third.get() == returned);
  CHECK(db->ConnectionCount() == 2);
}

TEST_CASE("The pool never grows past pool_size, however many threads") {
  TempDir dir;
  SqliteOptions options = OptionsFor(dir.File("otpd.db"));
  options.pool_size = 3;
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 16; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < 30; i++) {
        SqliteLease lease;
        if (!db->Acquire(&lease).ok() ||
            !lease->Exec("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, 1)").ok()) {
          failures++;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(db->ConnectionCount() <= 3);
  CHECK(db->ConnectionCount() >= 1);
}

TEST_CASE("Acquire waits for a connection to come back, then Busy after busy_timeout_ms") {
  TempDir dir;
  SqliteOptions options = OptionsFor(dir.File("otpd.db"));
  options.pool_size = 1;
  options.busy_timeout_ms = 200;
  FakeClock clock;  // its waits move it to their deadline at once
  options.clock = &clock;
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  SqliteLease held;
  REQUIRE(db->Acquire(&held).ok());
  REQUIRE(clock.slept_micros() == 0);  // a connection was free: no wait
  SqliteLease waiting;
  Status s = db->Acquire(&waiting);
  CHECK(s.code() == Status::Code::kBusy);
  CHECK(clock.slept_micros() == 200 * 1000);  // it waited busy_timeout_ms first
  CHECK(waiting.get() == nullptr);
  held.Reset();
  // Given back while a caller waits: a pool on the real clock whose wait
  // (60 s) only guards a hang, so the giver may come as late as the
  // machine makes it.
  options.clock = nullptr;
  options.busy_timeout_ms = 60000;
  std::shared_ptr<SqliteDb> patient;
  REQUIRE(OpenSqliteDb(options, &patient).ok());
  REQUIRE(patient->Acquire(&held).ok());
  std::thread giver([&] { held.Reset(); });
  s = patient->Acquire(&waiting);
  giver.join();
  CHECK(s.ok());
  CHECK(waiting.get() != nullptr);
  waiting.Reset();  // before the pool it came from goes
}

// Opens, uses and drops handles in a loop: a new handle may land at a freed
// one's address, and must still get a live connection of its own.
void ChurnHandles(const std::string& path, int rounds, std::atomic<int>* failures) {
  for (int i = 0; i < rounds; i++) {
    std::shared_ptr<SqliteDb> db;
    SqliteLease lease;
    if (!OpenSqliteDb(OptionsFor(path), &db).ok() || !db->Acquire(&lease).ok() ||
        !lease->Exec("INSERT OR REPLACE INTO health (id, checked_at) VALUES (1, 1)").ok()) {
      (*failures)++;
    }
  }
}

TEST_CASE("Handles can be opened and destroyed repeatedly on many threads") {
  TempDir dir;
  const std::string path = dir.File("otpd.db");
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; i++) threads.emplace_back(ChurnHandles, path, 20, &failures);
  ChurnHandles(path, 20, &failures);
  for (std::thread& t : threads) t.join();
  CHECK(failures.load() == 0);
}

TEST_CASE("A lent statement is reset when dropped, so later reads see new data") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  RawDb raw(dir.File("otpd.db"));
  REQUIRE(raw.Exec("INSERT INTO users (user_id, phone) VALUES ('a', '+111'), ('b', '+222')") ==
          SQLITE_OK);
  SqliteLease conn_lease;
  REQUIRE(db->Acquire(&conn_lease).ok());
  SqliteConnection* conn = conn_lease.get();
  const char* sql = "SELECT phone FROM users ORDER BY user_id";
  {
    SqliteStatement stmt;
    bool row = false;
    REQUIRE(conn->Prepare(sql, &stmt).ok());
    REQUIRE(stmt.Step(&row).ok());
    REQUIRE(stmt.ColumnText(0) == "+111");
  }  // dropped after one of two rows: would hold a read snapshot if not reset
  REQUIRE(raw.Exec("UPDATE users SET phone = '+333' WHERE user_id = 'a'") == SQLITE_OK);
  SqliteStatement stmt;
  bool row = false;
  REQUIRE(conn->Prepare(sql, &stmt).ok());
  REQUIRE(stmt.Step(&row).ok());
  CHECK(row);
  CHECK(stmt.ColumnText(0) == "+333");
}

TEST_CASE("A transaction rolls back unless committed") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  SqliteLease conn_lease;
  REQUIRE(db->Acquire(&conn_lease).ok());
  SqliteConnection* conn = conn_lease.get();
  {
    SqliteTransaction txn(conn);
    REQUIRE(txn.Begin().ok());
    REQUIRE(conn->Exec("INSERT INTO users (user_id) VALUES ('dropped')").ok());
  }
  {
    SqliteTransaction txn(conn);
    REQUIRE(txn.Begin().ok());
    REQUIRE(conn->Exec("INSERT INTO users (user_id) VALUES ('kept')").ok());
    REQUIRE(txn.Commit().ok());
  }
  RawDb raw(dir.File("otpd.db"));
  CHECK(raw.Query("SELECT group_concat(user_id) FROM users") == "kept");
}

TEST_CASE("A failed bind is reported by Step") {
  TempDir dir;
  std::shared_ptr<SqliteDb> db = MustOpen(dir.File("otpd.db"));
  SqliteLease conn_lease;
  REQUIRE(db->Acquire(&conn_lease).ok());
  SqliteConnection* conn = conn_lease.get();
  SqliteStatement stmt;
  REQUIRE(conn->Prepare("SELECT ?1", &stmt).ok());
  stmt.BindInt64(2, 7);  // there is no parameter 2
  bool row = false;
  Status s = stmt.Step(&row);
  CHECK_FALSE(s.ok());
  CHECK(Contains(s.message(), "bind"));
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : -1;
}

// Writes 2000 users in one transaction into a new database with the given
// checkpoint interval. Returns the main file's size right after the commit
// (the checkpointer may already have run) and, in *later, its size once
// it is over `target` bytes (waiting up to 30 s for the background
// checkpointer; -1 if it never was).
int64_t MainFileSizeAfterWrites(int checkpoint_interval_ms, int64_t target, int64_t* later) {
  TempDir dir;
  SqliteOptions options;
  options.path = dir.File("otpd.db");
  options.checkpoint_interval_ms = checkpoint_interval_ms;
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  SqliteLease lease;
  REQUIRE(db->Acquire(&lease).ok());
  REQUIRE(WriteTransaction(lease.get(), [&] {
            for (int i = 0; i < 2000; i++) {
              Status s = lease->Exec(("INSERT INTO users (user_id, phone) VALUES ('user" +
                                      std::to_string(i) + "', '+15550000000')")
                                         .c_str());
              if (!s.ok()) return s;
            }
            return Status::OK();
          }).ok());
  lease.Reset();
  const int64_t now = FileSize(options.path);
  *later = -1;
  if (checkpoint_interval_ms > 0 &&
      WaitUntil([&] { return FileSize(options.path) > target; }, 30000)) {
    *later = FileSize(options.path);
  }
  return now;
}

}  // namespace

TEST_CASE("The background checkpointer moves committed pages into the database file") {
  // Without it (and under SQLite's 1000-page automatic threshold) the pages
  // stay in the WAL; with it they reach the main file within the interval.
  // Nothing runs after the commit without it, so its size then is final.
  int64_t later = 0;
  const int64_t without = MainFileSizeAfterWrites(0, 0, &later);
  MainFileSizeAfterWrites(20, without + 16 * 1024, &later);
  CHECK(later > without + 16 * 1024);  // the checkpointer moved them (waited for, not timed)
}

namespace {

// Commits `n` transactions of one 1 KiB row each and returns the largest
// size the -wal file had after any of them.
int64_t LargestWalAfterWrites(SqliteDb* db, int n) {
  int64_t largest = 0;
  SqliteLease lease;
  REQUIRE(db->Acquire(&lease).ok());
  SqliteConnection* conn = lease.get();
  for (int i = 0; i < n; i++) {
    REQUIRE(WriteTransaction(conn, [conn] {
              return conn->Exec("INSERT INTO write_probe (data) VALUES (randomblob(1024))");
            }).ok());
    struct stat st;
    if (stat((db->options().path + "-wal").c_str(), &st) == 0) {
      largest = std::max<int64_t>(largest, st.st_size);
    }
  }
  return largest;
}

}  // namespace

TEST_CASE("With wal_limit_bytes the WAL stays bounded under sustained writes") {
  constexpr int64_t kLimit = 256 * 1024;
  for (const bool bounded : {false, true}) {
    INFO("bounded: ", bounded);
    TempDir dir;
    SqliteOptions options = OptionsFor(dir.File("otpd.db"));
    options.checkpoint_interval_ms = 3600 * 1000;  // the background one never runs here
    options.wal_limit_bytes = bounded ? kLimit : 0;
    std::shared_ptr<SqliteDb> db;
    REQUIRE(OpenSqliteDb(options, &db).ok());
    const int64_t largest = LargestWalAfterWrites(db.get(), 2000);
    if (bounded) {
      // One transaction's frames past the limit at most, then truncated.
      CHECK(largest <= kLimit + 16 * 1024);
      CHECK(db->BoundedCheckpoints() > 0);
    } else {
      CHECK(largest > 2 * kLimit);
      CHECK(db->BoundedCheckpoints() == 0);
    }
  }
}

TEST_CASE("Past half the WAL limit the checkpointer restarts the WAL, not a commit") {
  constexpr int64_t kLimit = 256 * 1024;
  TempDir dir;
  SqliteOptions options = OptionsFor(dir.File("otpd.db"));
  options.checkpoint_interval_ms = 3600 * 1000;  // only when asked
  options.wal_limit_bytes = kLimit;
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  const std::string wal = options.path + "-wal";
  auto wal_size = [&] {
    struct stat st;
    return stat(wal.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : int64_t{0};
  };
  int commits = 0;
  while (wal_size() <= kLimit / 2 + 8 * 1024) {
    REQUIRE(commits++ < 1000);
    LargestWalAfterWrites(db.get(), 1);
  }
  REQUIRE(wal_size() < kLimit);
  // Waited for as an event (a minute at most), not timed.
  for (int i = 0; i < 60000 && db->BackgroundRestarts() == 0; i++) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(db->BackgroundRestarts() > 0);
  CHECK(db->BoundedCheckpoints() == 0);
  // Restarted: the next commits overwrite the file from its start.
  const int64_t before = wal_size();
  LargestWalAfterWrites(db.get(), 5);
  CHECK(wal_size() == before);
}

TEST_CASE("synchronous is NORMAL or FULL on every connection, nothing else") {
  TempDir dir;
  SqliteOptions options = OptionsFor(dir.File("otpd.db"));
  options.synchronous = "FULL";
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  SqliteLease lease;
  REQUIRE(db->Acquire(&lease).ok());
  SqliteStatement stmt;
  bool row = false;
  REQUIRE(lease->Prepare("PRAGMA synchronous", &stmt).ok());
  REQUIRE(stmt.Step(&row).ok());
  REQUIRE(row);
  CHECK(stmt.ColumnInt64(0) == 2);  // FULL
  options.path = dir.File("other.db");
  options.synchronous = "OFF";
  std::shared_ptr<SqliteDb> refused;
  Status s = OpenSqliteDb(options, &refused);
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK(s.message().find("NORMAL or FULL") != std::string::npos);
}

TEST_CASE("WriteHealth fails after a full disk and clears with the next commit") {
  TempDir dir;
  SqliteOptions options = OptionsFor(dir.File("otpd.db"));
  options.max_page_count = 40;
  std::shared_ptr<SqliteDb> db;
  REQUIRE(OpenSqliteDb(options, &db).ok());
  CHECK(db->WriteHealth().ok());
  SqliteLease lease;
  REQUIRE(db->Acquire(&lease).ok());
  SqliteConnection* conn = lease.get();
  Status s;
  for (int i = 0; i < 1000 && s.ok(); i++) {
    s = WriteTransaction(conn, [conn] {
      return conn->Exec("INSERT INTO write_probe (data) VALUES (randomblob(1024))");
    });
  }
  REQUIRE(s.code() == Status::Code::kIOError);
  CHECK(db->WriteHealth().code() == Status::Code::kIOError);
  REQUIRE(WriteTransaction(conn, [conn] { return conn->Exec("DELETE FROM write_probe"); }).ok());
  CHECK(db->WriteHealth().ok());
}

}  // namespace otpd
