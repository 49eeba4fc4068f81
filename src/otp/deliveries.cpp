#include "otp/deliveries.h"

#include "core/delivery_metrics.h"
#include "core/log.h"
#include "core/phone.h"

namespace otpd {

int DeliveryStatusRank(const std::string& status) {
  if (status == "accepted" || status == "scheduled") return 1;
  if (status == "queued") return 2;
  if (status == "sending") return 3;
  if (status == "sent") return 4;
  if (IsFinalDeliveryStatus(status)) return 5;
  return 0;
}

bool IsFinalDeliveryStatus(const std::string& status) {
  return status == "delivered" || status == "undelivered" || status == "failed" ||
         status == "read" || status == "canceled";
}

DeliveryTracker::DeliveryTracker(DeliveryLog* log, Clock* clock, AuditLog* audit,
                                 const DeliveryOptions& options, DeliveryMetrics* metrics)
    : log_(log),
      clock_(clock),
      audit_(audit),
      options_(options),
      own_metrics_(metrics == nullptr ? new DeliveryMetrics(clock) : nullptr),
      metrics_(metrics == nullptr ? own_metrics_.get() : metrics) {}

void DeliveryTracker::OnSent(const std::string& provider, const std::string& message_id,
                             const std::string& user_id, const std::string& phone,
                             int64_t code_expires_at_ms) {
  metrics_->RecordProviderSent(provider);
  if (message_id.empty()) return;  // nothing a receipt could name
  Delivery d;
  d.message_id = message_id;
  d.provider = provider;
  d.user_id = user_id;
  d.masked_phone = MaskPhone(phone);
  d.sent_at_ms = clock_->NowMillis();
  d.updated_at_ms = d.sent_at_ms;
  d.code_expires_at_ms = code_expires_at_ms;
  Status s = log_->RecordSend(d);
  // A full queue is logged by the delivery log itself, once a minute at most.
  if (!s.ok() && s.code() != Status::Code::kUnavailable) {
    Log(LogLevel::kWarn, "cannot record the send for its delivery receipt",
        {{"user_id", user_id}, {"message_id", message_id}, {"error", s.ToString()}});
  }
}

Status DeliveryTracker::OnReceipt(const std::string& message_id, const std::string& status,
                                  int error_code, bool* known) {
  bool changed = false;
  Delivery row;
  Status s =
      log_->Apply(message_id, status, error_code, clock_->NowMillis(), known, &changed, &row);
  if (!s.ok()) return s;
  if (!*known) {
    Log(LogLevel::kDebug, "delivery receipt for a message otpd does not know",
        {{"message_id", message_id}, {"status", status}});
    return s;
  }
  if (changed) Report(row, "receipt");
  return s;
}

Status DeliveryTracker::Sweep() {
  const int64_t now = clock_->NowMillis();
  std::vector<Delivery> rows;
  Status s = log_->MarkUnknown(now - options_.unknown_after_ms, now, &rows);
  if (!s.ok()) return s;
  for (const Delivery& row : rows) Report(row, "timeout");
  return s;
}

// One status change: counted, audited, and logged (at warn for a failure of
// a code that can still be used, so the operator sees who is waiting).
void DeliveryTracker::Report(const Delivery& row, const char* source) {
  metrics_->RecordStatus(row.provider, row.status);
  if (row.status == "delivered") {
    metrics_->RecordDelivered(row.updated_at_ms - row.sent_at_ms);
  }
  const std::string outcome =
      row.error_code == 0 ? row.status : row.status + ":" + std::to_string(row.error_code);
  if (audit_ != nullptr) {
    Status s =
        audit_->Record(AuditEvent{0, row.user_id, row.masked_phone, "", "delivery",
                                  outcome + (row.provider.empty() ? "" : " via " + row.provider)});
    if (!s.ok()) {
      Log(LogLevel::kWarn, "cannot write audit record",
          {{"user_id", row.user_id}, {"event", "delivery"}, {"error", s.ToString()}});
    }
  }
  const bool failed = row.status == "undelivered" || row.status == "failed";
  const bool live = row.code_expires_at_ms > clock_->NowMillis();
  Log(failed && live ? LogLevel::kWarn : LogLevel::kInfo,
      failed && live ? "sms not delivered; the code is still live" : "sms delivery status",
      {{"user_id", row.user_id},
       {"phone", row.masked_phone},
       {"provider", row.provider},
       {"message_id", row.message_id},
       {"status", row.status},
       {"error_code", std::to_string(row.error_code)},
       {"source", source}});
}

}  // namespace otpd
