#include "app/receipts.h"

#include <algorithm>

#include "core/clock.h"
#include "core/log.h"
#include "core/redis_url.h"
#include "otp/sms.h"

namespace otpd {

std::string ReceiptUrl(const Config& c) {
  return c.public_url.empty() ? "" : c.public_url + "/twilio/status";
}

std::string ReceiptSigningToken(const Config& c) {
  if (!c.twilio_auth_token.empty() || c.twilio_auth_token_file.empty()) {
    return c.twilio_auth_token;
  }
  std::string token;
  Status s = ReadTwilioAuthTokenFile(c.twilio_auth_token_file, &token);
  if (!s.ok())
    Log(LogLevel::kError, "cannot read the receipt signing token", {{"error", s.message()}});
  return token;
}

Status OpenReceipts(const Config& c, std::shared_ptr<SqliteDb> db, AuditLog* audit,
                    DeliveryMetrics* metrics, const std::string& store, Receipts* receipts) {
  const int64_t retention_ms = int64_t{c.audit_retention_days} * 86400 * 1000;
  Status s;
#ifdef OTPD_REDIS
  if (store == "redis") {
    RedisEndpoint endpoint;
    s = RedisEndpointOf(c, &endpoint);
    if (s.ok()) {
      s = NewRedisDeliveryLog(endpoint, c.redis_prefix, c.redis_timeout_ms, retention_ms,
                              &receipts->log);
    }
  } else {
    s = NewSqliteDeliveryLog(std::move(db), &receipts->log);
  }
#else
  (void)store;
  s = NewSqliteDeliveryLog(std::move(db), &receipts->log);
#endif
  if (!s.ok()) return s;
  DeliveryOptions options;
  options.unknown_after_ms = int64_t{c.delivery_unknown_after} * 1000;
  receipts->tracker.reset(
      new DeliveryTracker(receipts->log.get(), SystemClock(), audit, options, metrics));
  const int64_t every_ms = std::min<int64_t>(60000, options.unknown_after_ms / 2);
  DeliveryTracker* tracker = receipts->tracker.get();
  DeliveryLog* log = receipts->log.get();
  receipts->sweep.reset(new PeriodicTask(every_ms, [tracker, log, retention_ms] {
    Status ss = tracker->Sweep();
    if (!ss.ok()) Log(LogLevel::kWarn, "delivery sweep failed", {{"error", ss.ToString()}});
    int64_t purged = 0;
    ss = log->Purge(SystemClock()->NowMillis() - retention_ms, &purged);
    if (!ss.ok()) Log(LogLevel::kWarn, "delivery purge failed", {{"error", ss.ToString()}});
  }));
  return Status::OK();
}

}  // namespace otpd
