#include "otp_service.h"

#include "log.h"
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

Status OtpService::SendCode(const std::string& user_id, SendResult* result) {
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
  s = GenerateCode(random_, options_.code_length, &code);
  if (!s.ok()) return s;
  StoredCode stored;
  stored.user_id = result->user_id;
  stored.code_hash = hasher_->Hash(result->user_id, code);
  stored.issued_at_ms = clock_->NowMillis();
  stored.expires_at_ms = stored.issued_at_ms + options_.expiry_ms;
  s = storage_->PutCode(stored);
  if (!s.ok()) return s;

  s = sms_->Send(user.phone, Message(user.locale, code), &result->receipt);
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
  VerifyLimits limits;
  limits.max_attempts = options_.max_attempts;
  limits.expired_grace_ms = options_.expired_grace_ms;
  Status s = storage_->VerifyCode(result->user_id, hasher_->Hash(result->user_id, passcode),
                                 limits, &result->store);
  if (s.ok() && result->store.outcome == VerifyOutcome::kLocked) {
    const int64_t ms = result->store.expires_at_ms - clock_->NowMillis();
    result->retry_after_s = ms <= 0 ? 1 : (ms + 999) / 1000;
  }
  return s;
}

std::string OtpService::Message(const std::string& locale, const std::string& code) const {
  // Rounded up, so "expires in 0 minutes" is never sent.
  const int minutes = static_cast<int>((options_.expiry_ms + 59999) / 60000);
  const std::string& tmpl =
      SelectSmsTemplate(options_.templates, options_.message_template, locale);
  return AppendWebOtpLine(RenderSmsTemplate(tmpl, code, minutes, options_.app_name),
                          options_.webotp_domain, code);
}

std::vector<OversizedTemplate> OtpService::OversizedTemplates() const {
  const std::string longest_code(static_cast<size_t>(options_.code_length), '9');
  std::vector<OversizedTemplate> out;
  std::vector<std::string> locales = {""};
  for (const auto& entry : options_.templates) locales.push_back(entry.first);
  for (const std::string& locale : locales) {
    const SmsLength length = MeasureSms(Message(locale, longest_code));
    if (!length.fits()) out.push_back({locale, length});
  }
  return out;
}

Status OtpService::PurgeExpired(int64_t* purged) {
  return storage_->PurgeExpired(options_.expired_grace_ms, purged);
}

}  // namespace otpd
