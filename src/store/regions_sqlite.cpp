// RegionStore in two tables of their own, created here beside the schema
// sqlite_db.cpp versions (as deliveries_sqlite.cpp does), so adding them
// changes no other table and an older otpd opening the file ignores them:
//   pumping_counts  (key, minute) -> sent, verified: one-minute buckets
//   pumping_state   key -> first_seen, paused_until, reason
// Every call is one write transaction (BEGIN IMMEDIATE), so processes on
// one file see each other's counts and pauses at once.
#include <utility>

#include "otp/pumping.h"
#include "store/sqlite_db.h"

namespace otpd {
namespace {

constexpr int64_t kBucketMs = 60 * 1000;

constexpr char kSchemaSql[] =
    "CREATE TABLE IF NOT EXISTS pumping_counts ("
    "  key TEXT NOT NULL, minute INTEGER NOT NULL, sent INTEGER NOT NULL DEFAULT 0,"
    "  verified INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (key, minute)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS pumping_state ("
    "  key TEXT PRIMARY KEY, first_seen INTEGER NOT NULL DEFAULT 0,"
    "  paused_until INTEGER NOT NULL DEFAULT 0, reason TEXT NOT NULL DEFAULT '') WITHOUT ROWID;";
constexpr char kAddSentSql[] =
    "INSERT INTO pumping_counts (key, minute, sent) VALUES (?1, ?2, 1)"
    " ON CONFLICT (key, minute) DO UPDATE SET sent = sent + 1";
constexpr char kAddVerifiedSql[] =
    "INSERT INTO pumping_counts (key, minute, verified) VALUES (?1, ?2, 1)"
    " ON CONFLICT (key, minute) DO UPDATE SET verified = verified + 1";
constexpr char kSeenSql[] =
    "INSERT INTO pumping_state (key, first_seen) VALUES (?1, ?2)"
    " ON CONFLICT (key) DO UPDATE SET first_seen = ?2 WHERE first_seen = 0";
constexpr char kSumSql[] =
    "SELECT COALESCE(SUM(sent), 0), COALESCE(SUM(verified), 0) FROM pumping_counts"
    " WHERE key = ?1 AND minute >= ?2 AND minute < ?3";
constexpr char kStateSql[] =
    "SELECT first_seen, paused_until, reason FROM pumping_state WHERE key = ?1";
constexpr char kPauseSql[] =
    "INSERT INTO pumping_state (key, paused_until, reason) VALUES (?1, ?2, ?3)"
    " ON CONFLICT (key) DO UPDATE SET paused_until = MAX(paused_until, ?2),"
    " reason = CASE WHEN paused_until > ?4 THEN reason ELSE ?3 END";
constexpr char kDropWindowSql[] = "DELETE FROM pumping_counts WHERE key = ?1 AND minute >= ?2";
constexpr char kUnpauseSql[] =
    "UPDATE pumping_state SET paused_until = 0 WHERE key = ?1 AND paused_until > ?2";
constexpr char kKeysSql[] = "SELECT key FROM pumping_state ORDER BY key";
constexpr char kPurgeCountsSql[] = "DELETE FROM pumping_counts WHERE minute < ?1";
constexpr char kPurgeStateSql[] =
    "DELETE FROM pumping_state WHERE paused_until < ?1 AND key NOT IN"
    " (SELECT DISTINCT key FROM pumping_counts)";

// The first bucket inside a window that starts at `start_ms`.
int64_t FirstMinute(int64_t start_ms) {
  return (start_ms >= 0 ? start_ms / kBucketMs : (start_ms - kBucketMs + 1) / kBucketMs) + 1;
}

class SqliteRegionStore : public RegionStore {
 public:
  explicit SqliteRegionStore(std::shared_ptr<SqliteDb> db) : db_(std::move(db)) {}

  Status AddSend(const std::vector<std::string>& keys, int64_t now_ms, int64_t window_ms,
                 int64_t baseline_ms, std::vector<RegionCounts>* out) override {
    return Write([&](SqliteConnection* conn) {
      out->clear();
      for (const std::string& key : keys) {
        Status s = Bump(conn, kAddSentSql, key, now_ms);
        if (s.ok()) s = Run(conn, kSeenSql, key, now_ms);
        RegionCounts c;
        if (s.ok()) s = Read(conn, key, now_ms, window_ms, baseline_ms, &c);
        if (!s.ok()) return s;
        out->push_back(c);
      }
      return Status::OK();
    });
  }

  Status AddVerified(const std::string& key, int64_t now_ms) override {
    return Write([&](SqliteConnection* conn) { return Bump(conn, kAddVerifiedSql, key, now_ms); });
  }

  Status PausedUntil(const std::vector<std::string>& keys, int64_t now_ms, std::string* key,
                     int64_t* until_ms) override {
    *until_ms = 0;
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    if (!s.ok()) return s;
    for (const std::string& k : keys) {
      RegionCounts c;
      s = ReadState(lease.get(), k, &c);
      if (!s.ok()) return s;
      if (c.paused_until_ms > now_ms && c.paused_until_ms > *until_ms) {
        *until_ms = c.paused_until_ms;
        *key = k;
      }
    }
    return Status::OK();
  }

  Status Pause(const std::string& key, int64_t now_ms, int64_t until_ms, int64_t window_start_ms,
               const std::string& reason, bool* started) override {
    return Write([&](SqliteConnection* conn) {
      RegionCounts before;
      Status s = ReadState(conn, key, &before);
      if (!s.ok()) return s;
      *started = before.paused_until_ms <= now_ms;
      SqliteStatement stmt;
      s = conn->Prepare(kPauseSql, &stmt);
      if (!s.ok()) return s;
      stmt.BindText(1, key);
      stmt.BindInt64(2, until_ms);
      stmt.BindText(3, reason);
      stmt.BindInt64(4, now_ms);
      s = stmt.Run();
      if (!s.ok()) return s;
      return Run(conn, kDropWindowSql, key, FirstMinute(window_start_ms));
    });
  }

