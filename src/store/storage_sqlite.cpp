// Storage on the SQLite database: an append-only log of decisions taken
// against state in memory (store/code_log.h; the code_log table in
// sqlite_db.cpp).
//
// Callers queue their operation; one of them at a time leads a batch on
// the store's writer connection: BEGIN IMMEDIATE (so threads and processes
// sharing the file are serialized), apply the rows other processes
// appended since this one last looked, decide each queued operation with
// otp/rules.h against the state, append one row per decision, COMMIT, and
// only then wake the callers. An answer is therefore given only once its
// row is in the WAL (kill -9 loses no answered code or attempt), and
// attempts and caps are exact across threads and processes.
//
// The process's other writes behind the request (the audit trail, delivery
// rows: SqliteDb::WriteBehind) join the same batches, each in a savepoint
// of its own: no second connection takes the file's write lock between
// batches, and the writer's page cache stays valid.
//
// A failed write or commit rolls the batch back; the state, which already
// holds the batch's rows, is then rebuilt from the file before the next
// batch. PurgeExpired forgets what has expired and deletes dead rows from
// the file; rows are deleted only once every process that has written
// since can have read them (see Compact), and a process that fell behind
// a compaction rebuilds its state from the file.
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

#include "core/code_hash.h"
#include "otp/channel.h"
#include "otp/rules.h"
#include "otp/storage.h"
#include "store/code_log.h"
#include "store/sqlite_db.h"

namespace otpd {
namespace {

constexpr char kReadLogSql[] =
    "SELECT seq, kind, user_id, at, code_hash, expires_at, n, phone, client_ip, channel"
    " FROM code_log WHERE seq > ?1 ORDER BY seq";
constexpr char kAppendSql[] =
    "INSERT INTO code_log (kind, user_id, at, code_hash, expires_at, n, phone, client_ip,"
    " channel) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";
constexpr char kDataVersionSql[] = "PRAGMA data_version";
constexpr char kDeleteRowSql[] = "DELETE FROM code_log WHERE seq = ?1";
constexpr char kSelectSettingSql[] = "SELECT value FROM settings WHERE key = ?1";
constexpr char kUpsertSettingSql[] =
    "INSERT INTO settings (key, value) VALUES (?1, ?2)"
    " ON CONFLICT (key) DO UPDATE SET value = excluded.value";
constexpr char kInsertFingerprintSql[] =
    "INSERT INTO settings (key, value) VALUES ('secret_fingerprint', ?1)"
    " ON CONFLICT (key) DO NOTHING";
constexpr char kSelectFingerprintSql[] =
    "SELECT value FROM settings WHERE key = 'secret_fingerprint'";

// Settings keys of the compaction (see SqliteStorage::Compact): rows with
// seq <= compacted may be missing from the file; mark is the last seq when
// the previous compaction ran, and mark_at when.
constexpr char kCompactedKey[] = "log_compacted_seq";
constexpr char kMarkKey[] = "log_mark_seq";
constexpr char kMarkAtKey[] = "log_mark_at";
// Rows die in the file only this long after they could first be deleted,
// so a process that writes at least this often never has to reload.
constexpr int64_t kCompactAgeMs = 60 * 1000;
// Dead rows deleted per batch: a purge after a busy minute finds hundreds
// of thousands, and deleting them in one transaction stalled every request
// queued behind it for hundreds of milliseconds and put tens of MB in the
// WAL at once.
constexpr size_t kDeleteChunk = 2048;
// A leader that finds fewer operations than this queued yields the CPU
// once before it takes them (see Submit).
constexpr size_t kBatchYieldBelow = 16;

// The channel whose global budget a send spends (the log's channel column).
std::string ChannelOf(const SendRequest& request) { return ChannelName(request.channel); }

class SqliteStorage : public Storage, public SqliteDb::WriteRunner {
 public:
  SqliteStorage(std::shared_ptr<SqliteDb> db, Clock* clock) : db_(std::move(db)), clock_(clock) {}
  ~SqliteStorage() override {
    db_->SetWriteRunner(nullptr);
    writer_.reset();
  }

