// Storage: the code store. One row per user: the hash of the user's live
// code, when it was issued, when it expires, and how many wrong guesses it
// has taken. Beside the codes, the history the abuse limits count: every
// send reserved (user, phone, client IP, time) and every failed
// verification (user, time). The limits live here, not in memory, so they
// survive a restart and hold across processes sharing the store.
//
// Backends are suffix variants: storage_sqlite.cpp (default) and
// storage_redis.cpp (built with make REDIS=1). Every method is thread-safe and atomic with respect
// to other threads AND other processes sharing the same store: two otpd processes on one database
// file never lose an attempt or let a guess through past the limit.
#ifndef OTPD_STORAGE_H_
#define OTPD_STORAGE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/redis_url.h"
#include "core/status.h"
#include "otp/channel.h"

namespace otpd {

class CodeHasher;
class SqliteDb;

struct StoredCode {
  std::string user_id;    // normalized (NormalizeUserId)
  std::string code_hash;  // CodeHasher::Hash output, raw bytes
  int64_t issued_at_ms = 0;
  int64_t expires_at_ms = 0;
};

enum class VerifyOutcome {
  kOk,         // hash matched: the code is consumed (deleted)
  kInvalid,    // wrong code: attempts incremented; attempts_remaining set
  kLocked,     // attempts already at the limit: nothing compared, nothing changed
  kExpired,    // past expires_at but within the grace period: nothing changed
  kNotFound,   // no code, or expired beyond the grace period (then removed)
  kThrottled,  // the user's failed verifications (across codes) reached
               // max_failures within failure_window_ms: nothing compared
};

struct VerifyResult {
  VerifyOutcome outcome = VerifyOutcome::kNotFound;
  int attempts_remaining = 0;  // meaningful for kInvalid only
  int64_t expires_at_ms = 0;   // the code's expiry, for kInvalid/kLocked/kExpired
  int64_t retry_after_ms = 0;  // kThrottled: until a failure leaves the window (> 0)
};

struct VerifyLimits {
  int max_attempts = 3;          // wrong guesses a code takes before kLocked
  int64_t expired_grace_ms = 0;  // how long an expired code answers kExpired
  // Failed verifications per user across codes in a rolling window before
  // kThrottled. 0 turns the check off.
  int max_failures = 0;
  int64_t failure_window_ms = 3600 * 1000;
};

// One send about to happen. client_ip may be empty (then no per-IP cap).
struct SendRequest {
  std::string user_id;    // normalized
  std::string phone;      // E.164
  std::string client_ip;  // the client key (core/client_key.h)
  // false: the global cap is checked (so a refusal looks the same) but this
  // send is not counted in it: a concealed send texts nobody, so it must
  // not spend the real SMS budget (OtpService::SendConcealed).
  bool counts_toward_global = true;
  // The channel the code goes out on. The cooldown and the per-user,
  // per-phone and per-IP caps count sends on every channel together (so
  // switching channels never multiplies sends); the global cap counts only
  // sends on this request's channel (each channel has its own budget).
  Channel channel = Channel::kSms;
};

// Caps on sends in a rolling window; 0 turns one off.
struct SendLimits {
  int64_t cooldown_ms = 30 * 1000;  // least time between two sends to a user
  int per_user = 5;                 // sends per user per window
  int per_phone = 10;               // sends per phone number per window
  int per_ip = 30;                  // sends per client IP per window
  int global = 1000;                // sends over all users on the request's channel per window
  int64_t window_ms = 3600 * 1000;
};

// kPumping: the number's region or prefix is paused (otp/pumping.h).
enum class SendLimit { kNone, kCooldown, kUser, kPhone, kIp, kGlobal, kPumping };

struct SendDecision {
  bool allowed = false;
  SendLimit limit = SendLimit::kNone;  // the limit that refused (when !allowed)
  int64_t retry_after_ms = 0;          // when every limit hit has cleared (> 0)
};

class Storage {
 public:
  virtual ~Storage() = default;

  // Stores `code`, replacing any earlier code of the same user together with
  // its attempt counter. On failure the earlier code is left as it was.
  virtual Status PutCode(const StoredCode& code) = 0;

  // Removes the user's code only while its hash is still `code_hash`, so a
  // later send is never undone. OK when there was nothing to remove.
  virtual Status DeleteCode(const std::string& user_id, const std::string& code_hash) = 0;

