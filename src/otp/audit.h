// AuditLog: the trail of every send and verify outcome, for operators.
//
// One row per event: when, which user, the masked phone, the client IP,
// the event ("send" or "verify") and its outcome ("sent",
// "rate_limited", "invalid_code", ...). Never a code or a full phone.
// Rows older than the retention are removed by Purge. Thread-safe; rows
// written by several processes on one database all appear.
#ifndef OTPD_AUDIT_H_
#define OTPD_AUDIT_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/status.h"

namespace otpd {

class SqliteDb;

struct AuditEvent {
  int64_t at_ms = 0;         // set by Record from its Clock
  std::string user_id;       // normalized
  std::string masked_phone;  // MaskPhone output, "" when none
  std::string client_ip;
  std::string event;  // "send" | "verify"
  std::string outcome;
};

struct AuditQuery {
  std::string user_id;   // "" for every user; else case-insensitive match
  int64_t since_ms = 0;  // events at or after this time
  int limit = 1000;      // newest rows kept when more match; > 0
};

class AuditLog {
 public:
  virtual ~AuditLog() = default;
  // Appends `event` stamped with the Clock's now. The SQLite log writes it
  // behind the request (within 200 ms, and before any Query or Purge); a
  // crash can lose the records of that last moment, a stop does not.
  // Unavailable: the queue is full (the file has been failing); the log
  // says so itself, once a minute at most, so callers need not.
  virtual Status Record(const AuditEvent& event) = 0;
  // Records Record refused since the start because its queue was full
  // (otpd_records_dropped_total).
  virtual uint64_t Dropped() const { return 0; }
  // The matching events, oldest first.
  virtual Status Query(const AuditQuery& query, std::vector<AuditEvent>* events) = 0;
  // Removes events older than now - retention_ms; *purged counts them.
  virtual Status Purge(int64_t retention_ms, int64_t* purged) = 0;
};

// The trail in the `audit` table of `db`. `clock` must outlive the result.
Status NewSqliteAuditLog(std::shared_ptr<SqliteDb> db, Clock* clock,
                         std::unique_ptr<AuditLog>* audit);

// Parses the --since of `otpd audit`: a UTC time "2026-11-24T01:02:03Z" or
// date "2026-11-24", or an age "90s", "30m", "12h", "7d" before `now_ms`.
// InvalidArgument naming the text otherwise.
Status ParseSince(const std::string& text, int64_t now_ms, int64_t* since_ms);

// "2026-11-24T01:02:03.456Z" for milliseconds since the epoch.
std::string FormatUtc(int64_t ms);

}  // namespace otpd

#endif  // OTPD_AUDIT_H_
