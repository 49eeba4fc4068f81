// Storage: the code store. One row per user: the hash of the user's live
// code, when it was issued, when it expires, and how many wrong guesses it
// has taken.
//
// Backends are suffix variants: storage_sqlite.cpp (default), later
// storage_redis.cpp. Every method is thread-safe and atomic with respect to
// other threads AND other processes sharing the same store: two otpd
// processes on one database file never lose an attempt or let a guess
// through past the limit.
#ifndef OTPD_STORAGE_H_
#define OTPD_STORAGE_H_

#include <cstdint>
#include <memory>
#include <string>

#include "clock.h"
#include "status.h"

namespace otpd {

class SqliteDb;

struct StoredCode {
  std::string user_id;    // normalized (NormalizeUserId)
  std::string code_hash;  // CodeHasher::Hash output, raw bytes
  int64_t issued_at_ms = 0;
  int64_t expires_at_ms = 0;
};

enum class VerifyOutcome {
  kOk,        // hash matched: the code is consumed (deleted)
  kInvalid,   // wrong code: attempts incremented; attempts_remaining set
  kLocked,    // attempts already at the limit: nothing compared, nothing changed
  kExpired,   // past expires_at but within the grace period: nothing changed
  kNotFound,  // no code, or expired beyond the grace period (then removed)
};

struct VerifyResult {
  VerifyOutcome outcome = VerifyOutcome::kNotFound;
  int attempts_remaining = 0;  // meaningful for kInvalid only
  int64_t expires_at_ms = 0;   // the code's expiry, for kInvalid/kLocked/kExpired
};

struct VerifyLimits {
  int max_attempts = 3;           // wrong guesses a code takes before kLocked
  int64_t expired_grace_ms = 0;   // how long an expired code answers kExpired
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
  // "now" is the storage's Clock. A non-OK Status means nothing changed.
  // Answers that change nothing (kNotFound without a row, kExpired,
  // kLocked) may come from a read without the write lock; every comparison
  // and change is serialized, so the counter stays exact.
  virtual Status VerifyCode(const std::string& user_id, const std::string& code_hash,
                            const VerifyLimits& limits, VerifyResult* result) = 0;

  // Deletes every code with expires_at + grace_ms <= now. Sets *purged to
  // the number of rows removed.
  virtual Status PurgeExpired(int64_t grace_ms, int64_t* purged) = 0;

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

// A code store in the `otps` table of `db`. `clock` must outlive the result.
Status NewSqliteStorage(std::shared_ptr<SqliteDb> db, Clock* clock,
                        std::unique_ptr<Storage>* storage);

}  // namespace otpd

#endif  // OTPD_STORAGE_H_