  // One atomic step, in this order: no row -> kNotFound; now >= expires_at +
  // grace -> row deleted, kNotFound; now >= expires_at -> kExpired; attempts
  // >= max_attempts -> kLocked; hash equal (constant time) -> row deleted,
  // kOk; else attempts + 1 -> kInvalid with max_attempts - attempts left.
  // Before all of that, when max_failures > 0 and the user has that many
  // failures within failure_window_ms: kThrottled. A kInvalid records a
  // failure in the same step; a kOk clears the user's failures (the cap
  // counts consecutive failures, as NIST SP 800-63B does); a new code
  // (PutCode) does not. "now" is the storage's Clock. A non-OK Status
  // means nothing changed.
  virtual Status VerifyCode(const std::string& user_id, const std::string& code_hash,
                            const VerifyLimits& limits, VerifyResult* result) = 0;

  // One atomic step: checks every limit in `limits` against the send
  // history and, when none is reached, records the send (at the storage
  // Clock's now) so it counts against every later request. Concurrent
  // calls, in any process sharing the store, never exceed a cap. When a
  // limit is reached nothing is recorded and *decision says which one and
  // when to retry. A non-OK Status means nothing was recorded.
  virtual Status ReserveSend(const SendRequest& request, const SendLimits& limits,
                             SendDecision* decision) = 0;

  // ReserveSend and, when the send is allowed, PutCode(code), as one atomic
  // step: one write to the store instead of two. When a limit refuses the
  // send, nothing is recorded and the user's earlier code stays as it was.
  // The default runs the two in turn (a backend that cannot fuse them).
  virtual Status ReserveSendAndPut(const SendRequest& request, const SendLimits& limits,
                                   const StoredCode& code, SendDecision* decision) {
    Status s = ReserveSend(request, limits, decision);
    if (!s.ok() || !decision->allowed) return s;
    return PutCode(code);
  }

  // Deletes every code with expires_at + grace_ms <= now, and send and
  // failure history older than history_ms. Sets *purged to the number of
  // codes removed.
  virtual Status PurgeExpired(int64_t grace_ms, int64_t history_ms, int64_t* purged) = 0;

  // OK when the store accepts writes right now (for /readyz).
  virtual Status CheckWritable() = 0;

  // Sets *count to the number of codes with now < expires_at (for the
  // otpd_active_codes gauge). The default answers Unavailable: a backend
  // that cannot count cheaply leaves the gauge out.
  virtual Status CountActiveCodes(int64_t* count) {
    (void)count;
    return Status::Unavailable("this store does not count codes");
  }
};

struct SqliteStorageOptions {
  // Derived from the code-hash secret (CodeHasher::Fingerprint, never the
  // secret itself). Every process on one database file must hash with the
  // same secret, or a right code answers 400 and burns an attempt: the
  // first store keeps it in the file's settings table, and a store that
  // brings another value is refused (InvalidArgument, saying what to do).
  // Empty: no check.
  std::string secret_fingerprint;
};

// A code store in the `otps` table of `db`. `clock` must outlive the result.
Status NewSqliteStorage(std::shared_ptr<SqliteDb> db, Clock* clock,
                        std::unique_ptr<Storage>* storage);
Status NewSqliteStorage(std::shared_ptr<SqliteDb> db, Clock* clock,
                        const SqliteStorageOptions& options, std::unique_ptr<Storage>* storage);

struct RedisOptions {
  RedisEndpoint endpoint;
  std::string prefix = "otpd:";  // every key otpd writes starts with it
  int timeout_ms = 1000;         // connect and per-command timeout
  int connections = 32;          // pooled connections, at most
  // How long an expired code is kept for its 410 answer (the code key's
  // TTL is expiry + this + a minute).
  int64_t expired_grace_ms = 600 * 1000;
  // Derived from the code-hash secret (never the secret itself). Every
  // node on one Redis and prefix must hash with the same secret, or codes
  // sent through one fail on another: the first node stores this under
  // "<prefix>secret-check" (kept without a TTL, like "<prefix>alive") and a node that
  // brings another value is refused (InvalidArgument). Empty: no check.
  std::string secret_fingerprint;
  // When set, phone numbers and client IPs in key names are its
  // pseudonyms, so KEYS and MONITOR show no personal data. Must outlive the
  // store. Null (tests): in the clear.
  const CodeHasher* key_hasher = nullptr;
  // When Redis is seen to have lost its data while this process used it,
  // every verify answers kThrottled for this long (the failure window), so
  // the lost failure history gives nobody new guesses. 0: no hold.
  int64_t lost_data_hold_ms = 0;
};

#ifdef OTPD_REDIS
// A code store in Redis, shared by every otpd node pointed at the same
// server and prefix. Connects lazily: the first call (CheckWritable, say)
// shows whether Redis is reachable (Unavailable when it is not; any other
// code is a configuration error such as a wrong password). A lost
// connection is reconnected with backoff; meanwhile calls answer
// Unavailable at once. `clock` must outlive the result.
Status NewRedisStorage(const RedisOptions& options, Clock* clock,
                       std::unique_ptr<Storage>* storage);
#endif

}  // namespace otpd

#endif  // OTPD_STORAGE_H_
