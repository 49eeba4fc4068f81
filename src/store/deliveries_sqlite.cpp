// DeliveryLog in the `deliveries` table. The table is created here, beside
// the schema sqlite_db.cpp versions, so adding it changes no other table
// and an older otpd opening the file simply ignores it.
#include <utility>

#include "otp/deliveries.h"
#include "store/batch_writer.h"
#include "store/sqlite_db.h"

namespace otpd {
namespace {

constexpr char kSchemaSql[] =
    "CREATE TABLE IF NOT EXISTS deliveries ("
    "  message_id TEXT PRIMARY KEY, provider TEXT NOT NULL, user_id TEXT NOT NULL,"
    "  phone TEXT NOT NULL, sent_at INTEGER NOT NULL, code_expires_at INTEGER NOT NULL,"
    "  status TEXT NOT NULL, error_code INTEGER NOT NULL DEFAULT 0,"
    "  updated_at INTEGER NOT NULL);"
    "CREATE INDEX IF NOT EXISTS deliveries_user ON deliveries (user_id, sent_at);"
    "CREATE INDEX IF NOT EXISTS deliveries_sent ON deliveries (sent_at);";
constexpr char kInsertSql[] =
    "INSERT OR IGNORE INTO deliveries (message_id, provider, user_id, phone, sent_at,"
    " code_expires_at, status, error_code, updated_at) VALUES (?1,?2,?3,?4,?5,?6,?7,?8,?9)";
constexpr char kSelectSql[] =
    "SELECT message_id, provider, user_id, phone, sent_at, code_expires_at, status,"
    " error_code, updated_at FROM deliveries WHERE message_id = ?1";
constexpr char kLastSql[] =
    "SELECT message_id, provider, user_id, phone, sent_at, code_expires_at, status,"
    " error_code, updated_at FROM deliveries WHERE user_id = ?1"
    " ORDER BY sent_at DESC, rowid DESC LIMIT 1";
constexpr char kUpdateSql[] =
    "UPDATE deliveries SET status = ?2, error_code = ?3, updated_at = ?4 WHERE message_id = ?1";
constexpr char kMarkUnknownSql[] =
    "UPDATE deliveries SET status = 'unknown', updated_at = ?2 WHERE sent_at < ?1 AND status IN"
    " ('accepted', 'queued', 'sending', 'sent', 'scheduled')"
    " RETURNING message_id, provider, user_id, phone, sent_at, code_expires_at, status,"
    " error_code, updated_at";
constexpr char kPurgeSql[] = "DELETE FROM deliveries WHERE sent_at < ?1";

Delivery ReadRow(const SqliteStatement& stmt) {
  Delivery d;
  d.message_id = stmt.ColumnText(0);
  d.provider = stmt.ColumnText(1);
  d.user_id = stmt.ColumnText(2);
  d.masked_phone = stmt.ColumnText(3);
  d.sent_at_ms = stmt.ColumnInt64(4);
  d.code_expires_at_ms = stmt.ColumnInt64(5);
  d.status = stmt.ColumnText(6);
  d.error_code = static_cast<int>(stmt.ColumnInt64(7));
  d.updated_at_ms = stmt.ColumnInt64(8);
  return d;
}

// Whether a row at `from` takes the receipt `to` (see DeliveryLog::Apply).
bool Advances(const std::string& from, const std::string& to) {
  if (from == to) return false;
  if (from == "unknown") return IsFinalDeliveryStatus(to);
  return DeliveryStatusRank(to) > DeliveryStatusRank(from);
}

class SqliteDeliveryLog : public DeliveryLog {
 public:
  explicit SqliteDeliveryLog(std::shared_ptr<SqliteDb> db)
      : db_(std::move(db)),
        queue_(BatchWriterOptions{"delivery rows", 256, 100000, 20},
               [this](const std::vector<Delivery>& rows) { return WriteRows(rows); }) {}

  // One row per answered send, written behind the request
  // (store/batch_writer.h: every 20 ms, and before any read of the table
  // here, so a receipt this process takes always finds its send). A row
  // committed per send cost as much as the rest of the send; the cost is
  // that a crash loses the rows of the last 20 ms (their receipts are then
  // answered `ignored`), and a receipt reaching another process sharing the
  // file within those 20 ms of the send is not found either.
  Status RecordSend(const Delivery& d) override { return queue_.Add(d); }
  uint64_t Dropped() const override { return queue_.dropped(); }

