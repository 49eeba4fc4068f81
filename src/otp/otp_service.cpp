#include "otp/otp_service.h"

#include <algorithm>

#include "core/channel_metrics.h"
#include "core/client_key.h"
#include "core/delivery_metrics.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/phone.h"
#include "otp/rules.h"

namespace otpd {

OtpService::OtpService(const OtpOptions& options, Storage* storage, UserDirectory* users,
                       SmsSender* sms, Clock* clock, RandomSource* random, const CodeHasher* hasher,
                       AuditLog* audit, Metrics* metrics, DeliveryMetrics* delivery_metrics)
    : options_(options),
      storage_(storage),
      users_(users),
      sms_(sms),
      clock_(clock),
      random_(random),
      hasher_(hasher),
      audit_(audit),
      own_metrics_(metrics == nullptr ? new Metrics(MetricRoutes()) : nullptr),
      own_delivery_metrics_(delivery_metrics == nullptr ? new DeliveryMetrics(clock) : nullptr),
      metrics_(metrics == nullptr ? own_metrics_.get() : metrics),
      delivery_metrics_(delivery_metrics == nullptr ? own_delivery_metrics_.get()
                                                    : delivery_metrics) {}

namespace {

// The names and metrics of outcomes come from the one table in rules.h.
SendMetric ToMetric(const Status& s, SendOutcome outcome) {
  return s.ok() ? InfoOf(outcome).metric : SendMetric::kError;
}

VerifyMetric ToMetric(const Status& s, VerifyOutcome outcome) {
  return s.ok() ? InfoOf(outcome).metric : VerifyMetric::kError;
}

int64_t CeilSeconds(int64_t ms) { return ms <= 0 ? 1 : (ms + 999) / 1000; }

// An SMS send's audit outcome reads as it always has; the other channels
// add ";channel=<name>".
std::string WithChannel(std::string outcome, Channel channel) {
  if (channel != Channel::kSms) outcome += std::string(";channel=") + ChannelName(channel);
  return outcome;
}

std::string SendOutcomeName(const SendResult& r) {
  std::string name = InfoOf(r.outcome).audit_name;
  if (r.outcome == SendOutcome::kSent && r.concealed) name = "concealed";
  if (r.outcome == SendOutcome::kRateLimited) name += std::string(":") + LimitName(r.limit);
  // Which provider took it ("sent via vonage"); a failed send names the
  // last provider tried. The development console is not named.
  const std::string& provider = r.receipt.provider;
  if ((r.outcome == SendOutcome::kSent || r.outcome == SendOutcome::kSmsFailed) &&
      !provider.empty() && provider != "console") {
    name += " via " + provider;
  }
  return WithChannel(name, r.channel);
}

const ChannelPolicy* PolicyOf(const OtpOptions& options, Channel channel) {
  switch (channel) {
    case Channel::kSms:
      return nullptr;
    case Channel::kVoice:
      return &options.channels.voice;
    case Channel::kWhatsApp:
      return &options.channels.whatsapp;
  }
  return nullptr;
}

// The send limits of a send on `channel`: the global cap is its budget.
SendLimits LimitsOf(const OtpOptions& options, Channel channel) {
  SendLimits limits = options.send_limits;
  if (const ChannelPolicy* policy = PolicyOf(options, channel)) limits.global = policy->budget;
  return limits;
}

const char* VerifyOutcomeName(VerifyOutcome outcome) { return InfoOf(outcome).audit_name; }

}  // namespace

bool OtpService::CountryAllowed(const std::string& phone, std::string* why) const {
  PhoneInfo info;
  return CountryAllowed(phone, Channel::kSms, why, &info);
}

bool OtpService::ChannelEnabled(Channel channel) const {
  const ChannelPolicy* policy = PolicyOf(options_.Get(), channel);
  return policy == nullptr || (policy->enabled && sms_->Supports(channel));
}

bool OtpService::CountryAllowed(const std::string& phone, Channel channel, std::string* why,
                                PhoneInfo* parsed) const {
  std::string ignored;
  std::string* reason = why != nullptr ? why : &ignored;
  const OtpOptions& options = options_.Get();
  PhoneInfo unused;
  PhoneInfo& info = parsed != nullptr ? *parsed : unused;
  Status s = ParsePhone(phone, &info);
  if (!s.ok()) {
    *reason = "not a valid number";
    return false;
  }
  const bool type_refused = PhoneTypeAlwaysRefused(info.type) ||
                            std::count(options.refused_phone_types.begin(),
                                       options.refused_phone_types.end(), info.type) > 0;
  if (type_refused) {
    *reason = std::string("number type ") + PhoneTypeName(info.type) + " refused";
    return false;
  }
  if (!ChannelReaches(channel, info.type)) {
    *reason = std::string("number type ") + PhoneTypeName(info.type) + " cannot take " +
              ChannelName(channel);
    return false;
  }
  const ChannelPolicy* policy = PolicyOf(options, channel);
  const std::vector<std::string>& regions =
      policy != nullptr ? policy->allowed_regions : options.allowed_regions;
  if (!regions.empty() && std::count(regions.begin(), regions.end(), info.region) == 0) {
    *reason = "region " + info.region + " not allowed";
    return false;
  }
  if (options.allowed_country_codes.empty()) return true;
  for (const std::string& cc : options.allowed_country_codes) {
    if (phone.size() > cc.size() + 1 && phone.compare(1, cc.size(), cc) == 0) return true;
  }
  *reason = "country code not allowed";
  return false;
}

void OtpService::Audit(const std::string& user_id, const std::string& phone,
                       const std::string& client_ip, const char* event,
                       const std::string& outcome) {
  if (audit_ == nullptr) return;
  Status s = audit_->Record(
      AuditEvent{0, user_id, phone.empty() ? "" : MaskPhone(phone), client_ip, event, outcome});
  // A full queue is logged by the audit log itself, once a minute at most.
  if (!s.ok() && s.code() != Status::Code::kUnavailable) {
    Log(LogLevel::kWarn, "cannot write audit record",
        {{"user_id", user_id}, {"event", event}, {"error", s.ToString()}});
  }
}

Status OtpService::SendCode(const std::string& user_id, const std::string& client_ip,
                            SendResult* result) {
  return SendCode(user_id, client_ip, Channel::kSms, result);
}

Status OtpService::SendCode(const std::string& user_id, const std::string& client_ip,
                            Channel channel, SendResult* result) {
  *result = SendResult();
  result->user_id = NormalizeUserId(user_id);
  result->channel = channel;
  if (!ChannelEnabled(channel)) {
    return Status::InvalidArgument(std::string("channel ") + ChannelName(channel) +
                                   " is not enabled");
  }
  Status s = SendUnaudited(client_ip, result);
  Audit(result->user_id, result->phone, client_ip, "send",
        s.ok() ? SendOutcomeName(*result) : WithChannel("error", channel));
  metrics_->RecordSend(ToMetric(s, result->outcome));
  channel_metrics_.RecordSend(ChannelName(channel), ToMetric(s, result->outcome));
  if (s.ok() && result->outcome == SendOutcome::kRateLimited) {
    metrics_->RecordRateLimited(LimitName(result->limit));
  }
  return s;
}

Status OtpService::SendUnaudited(const std::string& client_ip, SendResult* result) {
  User user;
  Status s = users_->Lookup(result->user_id, &user);
  if (!s.ok() && !s.IsNotFound()) return s;
  if (options_.Get().conceal_unknown_users && (s.IsNotFound() || user.phone.empty())) {
    return SendConcealed(client_ip, result);
  }
  if (s.IsNotFound()) {
    result->outcome = SendOutcome::kUserNotFound;
    return Status::OK();
  }
  if (user.phone.empty()) {
    result->outcome = SendOutcome::kPhoneNotFound;
    return Status::OK();
  }
  result->phone = user.phone;
  std::string code;
  StoredCode stored;
  s = NewCode(*result, &code, &stored);
  if (!s.ok()) return s;
  bool allowed = false;
  s = Reserve(client_ip, true, stored, result, &allowed);
  if (!s.ok() || !allowed) return s;
  return Text(user.locale, code, stored, result);
}

Status OtpService::NewCode(const SendResult& result, std::string* code, StoredCode* stored) {
  const OtpOptions& options = options_.Get();
  Status s = GenerateCode(random_, options.code_length, code);
  if (!s.ok()) return s;
  stored->user_id = result.user_id;
  stored->code_hash = hasher_->Hash(result.user_id, *code);
  stored->issued_at_ms = clock_->NowMillis();
  stored->expires_at_ms = stored->issued_at_ms + options.expiry_ms;
  return Status::OK();
}

Status OtpService::Reserve(const std::string& client_ip, bool counts_toward_global,
                           const StoredCode& stored, SendResult* result, bool* allowed) {
  *allowed = false;
  std::string why;
  PhoneInfo info;
  if (!CountryAllowed(result->phone, result->channel, &why, &info)) {
    // Not a rate at all, but answered like one (CONTRACT.md): the client
    // learns nothing new, and the window is the honest wait for a retry.
    Log(LogLevel::kWarn, "send refused: country not allowed",
        {{"user_id", result->user_id},
         {"phone", MaskPhone(result->phone)},
         {"reason", why},
         {"channel", ChannelName(result->channel)}});
    result->outcome = SendOutcome::kRateLimited;
    result->limit = SendLimit::kNone;
    result->retry_after_s = CeilSeconds(options_.Get().send_limits.window_ms);
    return Status::OK();
  }
  std::vector<std::string> keys;  // the number's pumping keys
  if (pumping_ != nullptr) {
    keys = pumping_->KeysOf(info);
    const PumpingVerdict verdict = pumping_->Check(keys);
    if (!verdict.allowed) return Paused(verdict, result);
  }
  SendDecision decision;
  // The per-IP cap counts the client key (a /64 for IPv6), like every
  // per-client limit; the audit keeps the full address.
  const SendRequest request{result->user_id, result->phone, ClientKey(client_ip),
                            counts_toward_global, result->channel};
  Status s = storage_->ReserveSendAndPut(request, LimitsOf(options_.Get(), result->channel), stored,
                                         &decision);
  if (!s.ok()) return s;
  if (!decision.allowed) {
    result->outcome = SendOutcome::kRateLimited;
    result->limit = decision.limit;
    result->retry_after_s = CeilSeconds(decision.retry_after_ms);
    return Status::OK();
  }
  if (pumping_ != nullptr && counts_toward_global) {
    const PumpingVerdict verdict = pumping_->CountSend(keys, result->user_id, client_ip);
    if (!verdict.allowed) {
      s = storage_->DeleteCode(stored.user_id, stored.code_hash);  // never sent
      if (!s.ok()) return s;
      return Paused(verdict, result);
    }
  }
  *allowed = true;
  return Status::OK();
}

Status OtpService::Paused(const PumpingVerdict& verdict, SendResult* result) {
  Log(LogLevel::kWarn, "send refused: sms pumping pause",
      {{"user_id", result->user_id}, {"phone", MaskPhone(result->phone)}, {"key", verdict.key}});
  result->outcome = SendOutcome::kRateLimited;
  result->limit = SendLimit::kPumping;
  result->retry_after_s = CeilSeconds(verdict.retry_after_ms);
  return Status::OK();
}

Status OtpService::Text(const std::string& locale, const std::string& code,
                        const StoredCode& stored, SendResult* result) {
  const CodeMessage message = ChannelMessage(options_.Get(), result->channel, locale, code);
  const int64_t sms_start_us = clock_->MonotonicMicros();
  Status s = sms_->SendCode(result->phone, message, &result->receipt);
  const int64_t took_us = clock_->MonotonicMicros() - sms_start_us;
  metrics_->RecordSmsLatency(took_us, s.ok());
  sms_latency_.Record(took_us);
  if (!s.ok()) {
    Log(LogLevel::kError, "sms send failed",
        {{"user_id", result->user_id},
         {"phone", MaskPhone(result->phone)},
         {"channel", ChannelName(result->channel)},
         {"provider", result->receipt.provider},
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
  delivery_metrics_->RecordCodeSent();
  // A call gets no message receipts, so it is not tracked as a delivery.
  if (deliveries_ != nullptr && result->channel != Channel::kVoice) {
    deliveries_->OnSent(result->receipt.provider, result->receipt.provider_id, result->user_id,
                        result->phone, stored.expires_at_ms);
  }
  return Status::OK();
}

std::string OtpService::FakePhone(const std::string& user_id) const {
  // A valid mobile number of an allowed region, so the masked fake has the
  // length real numbers there have; the region and digits from the HMAC,
  // so they reveal nothing and repeat for the same user ID.
  const OtpOptions& options = options_.Get();
  const std::string mac = hasher_->Hash("conceal\n" + user_id, "");
  std::vector<std::string> regions = options.allowed_regions;
  if (regions.empty()) {
    for (const std::string& cc : options.allowed_country_codes) {
      const std::vector<std::string> of_code = RegionsOfCountryCode(cc);
      if (!of_code.empty()) regions.push_back(of_code.front());  // the main region
    }
  }
  if (regions.empty()) regions.push_back("US");
  const size_t pick = static_cast<unsigned char>(mac.empty() ? 0 : mac[0]) % regions.size();
  return PlausiblePhone(regions[pick], mac.substr(mac.empty() ? 0 : 1));
}

Status OtpService::SendConcealed(const std::string& client_ip, SendResult* result) {
  result->phone = FakePhone(result->user_id);
  std::string code;
  StoredCode stored;
  Status s = NewCode(*result, &code, &stored);
  if (!s.ok()) return s;
  bool allowed = false;
  s = Reserve(client_ip, false, stored, result, &allowed);
  if (!s.ok() || !allowed) return s;
  // As long as a real send, and counted like one: the histogram of SMS
  // durations in /metrics must not tell how many sends were concealed.
  const int64_t initial_us = options_.Get().conceal_initial_wait_us;
  const int64_t wait_us = sms_latency_.Sample(random_, initial_us / 2, initial_us * 3 / 2);
  clock_->SleepMicros(wait_us);
  metrics_->RecordSmsLatency(wait_us, true);
  result->outcome = SendOutcome::kSent;
  result->concealed = true;
  return Status::OK();
}

Status OtpService::VerifyCode(const std::string& user_id, const std::string& passcode,
                              const std::string& client_ip, VerifyCodeResult* result) {
  *result = VerifyCodeResult();
  result->user_id = NormalizeUserId(user_id);
  Status s = VerifyUnaudited(passcode, result);
  // The phone is not looked up for a verify: the send rows carry it.
  Audit(result->user_id, "", client_ip, "verify",
        s.ok() ? VerifyOutcomeName(result->store.outcome) : "error");
  return s;
}

Status OtpService::VerifyUnaudited(const std::string& passcode, VerifyCodeResult* result) {
  VerifyLimits limits;
  limits.max_attempts = options_.Get().max_attempts;
  limits.expired_grace_ms = options_.Get().expired_grace_ms;
  limits.max_failures = options_.Get().max_failures;
  limits.failure_window_ms = options_.Get().failure_window_ms;
  Status s = storage_->VerifyCode(result->user_id, hasher_->Hash(result->user_id, passcode), limits,
                                  &result->store);
  if (s.ok() && result->store.outcome == VerifyOutcome::kLocked) {
    result->retry_after_s = CeilSeconds(result->store.expires_at_ms - clock_->NowMillis());
  }
  if (s.ok() && result->store.outcome == VerifyOutcome::kThrottled) {
    result->retry_after_s = CeilSeconds(result->store.retry_after_ms);
  }
  metrics_->RecordVerify(ToMetric(s, result->store.outcome));
  if (s.ok() && result->store.outcome == VerifyOutcome::kOk) {
    delivery_metrics_->RecordCodeVerified();
    CountVerified(result->user_id);
  }
  return s;
}

void OtpService::CountVerified(const std::string& user_id) {
  if (pumping_ == nullptr) return;
  pumping_->CountVerifiedUser(user_id, [&] {
    User user;
    return users_->Lookup(user_id, &user).ok() ? user.phone : std::string();
  });
}

std::string OtpService::Message(const OtpOptions& options, const std::string& locale,
                                const std::string& code) {
  // Rounded up, so "expires in 0 minutes" is never sent.
  const int minutes = static_cast<int>((options.expiry_ms + 59999) / 60000);
  const std::string& tmpl = SelectSmsTemplate(options.templates, options.message_template, locale);
  return AppendWebOtpLine(RenderSmsTemplate(tmpl, code, minutes, options.app_name),
                          options.webotp_domain, code);
}

CodeMessage OtpService::ChannelMessage(const OtpOptions& options, Channel channel,
                                       const std::string& locale, const std::string& code) {
  CodeMessage m;
  m.channel = channel;
  m.code = code;
  m.locale = locale;
  m.minutes = static_cast<int>((options.expiry_ms + 59999) / 60000);
  m.app = options.app_name;
  if (channel == Channel::kVoice) {
    FillVoiceScript(options.channels, locale, code, m.minutes, m.app, &m);
  } else {
    m.text = Message(options, locale, code);
  }
  return m;
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
  // History is kept as long as any limit can still count it.
  const int64_t history_ms =
      std::max({options_.Get().send_limits.window_ms, options_.Get().send_limits.cooldown_ms,
                options_.Get().failure_window_ms});
  return storage_->PurgeExpired(options_.Get().expired_grace_ms, history_ms, purged);
}

}  // namespace otpd
