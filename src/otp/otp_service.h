// OtpService: the rules of sending and verifying one-time codes.
//
// Talks only to interfaces (Storage, UserDirectory, SmsSender, Clock,
// RandomSource), so every rule is tested with fakes and a fake clock; it
// includes no HTTP, SQL or JSON. Thread-safe: handlers call it from many
// threads; it holds no lock of its own and no lock across the SMS send.
// Each call counts its outcome in the Metrics passed in (and the SMS
// provider's latency; codes sent and verified in the DeliveryMetrics). The options can be replaced
// while serving (SetOptions, on SIGHUP); each call uses one consistent set.
#ifndef OTPD_OTP_SERVICE_H_
#define OTPD_OTP_SERVICE_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/channel_metrics.h"
#include "core/clock.h"
#include "core/code_hash.h"
#include "core/delivery_metrics.h"
#include "core/live_value.h"
#include "core/metrics.h"
#include "core/phone.h"
#include "core/random.h"
#include "core/status.h"
#include "otp/audit.h"
#include "otp/channel_options.h"
#include "otp/deliveries.h"
#include "otp/latency_mimic.h"
#include "otp/pumping.h"
#include "otp/sms.h"
#include "otp/storage.h"
#include "otp/users.h"

namespace otpd {

struct OtpOptions {
  int code_length = 6;                    // digits per code
  int64_t expiry_ms = 300 * 1000;         // lifetime of a code
  int max_attempts = 3;                   // wrong guesses a code takes
  int64_t expired_grace_ms = 600 * 1000;  // how long an expired code answers kExpired
  std::string app_name = "otpd";
  std::string message_template = "Your {app} code is {code}. It expires in {minutes} minutes.";
  std::map<std::string, std::string> templates;  // locale -> template (SelectSmsTemplate)
  std::string webotp_domain;                     // non-empty: "@domain #code" ends each message
  // Send limits, checked and recorded in the store before a code is made.
  // A send whose SMS then fails still counts: it cost money or probed.
  SendLimits send_limits;
  // Country calling codes ("1", "44", ...) a code may be sent to; empty:
  // every country.
  std::vector<std::string> allowed_country_codes;
  // ISO 3166 regions ("US", "CA") a code may be sent to; empty: every
  // region. With both lists set a number must pass both.
  std::vector<std::string> allowed_regions;
  // Number types refused besides premium-rate and shared-cost, which are
  // always refused (PhoneTypeAlwaysRefused), as is a number that is not
  // valid for its region.
  std::vector<PhoneType> refused_phone_types = {PhoneType::kVoip, PhoneType::kPager,
                                                PhoneType::kPersonal};
  // Failed verifications per user across codes in a rolling window before
  // every verify answers kThrottled; 0 turns the cap off.
  int max_failures = 10;
  int64_t failure_window_ms = 3600 * 1000;
  // Unknown users and users without a phone answer kSent with a stable
  // fake phone instead of kUserNotFound/kPhoneNotFound (see SendCode).
  bool conceal_unknown_users = false;
  // Voice and WhatsApp (SMS is always on); see channel_options.h.
  ChannelOptions channels;
  // Until real sends fill LatencyMimic, its empty slots draw uniformly from
  // [w/2, 3w/2] for this w, so the first concealed answers wait like a
  // provider round trip (0: no wait before the first real send).
  int64_t conceal_initial_wait_us = 300 * 1000;
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
  kRateLimited,    // a send limit or the country allow-list refused:
                   // nothing stored, nothing sent; see retry_after_s
};

struct SendResult {
  SendOutcome outcome = SendOutcome::kUserNotFound;
  std::string user_id;                 // normalized
  std::string phone;                   // as stored, when the user was found
  SmsReceipt receipt;                  // the provider's message ID or error code
  SendLimit limit = SendLimit::kNone;  // kRateLimited: which limit
  int64_t retry_after_s = 0;           // kRateLimited: whole seconds (>= 1)
  bool concealed = false;              // kSent for an unknown user: phone is fake, nothing sent
  Channel channel = Channel::kSms;     // the channel asked for
};

struct VerifyCodeResult {
  VerifyResult store;   // outcome, attempts left, expiry
  std::string user_id;  // normalized
  // kLocked: whole seconds until the code expires; kThrottled: until the
  // oldest counted failure leaves the window (>= 1 for both).
  int64_t retry_after_s = 0;
};

class OtpService {
 public:
  // Every pointer must outlive the service. `hasher` must use the same
  // secret in every process that shares the store. With `audit`, every
  // send and verify outcome is recorded there (a failed record is logged,
  // never fails the request). Outcomes are counted in `metrics` and
  // `delivery_metrics`, which the HTTP layer renders on /metrics; a null
  // one is replaced by a private instance (counted, never shown).
  OtpService(const OtpOptions& options, Storage* storage, UserDirectory* users, SmsSender* sms,
             Clock* clock, RandomSource* random, const CodeHasher* hasher,
             AuditLog* audit = nullptr, Metrics* metrics = nullptr,
             DeliveryMetrics* delivery_metrics = nullptr);