  Status Apply(const std::string& message_id, const std::string& status, int error_code,
               int64_t now_ms, bool* found, bool* changed, Delivery* row) override {
    *found = false;
    *changed = false;
    queue_.Flush();
    return Write([&](SqliteConnection* conn) {
      Status s = Select(conn, kSelectSql, message_id, found, row);
      if (!s.ok() || !*found || !Advances(row->status, status)) return s;
      SqliteStatement stmt;
      s = conn->Prepare(kUpdateSql, &stmt);
      if (!s.ok()) return s;
      stmt.BindText(1, message_id);
      stmt.BindText(2, status);
      stmt.BindInt64(3, error_code);
      stmt.BindInt64(4, now_ms);
      s = stmt.Run();
      if (!s.ok()) return s;
      row->status = status;
      row->error_code = error_code;
      row->updated_at_ms = now_ms;
      *changed = true;
      return s;
    });
  }

  Status LastForUser(const std::string& user_id, Delivery* row) override {
    queue_.Flush();
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    if (!s.ok()) return s;
    bool found = false;
    s = Select(lease.get(), kLastSql, user_id, &found, row);
    if (s.ok() && !found) return Status::NotFound("no send recorded for " + user_id);
    return s;
  }

  Status MarkUnknown(int64_t cutoff_ms, int64_t now_ms, std::vector<Delivery>* rows) override {
    rows->clear();
    queue_.Flush();
    return Write([&](SqliteConnection* conn) {
      rows->clear();
      SqliteStatement stmt;
      Status s = conn->Prepare(kMarkUnknownSql, &stmt);
      if (!s.ok()) return s;
      stmt.BindInt64(1, cutoff_ms);
      stmt.BindInt64(2, now_ms);
      for (bool more = false; (s = stmt.Step(&more)).ok() && more;) rows->push_back(ReadRow(stmt));
      return s;
    });
  }

  Status Purge(int64_t cutoff_ms, int64_t* purged) override {
    queue_.Flush();
    return Write([&](SqliteConnection* conn) {
      SqliteStatement stmt;
      Status s = conn->Prepare(kPurgeSql, &stmt);
      if (!s.ok()) return s;
      stmt.BindInt64(1, cutoff_ms);
      s = stmt.Run();
      if (s.ok()) *purged = conn->Changes();
      return s;
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
  Status WriteRows(const std::vector<Delivery>& rows) {
    return db_->WriteBehind([&](SqliteConnection* conn) {
      for (const Delivery& d : rows) {
        SqliteStatement stmt;
        Status s = conn->Prepare(kInsertSql, &stmt);
        if (!s.ok()) return s;
        stmt.BindText(1, d.message_id);
        stmt.BindText(2, d.provider);
        stmt.BindText(3, d.user_id);
        stmt.BindText(4, d.masked_phone);
        stmt.BindInt64(5, d.sent_at_ms);
        stmt.BindInt64(6, d.code_expires_at_ms);
        stmt.BindText(7, d.status.empty() ? "accepted" : d.status);
        stmt.BindInt64(8, d.error_code);
        stmt.BindInt64(9, d.updated_at_ms == 0 ? d.sent_at_ms : d.updated_at_ms);
        s = stmt.Run();
        if (!s.ok()) return s;
      }
      return Status::OK();
    });
  }

  template <typename Body>
  Status Write(Body body) {
    SqliteLease lease;
    Status s = db_->Acquire(&lease);
    if (!s.ok()) return s;
    SqliteConnection* conn = lease.get();
    return WriteTransaction(conn, [&] { return body(conn); });
  }

  static Status Select(SqliteConnection* conn, const char* sql, const std::string& key, bool* found,
                       Delivery* row) {
    SqliteStatement stmt;
    Status s = conn->Prepare(sql, &stmt);
    if (!s.ok()) return s;
    stmt.BindText(1, key);
    bool has_row = false;
    s = stmt.Step(&has_row);
    *found = s.ok() && has_row;
    if (*found) *row = ReadRow(stmt);
    return s;
  }

  const std::shared_ptr<SqliteDb> db_;
  BatchWriter<Delivery> queue_;  // last: its thread writes through db_
};

}  // namespace

Status NewSqliteDeliveryLog(std::shared_ptr<SqliteDb> db, std::unique_ptr<DeliveryLog>* log) {
  if (db == nullptr) return Status::InvalidArgument("NewSqliteDeliveryLog needs a database");
  auto impl = std::make_unique<SqliteDeliveryLog>(std::move(db));
  Status s = impl->Init();
  if (!s.ok()) return s;
  *log = std::move(impl);
  return Status::OK();
}

}  // namespace otpd