  Status DropWindow(const std::string& key, int64_t window_start_ms) override {
    return Write([&](SqliteConnection* conn) {
      return Run(conn, kDropWindowSql, key, FirstMinute(window_start_ms));
    });
  }

  Status Unpause(const std::string& key, int64_t now_ms, bool* was_paused) override {
    return Write([&](SqliteConnection* conn) {
      Status s = Run(conn, kUnpauseSql, key, now_ms);
      *was_paused = s.ok() && conn->Changes() > 0;
      return s;
    });
  }

  Status List(int64_t now_ms, int64_t window_ms, int64_t baseline_ms,
              std::vector<RegionCounts>* out) override {
    out->clear();
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    if (!s.ok()) return s;
    std::vector<std::string> keys;
    {
      SqliteStatement stmt;
      s = lease->Prepare(kKeysSql, &stmt);
      if (!s.ok()) return s;
      for (bool more = false; (s = stmt.Step(&more)).ok() && more;) {
        keys.push_back(stmt.ColumnText(0));
      }
      if (!s.ok()) return s;
    }
    for (const std::string& key : keys) {
      RegionCounts c;
      s = Read(lease.get(), key, now_ms, window_ms, baseline_ms, &c);
      if (!s.ok()) return s;
      out->push_back(c);
    }
    return Status::OK();
  }

  Status Purge(int64_t cutoff_ms) override {
    return Write([&](SqliteConnection* conn) {
      SqliteStatement stmt;
      Status s = conn->Prepare(kPurgeCountsSql, &stmt);
      if (!s.ok()) return s;
      stmt.BindInt64(1, FirstMinute(cutoff_ms));
      s = stmt.Run();
      if (!s.ok()) return s;
      s = conn->Prepare(kPurgeStateSql, &stmt);
      if (!s.ok()) return s;
      stmt.BindInt64(1, cutoff_ms);
      return stmt.Run();
    });
  }

  Status Init() {
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    if (!s.ok()) return s;
    SqliteConnection* conn = lease.get();
    return WriteTransaction(conn, [conn] { return conn->Exec(kSchemaSql); });
  }

 private:
  template <typename Body>
  Status Write(Body body) {
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    if (!s.ok()) return s;
    SqliteConnection* conn = lease.get();
    return WriteTransaction(conn, [&] { return body(conn); });
  }

  static Status Run(SqliteConnection* conn, const char* sql, const std::string& key,
                    int64_t value) {
    SqliteStatement stmt;
    Status s = conn->Prepare(sql, &stmt);
    if (!s.ok()) return s;
    stmt.BindText(1, key);
    stmt.BindInt64(2, value);
    return stmt.Run();
  }

  static Status Bump(SqliteConnection* conn, const char* sql, const std::string& key,
                     int64_t now_ms) {
    return Run(conn, sql, key, now_ms / kBucketMs);
  }

  // Sums of sent and verified over the buckets [from, to).
  static Status Sum(SqliteConnection* conn, const std::string& key, int64_t from, int64_t to,
                    int64_t* sent, int64_t* verified) {
    SqliteStatement stmt;
    Status s = conn->Prepare(kSumSql, &stmt);
    if (!s.ok()) return s;
    stmt.BindText(1, key);
    stmt.BindInt64(2, from);
    stmt.BindInt64(3, to);
    bool row = false;
    s = stmt.Step(&row);
    if (!s.ok() || !row) return s;
    *sent = stmt.ColumnInt64(0);
    if (verified != nullptr) *verified = stmt.ColumnInt64(1);
    return s;
  }

  static Status ReadState(SqliteConnection* conn, const std::string& key, RegionCounts* c) {
    SqliteStatement stmt;
    Status s = conn->Prepare(kStateSql, &stmt);
    if (!s.ok()) return s;
    stmt.BindText(1, key);
    bool row = false;
    s = stmt.Step(&row);
    c->key = key;
    if (!s.ok() || !row) return s;
    c->first_seen_ms = stmt.ColumnInt64(0);
    c->paused_until_ms = stmt.ColumnInt64(1);
    c->reason = stmt.ColumnText(2);
    return s;
  }

  static Status Read(SqliteConnection* conn, const std::string& key, int64_t now_ms,
                     int64_t window_ms, int64_t baseline_ms, RegionCounts* c) {
    Status s = ReadState(conn, key, c);
    const int64_t window_from = FirstMinute(now_ms - window_ms);
    const int64_t end = now_ms / kBucketMs + 1;
    if (s.ok()) s = Sum(conn, key, window_from, end, &c->window_sent, &c->window_verified);
    if (s.ok()) {
      s = Sum(conn, key, FirstMinute(now_ms - baseline_ms), window_from, &c->baseline_sent,
              nullptr);
    }
    return s;
  }

  const std::shared_ptr<SqliteDb> db_;
};

}  // namespace

Status NewSqliteRegionStore(std::shared_ptr<SqliteDb> db, std::unique_ptr<RegionStore>* store) {
  if (db == nullptr) return Status::InvalidArgument("NewSqliteRegionStore needs a database");
  auto impl = std::make_unique<SqliteRegionStore>(std::move(db));
  Status s = impl->Init();
  if (!s.ok()) return s;
  *store = std::move(impl);
  return Status::OK();
}

}  // namespace otpd