  // Looks the user up, checks the country allow-list, reserves the send
  // against the send limits and stores a fresh code (replacing the user's
  // earlier one) in the same step (Storage::ReserveSendAndPut; `client_ip`
  // may be empty), and texts it.
  // A non-OK Status means a store or randomness failure: then no new code is
  // active (the earlier one may have been replaced).
  // With conceal_unknown_users, an unknown user (or one without a phone)
  // goes through the same limits and store writes as a known one, under a
  // fake phone derived from the user ID (so repeated answers agree): a
  // valid mobile number of an allowed region, as long as real ones there;
  // a code nobody knows is stored so verify answers as for a known user; no
  // SMS is sent, and the call waits for a duration drawn from the recent
  // real SMS sends (LatencyMimic), which /metrics counts as an SMS send.
  // It is checked against sms_budget_per_hour but not counted in it: it
  // costs nothing, so made-up IDs cannot spend the real users' budget.
  Status SendCode(const std::string& user_id, const std::string& client_ip, SendResult* result);

  // The same on `channel`. The cooldown and the per-user, per-phone and
  // per-IP caps count sends on every channel together, so a send on
  // another channel replaces the code like a resend; the budget and the
  // region allow-list are the channel's own, and a number type the
  // channel cannot reach (ChannelReaches) is refused like a region, before
  // anything is reserved. InvalidArgument, nothing done, for a channel
  // that is not enabled (ChannelEnabled).
  Status SendCode(const std::string& user_id, const std::string& client_ip, Channel channel,
                  SendResult* result);

  // Whether `channel` is on in the options in force and the sender can
  // deliver on it. SMS always is.
  bool ChannelEnabled(Channel channel) const;

  // Checks `passcode` against the user's live code in one atomic store step
  // (see Storage::VerifyCode). Any string is accepted; a non-digit one is
  // simply wrong. A non-OK Status means the store failed and nothing changed.
  Status VerifyCode(const std::string& user_id, const std::string& passcode,
                    const std::string& client_ip, VerifyCodeResult* result);

  // The templates (default and per locale) whose message, WebOTP line
  // included, exceeds one SMS segment. For a warning at start.
  std::vector<OversizedTemplate> OversizedTemplates() const;

  // Removes codes expired for longer than the grace period, and history the
  // limits no longer count.
  Status PurgeExpired(int64_t* purged);

  // Whether a code may go to `phone`: a valid number (ParsePhone) of an
  // allowed region, starting with an allowed country code, of a type not
  // refused. When not, *why says so (for the log).
  bool CountryAllowed(const std::string& phone, std::string* why = nullptr) const;
  // The same for a code on `channel` (its region list, and whether the
  // channel reaches the number's type), handing out the parsed number
  // (one parse per send).
  bool CountryAllowed(const std::string& phone, Channel channel, std::string* why,
                      PhoneInfo* info = nullptr) const;

  // OK when the store takes writes (Storage::CheckWritable), and the
  // check SetLocalFileCheck gave passes, for /readyz and the watchdog.
  Status CheckReady() const {
    Status s = storage_->CheckWritable();
    if (s.ok() && local_file_check_) s = local_file_check_();
    return s;
  }
  // With codes in Redis, the SQLite file this node's users, audit trail
  // and phone verdicts live in must take writes too for the node to be
  // ready (a full disk, a replaced or deleted file): `check` says whether
  // it does. Call before serving. The SQLite store checks its file itself.
  void SetLocalFileCheck(std::function<Status()> check) { local_file_check_ = std::move(check); }

  // The codes stored and not yet expired (Storage::CountActiveCodes).
  Status CountActiveCodes(int64_t* count) const { return storage_->CountActiveCodes(count); }