  // Opens the writer connection and reads the whole log (one read
  // transaction: it does not hold the write lock).
  Status Load();

  Status PutCode(const StoredCode& code) override;
  Status DeleteCode(const std::string& user_id, const std::string& code_hash) override;
  Status VerifyCode(const std::string& user_id, const std::string& code_hash,
                    const VerifyLimits& limits, VerifyResult* result) override;
  Status ReserveSend(const SendRequest& request, const SendLimits& limits,
                     SendDecision* decision) override;
  Status ReserveSendAndPut(const SendRequest& request, const SendLimits& limits,
                           const StoredCode& code, SendDecision* decision) override;
  Status PurgeExpired(int64_t grace_ms, int64_t history_ms, int64_t* purged) override;
  Status CheckWritable() override;
  Status CountActiveCodes(int64_t* count) override;
  Status RunWrite(const SqliteDb::WriteBody& body) override;

 private:
  enum class OpKind { kPut, kDelete, kVerify, kSend, kPurge, kDeleteDead, kCount, kWrite };
  struct Op {
    explicit Op(OpKind k) : kind(k) {}
    OpKind kind;
    const StoredCode* code = nullptr;  // kPut; kSend: also store it when allowed
    const std::string* user_id = nullptr;
    const std::string* code_hash = nullptr;
    const VerifyLimits* verify_limits = nullptr;
    VerifyResult verify;
    const SendRequest* send = nullptr;
    const SendLimits* send_limits = nullptr;
    SendDecision decision;
    int64_t grace_ms = 0;
    int64_t history_ms = 0;
    int64_t count = 0;
    const SqliteDb::WriteBody* body = nullptr;  // kWrite
    Status written;                             // kWrite: the body's own Status
    Status result;
    // The caller waits on its own mutex, never on mu_, so waking it does
    // not contend with the next batch.
    enum class Wake { kWaiting, kDone, kLead };
    std::mutex wake_mu;
    Wake wake = Wake::kWaiting;  // guarded by wake_mu
    std::condition_variable wake_cv;
  };
  // Sets op->wake to `to` and wakes its caller. After this `op` may be gone.
  static void Signal(Op* op, Op::Wake to);

  // A send op, storing `code` with it when not null.
  Status SubmitSend(const SendRequest& request, const SendLimits& limits, const StoredCode* code,
                    SendDecision* decision);
  // Queues `op` and returns once a batch holding it has committed (or
  // failed): op->result is its status.
  Status Submit(Op* op);
  // One transaction for `batch`; fills each op's result.
  void RunBatch(const std::vector<Op*>& batch);
  Status Decide(Op* op);
  Status CatchUp();
  Status ReadRows(int64_t after);
  Status Reload();
  Status Append(LogRow* row);
  Status AppendPut(const StoredCode& code);
  Status Compact();
  Status DeleteDead();
  Status WriteInSavepoint(Op* op);
  Status ReadSetting(const char* key, int64_t* value);
  Status WriteSetting(const char* key, int64_t value);

  const std::shared_ptr<SqliteDb> db_;
  Clock* const clock_;

  std::mutex mu_;
  std::vector<Op*> queue_;  // guarded by mu_
  bool leading_ = false;    // guarded by mu_

