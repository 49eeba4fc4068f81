#include "otp_service.h"

#include <chrono>

#include "log.h"
#include "metrics.h"
#include "phone.h"

namespace otpd {

OtpService::OtpService(const OtpOptions& options, Storage* storage, UserDirectory* users,
                       SmsSender* sms, Clock* clock, RandomSource* random,
                       const CodeHasher* hasher)
    : options_(options),
      storage_(storage),
      users_(users),
      sms_(sms),
      clock_(clock),
      random_(random),
      hasher_(hasher) {}

namespace {

SendMetric ToMetric(const Status& s, SendOutcome outcome) {
  if (!s.ok()) return SendMetric::kError;
  switch (outcome) {
    case SendOutcome::kSent: return SendMetric::kSent;
    case SendOutcome::kUserNotFound: return SendMetric::kUserNotFound;
    case SendOutcome::kPhoneNotFound: return SendMetric::kPhoneNotFound;
    case SendOutcome::kSmsFailed: return SendMetric::kSmsFailed;
  }
  return SendMetric::kError;
}

VerifyMetric ToMetric(const Status& s, VerifyOutcome outcome) {
  if (!s.ok()) return VerifyMetric::kError;
  switch (outcome) {
    case VerifyOutcome::kOk: return VerifyMetric::kOk;
    case VerifyOutcome::kInvalid: return VerifyMetric::kInvalid;
    case VerifyOutcome::kLocked: return VerifyMetric::kLocked;
    case VerifyOutcome::kExpired: return VerifyMetric::kExpired;
    case VerifyOutcome::kNotFound: return VerifyMetric::kNotFound;
  }
  return VerifyMetric::kError;
}

}  // namespace

Status OtpService::SendCode(const std::string& user_id, SendResult* result) {
  Status s = SendCodeUnmetered(user_id, result);
  DefaultMetrics().RecordSend(ToMetric(s, result->outcome));
  return s;
}

Status OtpService::SendCodeUnmetered(const std::string& user_id, SendResult* result) {
  const OtpOptions& options = options_.Get();
  result->user_id = NormalizeUserId(user_id);
  User user;
  Status s = users_->Lookup(result->user_id, &user);
  if (s.IsNotFound()) {
    result->outcome = SendOutcome::kUserNotFound;
    return Status::OK();
  }
  if (!s.ok()) return s;
  if (user.phone.empty()) {
    result->outcome = SendOutcome::kPhoneNotFound;
    return Status::OK();
  }
  result->phone = user.phone;

  std::string code;
  s = GenerateCode(random_, options.code_length, &code);
  if (!s.ok()) return s;
  StoredCode stored;
  stored.user_id = result->user_id;
  stored.code_hash = hasher_->Hash(result->user_id, code);
  stored.issued_at_ms = clock_->NowMillis();
  stored.expires_at_ms = stored.issued_at_ms + options.expiry_ms;
  s = storage_->PutCode(stored);
  if (!s.ok()) return s;

  const std::string body = Message(options, user.locale, code);
  const auto sms_start = std::chrono::steady_clock::now();
  s = sms_->Send(user.phone, body, &result->receipt);
  DefaultMetrics().RecordSmsLatency(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::steady_clock::now() - sms_start)
                                        .count(),
                                    s.ok());
  if (!s.ok()) {
    Log(LogLevel::kError, "sms send failed",
        {{"user_id", result->user_id}, {"phone", MaskPhone(user.phone)},
         {"provider_code", std::to_string(result->receipt.provider_code)},
         {"error", s.ToString()}});
    Status undo = storage_->DeleteCode(stored.user_id, stored.code_hash);
    if (!undo.ok()) {
      // The code was never delivered, so nobody can know it; it expires.
      Log(LogLevel::kError, "cannot remove undelivered code",
          {{"user_id", result->user_id}, {"error", undo.ToString()}});
    }
    result->outcome = SendOutcome::kSmsFailed;
    return Status::OK();
  }
  result->outcome = SendOutcome::kSent;
  return Status::OK();
}

Status OtpService::VerifyCode(const std::string& user_id, const std::string& passcode,
                              VerifyCodeResult* result) {
  result->user_id = NormalizeUserId(user_id);
  const OtpOptions& options = options_.Get();
  VerifyLimits limits;
  limits.max_attempts = options.max_attempts;
  limits.expired_grace_ms = options.expired_grace_ms;
  Status s = storage_->VerifyCode(result->user_id, hasher_->Hash(result->user_id, passcode),
                                 limits, &result->store);
  if (s.ok() && result->store.outcome == VerifyOutcome::kLocked) {
    const int64_t ms = result->store.expires_at_ms - clock_->NowMillis();
    result->retry_after_s = ms <= 0 ? 1 : (ms + 999) / 1000;
  }
  DefaultMetrics().RecordVerify(ToMetric(s, result->store.outcome));
  return s;
}

std::string OtpService::Message(const OtpOptions& options, const std::string& locale,
                                const std::string& code) {
  // Rounded up, so "expires in 0 minutes" is never sent.
  const int minutes = static_cast<int>((options.expiry_ms + 59999) / 60000);
  const std::string& tmpl =
      SelectSmsTemplate(options.templates, options.message_template, locale);
  return AppendWebOtpLine(RenderSmsTemplate(tmpl, code, minutes, options.app_name),
                          options.webotp_domain, code);
}

std::vector<OversizedTemplate> OtpService::OversizedTemplates() const {
  const OtpOptions& options = options_.Get();
  const std::string longest_code(static_cast<size_t>(options.code_length), '9');
  std::vector<OversizedTemplate> out;
  std::vector<std::string> locales = {""};
  for (const auto& entry : options.templates) locales.push_back(entry.first);
  for (const std::string& locale : locales) {
    const SmsLength length = MeasureSms(Message(options, locale, longest_code));
    if (!length.fits()) out.push_back({locale, length});
  }
  return out;
}

Status OtpService::PurgeExpired(int64_t* purged) {
  return storage_->PurgeExpired(options_.Get().expired_grace_ms, purged);
}

}  // namespace otpd
