#include "otp/rules.h"

#include <algorithm>

#include "core/code_hash.h"

namespace otpd {

CapVerdict CheckCap(int cap, int64_t window_ms, int64_t now_ms,
                    std::optional<int64_t> nth_recent_at_ms) {
  CapVerdict v;
  if (cap <= 0 || window_ms <= 0 || !nth_recent_at_ms.has_value()) return v;
  if (*nth_recent_at_ms <= now_ms - window_ms) return v;
  v.reached = true;
  v.retry_after_ms = *nth_recent_at_ms + window_ms - now_ms;
  return v;
}

VerifyDecision DecideVerify(const VerifyState& state, const std::string& guess_hash, int64_t now_ms,
                            const VerifyLimits& limits) {
  VerifyDecision d;
  VerifyResult& r = d.result;
  const CapVerdict failures =
      CheckCap(limits.max_failures, limits.failure_window_ms, now_ms, state.nth_failure_at_ms);
  if (failures.reached) {
    r.outcome = VerifyOutcome::kThrottled;
    r.retry_after_ms = failures.retry_after_ms;
    return d;
  }
  const CodeState& code = state.code;
  if (!code.exists) {
    r.outcome = VerifyOutcome::kNotFound;
    return d;
  }
  r.expires_at_ms = code.expires_at_ms;
  if (now_ms - code.expires_at_ms >= limits.expired_grace_ms) {
    r.outcome = VerifyOutcome::kNotFound;
    d.effect = VerifyEffect::kDeleteCode;
  } else if (now_ms >= code.expires_at_ms) {
    r.outcome = VerifyOutcome::kExpired;
  } else if (code.attempts >= limits.max_attempts) {
    r.outcome = VerifyOutcome::kLocked;
  } else if (CodeHasher::Equal(code.code_hash, guess_hash)) {
    r.outcome = VerifyOutcome::kOk;
    d.effect = VerifyEffect::kConsume;
  } else {
    r.outcome = VerifyOutcome::kInvalid;
    r.attempts_remaining = static_cast<int>(limits.max_attempts - (code.attempts + 1));
    d.effect = VerifyEffect::kCountFailure;
  }
  return d;
}

CodeState ApplyVerifyEffect(const CodeState& code, VerifyEffect effect) {
  switch (effect) {
    case VerifyEffect::kNone:
      return code;
    case VerifyEffect::kDeleteCode:
    case VerifyEffect::kConsume:
      return CodeState();
    case VerifyEffect::kCountFailure: {
      CodeState next = code;
      next.attempts++;
      return next;
    }
  }
  return code;
}

SendDecision DecideSend(const SendState& state, bool has_client_ip, int64_t now_ms,
                        const SendLimits& limits) {
  struct Check {
    SendLimit limit;
    int cap;
    int64_t window_ms;
    std::optional<int64_t> nth;
  };
  const Check checks[] = {
      {SendLimit::kCooldown, 1, limits.cooldown_ms, state.last_of_user},
      {SendLimit::kUser, limits.per_user, limits.window_ms, state.nth_of_user},
      {SendLimit::kPhone, limits.per_phone, limits.window_ms, state.nth_to_phone},
      {SendLimit::kIp, has_client_ip ? limits.per_ip : 0, limits.window_ms, state.nth_from_ip},
      {SendLimit::kGlobal, limits.global, limits.window_ms, state.nth_overall},
  };
  SendDecision d;
  d.allowed = true;
  // Every limit is checked, so the retry time clears them all.
  for (const Check& c : checks) {
    const CapVerdict v = CheckCap(c.cap, c.window_ms, now_ms, c.nth);
    if (!v.reached) continue;
    if (d.allowed) d.limit = c.limit;
    d.allowed = false;
    d.retry_after_ms = std::max(d.retry_after_ms, v.retry_after_ms);
  }
  return d;
}

namespace {

const VerifyOutcomeInfo kVerifyInfo[] = {
    {VerifyOutcome::kOk, VerifyMetric::kOk, "ok", 200, "", "OTP verified successfully"},
    {VerifyOutcome::kInvalid, VerifyMetric::kInvalid, "invalid_code", 400, "invalid_code",
     "Invalid OTP."},
    {VerifyOutcome::kLocked, VerifyMetric::kLocked, "too_many_attempts", 429, "too_many_attempts",
     "Too many failed attempts"},
    {VerifyOutcome::kExpired, VerifyMetric::kExpired, "expired", 410, "expired", "OTP has expired"},
    {VerifyOutcome::kNotFound, VerifyMetric::kNotFound, "not_found", 404, "not_found",
     "No OTP found for this user or OTP has expired"},
    {VerifyOutcome::kThrottled, VerifyMetric::kThrottled, "throttled", 429, "too_many_attempts",
     "Too many failed attempts"},
};

const SendOutcomeInfo kSendInfo[] = {
    {SendOutcome::kSent, SendMetric::kSent, "sent", 200, "", "OTP sent successfully via SMS"},
    {SendOutcome::kUserNotFound, SendMetric::kUserNotFound, "user_not_found", 404, "user_not_found",
     "User not found in database"},
    {SendOutcome::kPhoneNotFound, SendMetric::kPhoneNotFound, "phone_not_found", 404,
     "phone_not_found", "Phone number not found for user"},
    {SendOutcome::kSmsFailed, SendMetric::kSmsFailed, "sms_failed", 500, "sms_failed",
     "Failed to send SMS"},
    {SendOutcome::kRateLimited, SendMetric::kRateLimited, "rate_limited", 429, "rate_limited",
     "Too many requests."},
};

}  // namespace

const VerifyOutcomeInfo& InfoOf(VerifyOutcome outcome) {
  for (const VerifyOutcomeInfo& info : kVerifyInfo) {
    if (info.outcome == outcome) return info;
  }
  return kVerifyInfo[4];  // unreachable: every enumerator is in the table
}

const SendOutcomeInfo& InfoOf(SendOutcome outcome) {
  for (const SendOutcomeInfo& info : kSendInfo) {
    if (info.outcome == outcome) return info;
  }
  return kSendInfo[0];  // unreachable: every enumerator is in the table
}

const char* LimitName(SendLimit limit) {
  switch (limit) {
    case SendLimit::kNone:
      return "country";
    case SendLimit::kCooldown:
      return "cooldown";
    case SendLimit::kUser:
      return "user";
    case SendLimit::kPhone:
      return "phone";
    case SendLimit::kIp:
      return "ip";
    case SendLimit::kGlobal:
      return "global";
    case SendLimit::kPumping:
      return "pumping";
  }
  return "unknown";
}

}  // namespace otpd