  // Owned by the leader of the batch (handed over under mu_).
  std::unique_ptr<SqliteConnection> writer_;
  CodeLogState state_;
  int64_t cursor_ = 0;         // every row with seq <= cursor_ is applied
  bool needs_reload_ = false;  // the state holds rows that were rolled back
  // Dead rows log_compacted_seq covers but still in the file, largest
  // first; more_dead_ says whether any are left (read outside batches).
  std::vector<int64_t> deleting_;
  std::atomic<bool> more_dead_{false};
  bool foreign_rows_ = false;  // rows from elsewhere read since the last compaction
  int64_t committed_ = 0;      // cursor_ after the last commit
  int64_t data_version_ = -1;  // PRAGMA data_version when last caught up
};

Status SqliteStorage::Load() {
  Status s = db_->OpenWriter(&writer_);
  if (!s.ok()) return s;
  s = writer_->Exec("BEGIN");
  if (s.ok()) s = Reload();
  Status end = writer_->Exec(s.ok() ? "COMMIT" : "ROLLBACK");
  committed_ = cursor_;
  if (!s.ok()) return s;
  if (end.ok()) db_->SetWriteRunner(this);
  return end;
}

// Each waiting caller sleeps on its own condition variable (and mutex),
// and a leader wakes only the callers of its batch and the next leader:
// no herd of threads waking to find their batch is not done yet. The next
// leader is woken first and outside mu_, so its batch starts while this
// batch's callers are being woken.
//
// A leader with a short queue yields the CPU once first. Under load the
// requests that run in the meantime queue their operations a few
// microseconds later and join this batch instead of waiting for the next:
// on 2 busy cores batches grew from about 3 operations to about 16 and the
// p99 fell by a third (README, Performance). On an idle machine nothing
// else is runnable, the yield returns at once, and a lone operation does
// not wait.
Status SqliteStorage::Submit(Op* op) {
  std::unique_lock<std::mutex> lock(mu_);
  queue_.push_back(op);
  if (leading_) {
    lock.unlock();
    {
      std::unique_lock<std::mutex> wait(op->wake_mu);
      op->wake_cv.wait(wait, [&] { return op->wake != Op::Wake::kWaiting; });
      if (op->wake == Op::Wake::kDone) return op->result;
    }
    lock.lock();  // handed the lead: leading_ stayed true
  }
  leading_ = true;
  if (queue_.size() < kBatchYieldBelow) {
    lock.unlock();
    sched_yield();
    lock.lock();
  }
  std::vector<Op*> batch;
  batch.swap(queue_);  // holds op
  lock.unlock();
  RunBatch(batch);
  lock.lock();
  Op* next = nullptr;
  if (queue_.empty()) {
    leading_ = false;
  } else {
    next = queue_.front();
  }
  lock.unlock();
  if (next != nullptr) Signal(next, Op::Wake::kLead);
  const Status result = op->result;
  for (Op* done : batch) {
    if (done != op) Signal(done, Op::Wake::kDone);
  }
  return result;
}

void SqliteStorage::Signal(Op* op, Op::Wake to) {
  std::lock_guard<std::mutex> lock(op->wake_mu);
  op->wake = to;
  op->wake_cv.notify_one();
}

void SqliteStorage::RunBatch(const std::vector<Op*>& batch) {
  SqliteTransaction txn(writer_.get());
  Status s = txn.Begin();
  if (s.ok()) s = CatchUp();
  for (size_t i = 0; s.ok() && i < batch.size(); i++) s = Decide(batch[i]);
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) {
    needs_reload_ = true;  // rows the state applied are not in the file
    for (Op* op : batch) op->result = s;
    return;
  }
  committed_ = cursor_;
  more_dead_.store(!deleting_.empty());
  for (Op* op : batch) op->result = op->kind == OpKind::kWrite ? op->written : Status::OK();
}

Status SqliteStorage::ReadSetting(const char* key, int64_t* value) {
  SqliteStatement stmt;
  Status s = writer_->Prepare(kSelectSettingSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, key);
  bool row = false;
  s = stmt.Step(&row);
  *value = s.ok() && row ? std::strtoll(stmt.ColumnText(0).c_str(), nullptr, 10) : 0;
  return s;
}

Status SqliteStorage::WriteSetting(const char* key, int64_t value) {
  SqliteStatement stmt;
  Status s = writer_->Prepare(kUpsertSettingSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindText(1, key);
  stmt.BindText(2, std::to_string(value));
  return stmt.Run();
}

// REQUIRES: inside the batch's transaction.
Status SqliteStorage::CatchUp() {
  if (needs_reload_) return Reload();
  // PRAGMA data_version moves only when another connection committed:
  // unchanged, there is nothing new to read.
  SqliteStatement version;
  Status s = writer_->Prepare(kDataVersionSql, &version);
  bool row = false;
  if (s.ok()) s = version.Step(&row);
  if (!s.ok()) return s;
  const int64_t seen = row ? version.ColumnInt64(0) : -1;
  if (seen == data_version_ && seen >= 0) return Status::OK();
  data_version_ = seen;
  int64_t compacted = 0;
  s = ReadSetting(kCompactedKey, &compacted);
  if (!s.ok()) return s;
  // Rows this process never read may have been deleted: start over.
  if (compacted > cursor_) return Reload();
  const int64_t before = cursor_;
  s = ReadRows(cursor_);
  if (cursor_ != before) foreign_rows_ = true;
  return s;
}

Status SqliteStorage::Reload() {
  state_.Clear();
  deleting_.clear();  // still in the file: found dead again as it is read
  cursor_ = 0;
  Status s = ReadRows(0);
  needs_reload_ = !s.ok();
  // Rows past what this process last committed came from elsewhere.
  if (cursor_ > committed_) foreign_rows_ = true;
  return s;
}

Status SqliteStorage::ReadRows(int64_t after) {
  SqliteStatement stmt;
  Status s = writer_->Prepare(kReadLogSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindInt64(1, after);
  LogRow row;
  bool more = true;
  while (true) {
    s = stmt.Step(&more);
    if (!s.ok() || !more) return s;
    row.seq = stmt.ColumnInt64(0);
    row.kind = static_cast<LogKind>(stmt.ColumnInt64(1));
    row.user_id = stmt.ColumnText(2);
    row.at = stmt.ColumnInt64(3);
    row.code_hash = stmt.ColumnBlob(4);
    row.expires_at = stmt.ColumnInt64(5);
    row.n = stmt.ColumnInt64(6);
    row.phone = stmt.ColumnText(7);
    row.client_ip = stmt.ColumnText(8);
    row.channel = stmt.ColumnText(9);
    state_.Apply(row);
    cursor_ = row.seq;
  }
}

Status SqliteStorage::Append(LogRow* row) {
  SqliteStatement stmt;
  Status s = writer_->Prepare(kAppendSql, &stmt);
  if (!s.ok()) return s;
  stmt.BindInt64(1, static_cast<int64_t>(row->kind));
  stmt.BindText(2, row->user_id);
  stmt.BindInt64(3, row->at);
  stmt.BindBlob(4, row->code_hash);
  stmt.BindInt64(5, row->expires_at);
  stmt.BindInt64(6, row->n);
  stmt.BindText(7, row->phone);
  stmt.BindText(8, row->client_ip);
  stmt.BindText(9, row->channel);
  s = stmt.Run();
  if (!s.ok()) return s;
  row->seq = writer_->LastInsertRowid();
  state_.Apply(*row);
  cursor_ = row->seq;
  return Status::OK();
}

Status SqliteStorage::AppendPut(const StoredCode& code) {
  LogRow row;
  row.kind = LogKind::kPut;
  row.user_id = code.user_id;
  row.at = code.issued_at_ms;
  row.code_hash = code.code_hash;
  row.expires_at = code.expires_at_ms;
  return Append(&row);
}

// REQUIRES: inside the batch's transaction, caught up.
Status SqliteStorage::Decide(Op* op) {
  // Read after the lock was taken: time spent waiting for it counts.
  const int64_t now = clock_->NowMillis();
  LogRow row;
  switch (op->kind) {
    case OpKind::kPut:
      return AppendPut(*op->code);
    case OpKind::kDelete:
      if (!state_.HasCode(*op->user_id, *op->code_hash)) return Status::OK();
      row.kind = LogKind::kDelete;
      row.user_id = *op->user_id;
      row.at = now;
      return Append(&row);
    case OpKind::kVerify: {
      const VerifyState state = state_.ReadVerify(*op->user_id, *op->verify_limits);
      const VerifyDecision d = DecideVerify(state, *op->code_hash, now, *op->verify_limits);
      op->verify = d.result;
      switch (d.effect) {
        case VerifyEffect::kNone:
          return Status::OK();
        case VerifyEffect::kDeleteCode:
          row.kind = LogKind::kDelete;
          break;
        case VerifyEffect::kConsume:
          row.kind = LogKind::kConsume;
          break;
        case VerifyEffect::kCountFailure:
          row.kind = LogKind::kWrongGuess;
          break;
      }
      row.user_id = *op->user_id;
      row.at = now;
      return Append(&row);
    }
    case OpKind::kSend: {
      const SendRequest& r = *op->send;
      const std::string channel = ChannelOf(r);
      const SendState state = state_.ReadSend(r, channel, *op->send_limits);
      op->decision = DecideSend(state, !r.client_ip.empty(), now, *op->send_limits);
      if (!op->decision.allowed) return Status::OK();
      row.kind = LogKind::kSend;
      row.user_id = r.user_id;
      row.at = now;
      row.n = r.counts_toward_global ? 1 : 0;
      row.phone = r.phone;
      row.client_ip = r.client_ip;
      row.channel = channel;
      Status s = Append(&row);
      if (!s.ok() || op->code == nullptr) return s;
      return AppendPut(*op->code);
    }
    case OpKind::kPurge:
      op->count = state_.Purge(now, op->grace_ms, op->history_ms);
      return Compact();
    case OpKind::kDeleteDead:
      return DeleteDead();
    case OpKind::kCount:
      op->count = state_.CountActive(now);
      return Status::OK();
    case OpKind::kWrite:
      return WriteInSavepoint(op);
  }
  return Status::Internal("unknown store operation");
}

// A failing body is undone alone (its rows come back to its caller, which
// retries them), and the batch's decisions still commit.
Status SqliteStorage::WriteInSavepoint(Op* op) {
  Status s = writer_->Exec("SAVEPOINT write_behind");
  if (!s.ok()) return s;
  op->written = (*op->body)(writer_.get());
  if (!op->written.ok()) {
    s = writer_->Exec("ROLLBACK TO write_behind");
    if (!s.ok()) return s;
  }
  return writer_->Exec("RELEASE write_behind");
}

// Deletes dead rows from the file. While no other process has appended
// since the last compaction, every dead row goes at once (a process that
// has not written meanwhile and reads later sees log_compacted_seq above
// its cursor and reloads, CatchUp). Otherwise only the rows up to the
// mark the previous compaction left, once that mark is kCompactAgeMs old:
// a process that writes at least that often has read them all already.
Status SqliteStorage::Compact() {
  const int64_t now = clock_->NowMillis();
  int64_t mark = 0, mark_at = 0, compacted = 0;
  Status s = ReadSetting(kMarkKey, &mark);
  if (s.ok()) s = ReadSetting(kMarkAtKey, &mark_at);
  if (s.ok()) s = ReadSetting(kCompactedKey, &compacted);
  if (!s.ok()) return s;
  int64_t upto = 0;
  if (!foreign_rows_) {
    upto = cursor_;
  } else if (mark_at > 0 && now - mark_at >= kCompactAgeMs) {
    upto = mark;
  } else if (mark_at > 0) {
    return Status::OK();  // the mark is too young: it ages
  }
  std::vector<int64_t> dead = state_.TakeDead(upto);
  deleting_.insert(deleting_.end(), dead.begin(), dead.end());
  // Largest first, so the chunks go from the oldest rows on: whatever has
  // been deleted when a process reloads is a prefix of the dead rows, and
  // a row that undoes older ones (a replacing code, a used-up code that
  // clears failures) is still there while those are.
  std::sort(deleting_.begin(), deleting_.end(), std::greater<int64_t>());
  s = DeleteDead();
  if (s.ok() && upto > compacted) s = WriteSetting(kCompactedKey, upto);
  if (s.ok()) s = WriteSetting(kMarkKey, cursor_);
  if (s.ok()) s = WriteSetting(kMarkAtKey, now);
  if (s.ok()) foreign_rows_ = false;
  return s;
}

// Deletes the next kDeleteChunk rows of deleting_ (rows the compaction
// already declared gone: log_compacted_seq covers them).
Status SqliteStorage::DeleteDead() {
  for (size_t n = 0; n < kDeleteChunk && !deleting_.empty(); n++) {
    SqliteStatement stmt;
    Status s = writer_->Prepare(kDeleteRowSql, &stmt);
    if (!s.ok()) return s;
    stmt.BindInt64(1, deleting_.back());
    s = stmt.Run();
    if (!s.ok()) return s;
    deleting_.pop_back();
  }
  return Status::OK();
}

Status SqliteStorage::PutCode(const StoredCode& code) {
  if (code.user_id.empty() || code.code_hash.empty()) {
    return Status::InvalidArgument("PutCode needs a user ID and a code hash");
  }
  Op op(OpKind::kPut);
  op.code = &code;
  return Submit(&op);
}

Status SqliteStorage::DeleteCode(const std::string& user_id, const std::string& code_hash) {
  Op op(OpKind::kDelete);
  op.user_id = &user_id;
  op.code_hash = &code_hash;
  return Submit(&op);
}

Status SqliteStorage::VerifyCode(const std::string& user_id, const std::string& code_hash,
                                 const VerifyLimits& limits, VerifyResult* result) {
  Op op(OpKind::kVerify);
  op.user_id = &user_id;
  op.code_hash = &code_hash;
  op.verify_limits = &limits;
  Status s = Submit(&op);
  if (s.ok()) *result = op.verify;
  return s;
}

Status SqliteStorage::ReserveSend(const SendRequest& request, const SendLimits& limits,
                                  SendDecision* decision) {
  return SubmitSend(request, limits, nullptr, decision);
}

Status SqliteStorage::ReserveSendAndPut(const SendRequest& request, const SendLimits& limits,
                                        const StoredCode& code, SendDecision* decision) {
  if (code.user_id != request.user_id || code.code_hash.empty()) {
    return Status::InvalidArgument("ReserveSendAndPut needs the sent user's code");
  }
  return SubmitSend(request, limits, &code, decision);
}

Status SqliteStorage::SubmitSend(const SendRequest& request, const SendLimits& limits,
                                 const StoredCode* code, SendDecision* decision) {
  if (request.user_id.empty()) return Status::InvalidArgument("ReserveSend needs a user ID");
  Op op(OpKind::kSend);
  op.send = &request;
  op.send_limits = &limits;
  op.code = code;
  Status s = Submit(&op);
  if (s.ok()) *decision = op.decision;
  return s;
}

Status SqliteStorage::PurgeExpired(int64_t grace_ms, int64_t history_ms, int64_t* purged) {
  if (grace_ms < 0 || history_ms < 0) {
    return Status::InvalidArgument("PurgeExpired: negative grace or history period");
  }
  Op op(OpKind::kPurge);
  op.grace_ms = grace_ms;
  op.history_ms = history_ms;
  Status s = Submit(&op);
  if (!s.ok()) return s;
  *purged = op.count;
  // The rest of the dead rows, a chunk per batch, so requests interleave.
  do {
    Op more(OpKind::kDeleteDead);
    s = Submit(&more);
    if (!s.ok()) return s;
  } while (more_dead_.load());
  return s;
}

// A real committed write, so a read-only file or file system, a full disk or
// a lock held too long all show; plus a check that the file is still the one
// opened (writes to an unlinked file would vanish at the next start). See
// SqliteDb::ProbeWrite.
Status SqliteStorage::CheckWritable() { return db_->ProbeHealth(clock_->NowMillis()); }

// Counted in memory, inside a batch (so it includes other processes' codes).
Status SqliteStorage::CountActiveCodes(int64_t* count) {
  Op op(OpKind::kCount);
  Status s = Submit(&op);
  if (s.ok()) *count = op.count;
  return s;
}

Status SqliteStorage::RunWrite(const SqliteDb::WriteBody& body) {
  Op op(OpKind::kWrite);
  op.body = &body;
  return Submit(&op);
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
      "forget its codes: sqlite3 " +
      path + " \"DELETE FROM otps; DELETE FROM settings WHERE key = 'secret_fingerprint'\"");
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
  std::unique_ptr<SqliteStorage> fresh(new SqliteStorage(std::move(db), clock));
  s = fresh->Load();
  if (!s.ok()) return s;
  *storage = std::move(fresh);
  return Status::OK();
}

}  // namespace otpd
