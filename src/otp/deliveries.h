// Delivery receipts: what became of each SMS after the provider took it.
//
// DeliveryLog keeps one row per message the provider accepted (keyed by
// the provider's message ID) with its latest status; SQLite
// (store/deliveries_sqlite.cpp) and Redis (store/deliveries_redis.cpp)
// implement it. DeliveryTracker is the policy on top: it records each
// send, applies each receipt (from a signed callback, checked by the HTTP
// layer), and reports a change once to the audit trail, the metrics and the
// log. Both are thread-safe.
#ifndef OTPD_DELIVERIES_H_
#define OTPD_DELIVERIES_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/delivery_metrics.h"
#include "core/status.h"
#include "otp/audit.h"

namespace otpd {

class SqliteDb;

// The statuses a message goes through. "accepted" is ours (the provider
// took it, no receipt yet); "unknown" is ours too (no final receipt within
// the unknown_after time). The rest are Twilio's MessageStatus values.
// A final status (delivered, undelivered, failed, read, canceled) is never
// replaced by an earlier one, so receipts arriving late or twice change
// nothing.
struct Delivery {
  std::string message_id;    // the provider's ID (Twilio MessageSid)
  std::string provider;      // "twilio", "vonage", ...
  std::string user_id;       // normalized
  std::string masked_phone;  // MaskPhone output
  int64_t sent_at_ms = 0;
  int64_t code_expires_at_ms = 0;  // when the code this message carried expires
  std::string status = "accepted";
  int error_code = 0;  // the provider's error code with the latest status
  int64_t updated_at_ms = 0;
};

// The rank of `status` in a message's life: later statuses have higher
// ranks; every final status shares the top rank. Unknown texts rank 0.
int DeliveryStatusRank(const std::string& status);
bool IsFinalDeliveryStatus(const std::string& status);

class DeliveryLog {
 public:
  virtual ~DeliveryLog() = default;
  // Stores a new row for `d` (status "accepted" unless set). A second row
  // with the same message_id replaces nothing and answers OK. Unavailable:
  // the write-behind queue is full; logged by the log itself, once a
  // minute at most.
  virtual Status RecordSend(const Delivery& d) = 0;
  // Rows RecordSend refused since the start because its queue was full
  // (otpd_records_dropped_total).
  virtual uint64_t Dropped() const { return 0; }
  // Sets the status of `message_id` to `status` when it ranks above the
  // stored one (or the stored one is "unknown" and `status` is final).
  // *found: the message is known; *changed: the row changed; *row: the row
  // after the call (when found). NotFound is not an error: *found = false.
  virtual Status Apply(const std::string& message_id, const std::string& status, int error_code,
                       int64_t now_ms, bool* found, bool* changed, Delivery* row) = 0;
  // The newest row for `user_id`; NotFound when none.
  virtual Status LastForUser(const std::string& user_id, Delivery* row) = 0;
  // Marks "unknown" every row sent before `cutoff_ms` whose status is not
  // final, and returns those rows (after the change). A row is returned by
  // one call only, even with several processes sweeping.
  virtual Status MarkUnknown(int64_t cutoff_ms, int64_t now_ms, std::vector<Delivery>* rows) = 0;
  // Removes rows sent before `cutoff_ms`.
  virtual Status Purge(int64_t cutoff_ms, int64_t* purged) = 0;
};

// The `deliveries` table in `db` (created when missing; nothing else in the
// file changes).
Status NewSqliteDeliveryLog(std::shared_ptr<SqliteDb> db, std::unique_ptr<DeliveryLog>* log);

#ifdef OTPD_REDIS
struct RedisEndpoint;
// The log in Redis (store/deliveries_redis.cpp), shared by every node on
// the server and `prefix`, so a receipt may reach any node. Each row
// expires `ttl_ms` after its send. Connects on first use.
Status NewRedisDeliveryLog(const RedisEndpoint& endpoint, const std::string& prefix, int timeout_ms,
                           int64_t ttl_ms, std::unique_ptr<DeliveryLog>* log);
#endif

struct DeliveryOptions {
  int64_t unknown_after_ms = 900 * 1000;  // no final receipt by then: "unknown"
};

class DeliveryTracker {
 public:
  // `log`, `clock`, `audit` (may be null) and `metrics` must outlive the
  // tracker; a null `metrics` is replaced by a private instance.
  DeliveryTracker(DeliveryLog* log, Clock* clock, AuditLog* audit,
                  const DeliveryOptions& options = DeliveryOptions(),
                  DeliveryMetrics* metrics = nullptr);

  // A message the provider took. Failures are logged, never returned: a
  // receipt that cannot be recorded must not fail the send.
  void OnSent(const std::string& provider, const std::string& message_id,
              const std::string& user_id, const std::string& phone, int64_t code_expires_at_ms);

  // One receipt. A change (never a replay) is counted in the
  // DeliveryMetrics, written to the audit trail as event
  // "delivery" with outcome "<status>" or "<status>:<error code>", and for
  // undelivered/failed of a code still live, logged with the error code.
  // *known: the message was one of ours. Non-OK only when the log failed.
  Status OnReceipt(const std::string& message_id, const std::string& status, int error_code,
                   bool* known);

  // Marks messages without a final status after unknown_after_ms as
  // "unknown" (counted and audited like a receipt).
  Status Sweep();

  // Delivery rows dropped by a full write-behind queue (DeliveryLog::Dropped).
  uint64_t DroppedRows() const { return log_->Dropped(); }

  // The latest send of `user_id`; NotFound when none is recorded.
  Status LastSend(const std::string& user_id, Delivery* row) {
    return log_->LastForUser(user_id, row);
  }

 private:
  void Report(const Delivery& row, const char* source);

  DeliveryLog* const log_;
  Clock* const clock_;
  AuditLog* const audit_;
  const DeliveryOptions options_;
  std::unique_ptr<DeliveryMetrics> own_metrics_;  // when none was passed in
  DeliveryMetrics* const metrics_;
};

}  // namespace otpd

#endif  // OTPD_DELIVERIES_H_
