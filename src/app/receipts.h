// The daemon's delivery-receipt parts, built from the config: the log (in
// the SQLite file), the tracker, and the background sweep that marks
// messages without a final receipt as unknown and purges old rows.
#ifndef OTPD_APP_RECEIPTS_H_
#define OTPD_APP_RECEIPTS_H_

#include <memory>
#include <string>

#include "config/config.h"
#include "core/periodic.h"
#include "otp/audit.h"
#include "otp/deliveries.h"

namespace otpd {

struct Receipts {
  std::unique_ptr<DeliveryLog> log;
  std::unique_ptr<DeliveryTracker> tracker;
  std::unique_ptr<PeriodicTask> sweep;
};

// The URL Twilio is told to post receipts to ("" when public_url is not set).
std::string ReceiptUrl(const Config& c);

// The token Twilio signs receipts with: twilio_auth_token, or the contents
// of twilio_auth_token_file ("" when neither, or the file is unreadable).
std::string ReceiptSigningToken(const Config& c);

// Builds the parts, with rows kept audit_retention_days: the log in the
// SQLite file `db`, or in Redis when `store` (the code store in effect) is
// "redis", so every node sees every send. Status changes are counted in
// `metrics` (must outlive `receipts`).
Status OpenReceipts(const Config& c, std::shared_ptr<SqliteDb> db, AuditLog* audit,
                    DeliveryMetrics* metrics, const std::string& store, Receipts* receipts);

}  // namespace otpd

#endif  // OTPD_APP_RECEIPTS_H_
