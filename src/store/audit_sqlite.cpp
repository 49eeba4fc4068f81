// AuditLog in the `audit` table (sqlite_db.cpp has the schema). Records
// are written behind the request in batches (see SqliteAuditLog); they are
// not part of the send or verify decision (at most they share its commit,
// in a savepoint of their own), so a failed audit write never fails a
// request.
#include <time.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <utility>
#include <vector>

#include "core/log.h"
#include "otp/audit.h"
#include "store/batch_writer.h"
#include "store/sqlite_db.h"

namespace otpd {
namespace {

constexpr char kInsertSql[] =
    "INSERT INTO audit (at, user_id, phone, client_ip, event, outcome)"
    " VALUES (?1, ?2, ?3, ?4, ?5, ?6)";
// The newest `limit` matches, turned oldest first by the outer query. One
// user's query says `user_id = ?1` plainly, so that an index an operator
// created on (user_id, at) is used (README, "Audit trail"); without one it
// reads the time window through audit_at.
constexpr char kQuerySql[] =
    "SELECT at, user_id, phone, client_ip, event, outcome FROM ("
    "  SELECT rowid AS id, * FROM audit WHERE at >= ?2"
    "  ORDER BY at DESC, id DESC LIMIT ?3)"
    " ORDER BY at, id";
constexpr char kUserQuerySql[] =
    "SELECT at, user_id, phone, client_ip, event, outcome FROM ("
    "  SELECT rowid AS id, * FROM audit WHERE user_id = ?1 AND at >= ?2"
    "  ORDER BY at DESC, id DESC LIMIT ?3)"
    " ORDER BY at, id";
constexpr char kPurgeSql[] = "DELETE FROM audit WHERE at < ?1";

// Records are written behind the request (store/batch_writer.h): queued,
// then inserted every 200 ms (or at 2048 records, and before every Query,
// Purge and at destruction), in the order they came, 256 per transaction
// (SqliteDb::WriteBehind: inside the code store's own commits when it runs
// on this file). An audit row per request in a transaction of its own
// doubled the writes a verify queues for. The table is indexed by time
// only (sqlite_db.cpp), so records in arrival order land on its last
// pages. The cost is that a crash (not a stop) can lose the last 200 ms of
// records.
class SqliteAuditLog : public AuditLog {
 public:
  SqliteAuditLog(std::shared_ptr<SqliteDb> db, Clock* clock)
      : db_(std::move(db)),
        clock_(clock),
        queue_(BatchWriterOptions{"audit records", 2048, 100000, 200, 256},
               [this](const std::vector<AuditEvent>& batch) { return WriteBatch(batch); }) {}

  Status Record(const AuditEvent& event) override {
    AuditEvent stamped = event;
    stamped.at_ms = clock_->NowMillis();
    return queue_.Add(std::move(stamped));
  }

  uint64_t Dropped() const override { return queue_.dropped(); }

  Status Query(const AuditQuery& query, std::vector<AuditEvent>* events) override {
    queue_.Flush();
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    SqliteConnection* conn = lease.get();
    SqliteStatement stmt;
    if (s.ok()) s = conn->Prepare(query.user_id.empty() ? kQuerySql : kUserQuerySql, &stmt);
    if (!s.ok()) return s;
    stmt.BindText(1, query.user_id);
    stmt.BindInt64(2, query.since_ms);
    stmt.BindInt64(3, std::max(1, query.limit));
    events->clear();
    for (bool row = false; (s = stmt.Step(&row)).ok() && row;) {
      events->push_back(AuditEvent{stmt.ColumnInt64(0), stmt.ColumnText(1), stmt.ColumnText(2),
                                   stmt.ColumnText(3), stmt.ColumnText(4), stmt.ColumnText(5)});
    }
    return s;
  }

  Status Purge(int64_t retention_ms, int64_t* purged) override {
    queue_.Flush();
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    SqliteConnection* conn = lease.get();
    if (!s.ok()) return s;
    return WriteTransaction(conn, [&] {
      SqliteStatement stmt;
      Status ws = conn->Prepare(kPurgeSql, &stmt);
      if (!ws.ok()) return ws;
      stmt.BindInt64(1, clock_->NowMillis() - retention_ms);
      ws = stmt.Run();
      if (ws.ok()) *purged = conn->Changes();
      return ws;
    });
  }

