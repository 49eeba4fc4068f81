// rules.h: every decision about a code or a send, as pure functions of what
// a store holds, the input and the time, plus the one table that names each
// outcome (metric, audit record, HTTP answer).
//
// The SQLite store calls these functions inside its write transaction; the
// Redis store's Lua scripts implement the same decisions in one round trip.
// tests/storage_test.cpp ("Rules: ...") runs one table of cases against the functions and
// against every store, so the backends cannot drift apart.
#ifndef OTPD_RULES_H_
#define OTPD_RULES_H_

#include <cstdint>
#include <optional>
#include <string>

#include "core/metrics.h"
#include "otp/otp_service.h"
#include "otp/storage.h"

namespace otpd {

// A rolling-window cap of `cap` events per `window_ms`, given the time of
// the cap-th most recent event (nullopt: fewer than cap events exist).
// reached when cap > 0, window_ms > 0 and that event lies in the window
// (now - window_ms, now]; retry_after_ms is then when it leaves (> 0).
struct CapVerdict {
  bool reached = false;
  int64_t retry_after_ms = 0;
};
CapVerdict CheckCap(int cap, int64_t window_ms, int64_t now_ms,
                    std::optional<int64_t> nth_recent_at_ms);

// The user's live code as the store holds it.
struct CodeState {
  bool exists = false;
  std::string code_hash;
  int64_t expires_at_ms = 0;
  int64_t attempts = 0;
};

// What Storage::VerifyCode reads before deciding.
struct VerifyState {
  CodeState code;
  // The time of the user's max_failures-th most recent failed verification
  // (nullopt: fewer, or max_failures is 0).
  std::optional<int64_t> nth_failure_at_ms;
};

// What the store must change after a verify decision.
enum class VerifyEffect {
  kNone,          // nothing changes
  kDeleteCode,    // the code is removed (expired beyond the grace period)
  kConsume,       // the code is removed and the user's failures cleared
  kCountFailure,  // attempts + 1 on the code, and one failure recorded at now
};

struct VerifyDecision {
  VerifyResult result;
  VerifyEffect effect = VerifyEffect::kNone;
};

// Storage::VerifyCode's rule, in its order (see storage.h): throttled, no
// code, expired beyond grace (delete), expired, locked, right (consume),
// wrong (count). The hash comparison takes constant time.
VerifyDecision DecideVerify(const VerifyState& state, const std::string& guess_hash, int64_t now_ms,
                            const VerifyLimits& limits);

// The state after `effect` (failures are the store's: kConsume clears
// them, kCountFailure adds one at now).
CodeState ApplyVerifyEffect(const CodeState& code, VerifyEffect effect);

// What Storage::ReserveSend reads before deciding: for each limit, the time
// of its n-th most recent send in the history (nullopt: fewer than n).
struct SendState {
  std::optional<int64_t> last_of_user;  // n = 1, for the cooldown
  std::optional<int64_t> nth_of_user;   // n = per_user
  std::optional<int64_t> nth_to_phone;  // n = per_phone
  std::optional<int64_t> nth_from_ip;   // n = per_ip (nullopt without an IP)
  std::optional<int64_t> nth_overall;   // n = global
};

// Storage::ReserveSend's rule: every limit is checked; refused when any is
// reached, naming the first in the order cooldown, user, phone, IP, global,
// with the retry time that clears them all. An empty client IP has no cap.
SendDecision DecideSend(const SendState& state, bool has_client_ip, int64_t now_ms,
                        const SendLimits& limits);

// The one table of verify outcomes: how each is counted, audited and
// answered over HTTP (CONTRACT.md).
struct VerifyOutcomeInfo {
  VerifyOutcome outcome;
  VerifyMetric metric;
  const char* audit_name;  // the audit trail's outcome column
  int http_status;
  const char* error;    // the answer's "error" field ("" for kOk)
  const char* message;  // the answer's "message" (kInvalid appends attempts)
};
const VerifyOutcomeInfo& InfoOf(VerifyOutcome outcome);

// The same for send outcomes (a kRateLimited audit name gets ":<limit>").
struct SendOutcomeInfo {
  SendOutcome outcome;
  SendMetric metric;
  const char* audit_name;
  int http_status;
  const char* error;
  const char* message;
};
const SendOutcomeInfo& InfoOf(SendOutcome outcome);

// The name of a send limit in metrics and audit records ("country" for
// kNone: the allow-list).
const char* LimitName(SendLimit limit);

}  // namespace otpd

#endif  // OTPD_RULES_H_