  // Where this service counts; the HTTP layer counts requests there too
  // and renders both on /metrics. Valid for the life of the service.
  Metrics* metrics() const { return metrics_; }
  DeliveryMetrics* delivery_metrics() const { return delivery_metrics_; }
  // Send outcomes by channel, rendered on /metrics after the others.
  const ChannelMetrics& channel_metrics() const { return channel_metrics_; }
  // The pumping guard (SetPumpingGuard), or null; its region metrics are
  // rendered on /metrics too.
  PumpingGuard* pumping() const { return pumping_; }
  // Audit records dropped by a full write-behind queue (AuditLog::Dropped).
  uint64_t DroppedAuditRecords() const { return audit_ != nullptr ? audit_->Dropped() : 0; }

  // The options in force now. The reference stays valid for the life of
  // the service.
  const OtpOptions& options() const { return options_.Get(); }

  // Replaces the options for calls that start from now on; calls already
  // running finish with the options they started with.
  void SetOptions(const OtpOptions& options) { options_.Set(options); }

  // Every message a provider takes is recorded in `deliveries` for its
  // receipts (none when null). REQUIRES: set before serving; outlives us.
  void SetDeliveries(DeliveryTracker* deliveries) { deliveries_ = deliveries; }

  // With a guard, a send to a paused region or prefix answers kRateLimited
  // (limit kPumping, retry after the pause), every real send is counted
  // (concealed ones are only checked: they cost nothing), and each verified
  // code is counted for its region's conversion (one user lookup per
  // successful verify). REQUIRES: set before serving; outlives us.
  void SetPumpingGuard(PumpingGuard* guard) { pumping_ = guard; }

 private:
  Status SendUnaudited(const std::string& client_ip, SendResult* result);
  Status VerifyUnaudited(const std::string& passcode, VerifyCodeResult* result);
  void Audit(const std::string& user_id, const std::string& phone, const std::string& client_ip,
             const char* event, const std::string& outcome);
  // A fresh code for the result's user: *code its digits, *stored its
  // hash and times (from now, for options().expiry_ms).
  Status NewCode(const SendResult& result, std::string* code, StoredCode* stored);
  // Reserves the send and stores `stored` in the same step
  // (Storage::ReserveSendAndPut); false (with *result filled) when a limit
  // refused it, and then no code was stored (or, refused by a pumping pause
  // this very send started, it was removed again).
  // `counts_toward_global`: see SendRequest.
  Status Reserve(const std::string& client_ip, bool counts_toward_global, const StoredCode& stored,
                 SendResult* result, bool* allowed);
  // Counts a verified code for the region of the user's phone.
  void CountVerified(const std::string& user_id);
  // Fills *result for a send refused by a pumping pause.
  static Status Paused(const PumpingVerdict& verdict, SendResult* result);
  // Texts `code` (stored as `stored`) in the user's `locale` (the second
  // half of SendCode); removes it again when the text fails.
  Status Text(const std::string& locale, const std::string& code, const StoredCode& stored,
              SendResult* result);
  // SendCode for an unknown user under conceal_unknown_users.
  Status SendConcealed(const std::string& client_ip, SendResult* result);
  // A plausible E.164 number for `user_id`, the same every time.
  std::string FakePhone(const std::string& user_id) const;
  // The SMS text for a user with `locale`.
  static std::string Message(const OtpOptions& options, const std::string& locale,
                             const std::string& code);
  // What the sender gets for result->channel.
  static CodeMessage ChannelMessage(const OtpOptions& options, Channel channel,
                                    const std::string& locale, const std::string& code);

  LiveValue<OtpOptions> options_;
  Storage* const storage_;
  std::function<Status()> local_file_check_;  // set before serving
  UserDirectory* const users_;
  SmsSender* const sms_;
  Clock* const clock_;
  RandomSource* const random_;
  const CodeHasher* const hasher_;
  AuditLog* const audit_;
  std::unique_ptr<Metrics> own_metrics_;  // when none was passed in
  std::unique_ptr<DeliveryMetrics> own_delivery_metrics_;
  Metrics* const metrics_;
  DeliveryMetrics* const delivery_metrics_;
  // Recent SMS send times, which concealed sends imitate.
  LatencyMimic sms_latency_;
  DeliveryTracker* deliveries_ = nullptr;
  ChannelMetrics channel_metrics_;
  PumpingGuard* pumping_ = nullptr;
};

}  // namespace otpd

#endif  // OTPD_OTP_SERVICE_H_
