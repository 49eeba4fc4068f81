// OtpService: the rules of sending and verifying one-time codes.
//
// Talks only to interfaces (Storage, UserDirectory, SmsSender, Clock,
// RandomSource), so every rule is tested with fakes and a fake clock; it
// includes no HTTP, SQL or JSON. Thread-safe: handlers call it from many
// threads; it holds no lock of its own and no lock across the SMS send.
// Each call counts its outcome in DefaultMetrics() (and the SMS provider's
// latency). The options can be replaced while serving (SetOptions, on
// SIGHUP); each call uses one consistent set.
#ifndef OTPD_OTP_SERVICE_H_
#define OTPD_OTP_SERVICE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "clock.h"
#include "code_hash.h"
#include "live_value.h"
#include "random.h"
#include "sms.h"
#include "status.h"
#include "storage.h"
#include "users.h"

namespace otpd {

struct OtpOptions {
  int code_length = 6;                // digits per code
  int64_t expiry_ms = 300 * 1000;     // lifetime of a code
  int max_attempts = 3;               // wrong guesses a code takes
  int64_t expired_grace_ms = 600 * 1000;  // how long an expired code answers kExpired
  std::string app_name = "otpd";
  std::string message_template = "Your {app} code is {code}. It expires in {minutes} minutes.";
  std::map<std::string, std::string> templates;  // locale -> template (SelectSmsTemplate)
  std::string webotp_domain;  // non-empty: "@domain #code" ends each message
};

// A template whose message may not fit one SMS segment.
struct OversizedTemplate {
  std::string locale;  // "" for message_template
  SmsLength length;    // with the longest code and the app name filled in
};

enum class SendOutcome {
  kSent,           // a new code is stored and the SMS provider took it
  kUserNotFound,   // no such user: nothing stored, nothing sent
  kPhoneNotFound,  // the user has no phone on record: nothing stored or sent
  kSmsFailed,      // the provider refused: the new code was removed again
};

struct SendResult {
  SendOutcome outcome = SendOutcome::kUserNotFound;
  std::string user_id;  // normalized
  std::string phone;    // as stored, when the user was found
  SmsReceipt receipt;   // the provider's message ID or error code
};

struct VerifyCodeResult {
  VerifyResult store;   // outcome, attempts left, expiry
  std::string user_id;  // normalized
  int64_t retry_after_s = 0;  // kLocked: whole seconds until the code expires (>= 1)
};

class OtpService {
 public:
  // Every pointer must outlive the service. `hasher` must use the same
  // secret in every process that shares the store.
  OtpService(const OtpOptions& options, Storage* storage, UserDirectory* users,
             SmsSender* sms, Clock* clock, RandomSource* random, const CodeHasher* hasher);

  // Looks the user up, stores a fresh code (replacing the user's earlier
  // one) and texts it. A non-OK Status means a store or randomness failure:
  // then no new code is active (the earlier one may have been replaced).
  Status SendCode(const std::string& user_id, SendResult* result);

  // Checks `passcode` against the user's live code in one atomic store step
  // (see Storage::VerifyCode). Any string is accepted; a non-digit one is
  // simply wrong. A non-OK Status means the store failed and nothing changed.
  Status VerifyCode(const std::string& user_id, const std::string& passcode,
                    VerifyCodeResult* result);

  // The templates (default and per locale) whose message, WebOTP line
  // included, exceeds one SMS segment. For a warning at start.
  std::vector<OversizedTemplate> OversizedTemplates() const;

  // Removes codes expired for longer than the grace period.
  Status PurgeExpired(int64_t* purged);

  // The options in force now. The reference stays valid for the life of
  // the service.
  const OtpOptions& options() const { return options_.Get(); }

  // Replaces the options for calls that start from now on; calls already
  // running finish with the options they started with.
  void SetOptions(const OtpOptions& options) { options_.Set(options); }

 private:
  Status SendCodeUnmetered(const std::string& user_id, SendResult* result);

  // The SMS text for a user with `locale`.
  static std::string Message(const OtpOptions& options, const std::string& locale,
                             const std::string& code);

  LiveValue<OtpOptions> options_;
  Storage* const storage_;
  UserDirectory* const users_;
  SmsSender* const sms_;
  Clock* const clock_;
  RandomSource* const random_;
  const CodeHasher* const hasher_;
};

}  // namespace otpd

#endif  // OTPD_OTP_SERVICE_H_