 private:
  Status WriteBatch(const std::vector<AuditEvent>& batch) {
    return db_->WriteBehind([&](SqliteConnection* conn) {
      for (const AuditEvent& event : batch) {
        SqliteStatement stmt;
        Status ws = conn->Prepare(kInsertSql, &stmt);
        if (!ws.ok()) return ws;
        stmt.BindInt64(1, event.at_ms);
        stmt.BindText(2, event.user_id);
        stmt.BindText(3, event.masked_phone);
        stmt.BindText(4, event.client_ip);
        stmt.BindText(5, event.event);
        stmt.BindText(6, event.outcome);
        ws = stmt.Run();
        if (!ws.ok()) return ws;
      }
      return Status::OK();
    });
  }

  const std::shared_ptr<SqliteDb> db_;
  Clock* const clock_;
  BatchWriter<AuditEvent> queue_;  // last: its thread writes through db_
};

bool ParseDigits(const std::string& text, size_t pos, size_t n, int* out) {
  if (pos + n > text.size()) return false;
  int v = 0;
  for (size_t i = pos; i < pos + n; i++) {
    if (text[i] < '0' || text[i] > '9') return false;
    v = v * 10 + (text[i] - '0');
  }
  *out = v;
  return true;
}

// "2026-11-24" or "2026-11-24T01:02:03Z" as milliseconds (UTC).
bool ParseUtc(const std::string& text, int64_t* ms) {
  struct tm tm = {};
  int y = 0, mo = 0, d = 0, h = 0, mi = 0, sec = 0;
  const bool date = (text.size() == 10 || text.size() == 20) && ParseDigits(text, 0, 4, &y) &&
                    text[4] == '-' && ParseDigits(text, 5, 2, &mo) && text[7] == '-' &&
                    ParseDigits(text, 8, 2, &d);
  if (!date) return false;
  if (text.size() == 20 && !(text[10] == 'T' && ParseDigits(text, 11, 2, &h) && text[13] == ':' &&
                             ParseDigits(text, 14, 2, &mi) && text[16] == ':' &&
                             ParseDigits(text, 17, 2, &sec) && text[19] == 'Z')) {
    return false;
  }
  if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return false;
  tm.tm_year = y - 1900;
  tm.tm_mon = mo - 1;
  tm.tm_mday = d;
  tm.tm_hour = h;
  tm.tm_min = mi;
  tm.tm_sec = sec;
  *ms = static_cast<int64_t>(timegm(&tm)) * 1000;
  return true;
}

}  // namespace

Status NewSqliteAuditLog(std::shared_ptr<SqliteDb> db, Clock* clock,
                         std::unique_ptr<AuditLog>* audit) {
  if (db == nullptr || clock == nullptr) {
    return Status::InvalidArgument("NewSqliteAuditLog needs a database and a clock");
  }
  audit->reset(new SqliteAuditLog(std::move(db), clock));
  return Status::OK();
}

Status ParseSince(const std::string& text, int64_t now_ms, int64_t* since_ms) {
  if (ParseUtc(text, since_ms)) return Status::OK();
  const std::string units = "smhd";
  const int64_t unit_ms[] = {1000, 60000, 3600000, 86400000};
  const size_t unit = text.empty() ? std::string::npos : units.find(text.back());
  int n = 0;
  if (unit != std::string::npos && text.size() >= 2 && text.size() <= 7 &&
      ParseDigits(text, 0, text.size() - 1, &n)) {
    *since_ms = now_ms - n * unit_ms[unit];
    return Status::OK();
  }
  return Status::InvalidArgument("--since '" + text +
                                 "': use a UTC time like 2026-11-24T01:02:03Z, a date like "
                                 "2026-11-24, or an age like 30m, 12h, 7d");
}

std::string FormatUtc(int64_t ms) {
  const time_t secs = static_cast<time_t>(ms / 1000);
  struct tm tm;
  gmtime_r(&secs, &tm);
  char buf[80];
  snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
           tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
           static_cast<int>(ms % 1000));
  return buf;
}

}  // namespace otpd
