// code_log.h: the SQLite code store's state in memory, built from its
// append-only log (the code_log table, sqlite_db.cpp).
//
// Every change to codes, failures and sends is one log row; the state is
// the rows applied in seq order. The SQLite store (storage_sqlite.cpp)
// applies the rows other processes appended, decides each operation with
// otp/rules.h against this state, and appends one row per decision. Rows
// that no longer affect the state are "dead" (a code replaced or used up,
// history past its window); CodeLogState lists them so the store can
// delete them from the file and the log stays bounded.
//
// Pure: no SQLite, no clock, no locking. Not thread-safe: the store's
// writer owns it.
#ifndef OTPD_CODE_LOG_H_
#define OTPD_CODE_LOG_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "otp/rules.h"
#include "otp/storage.h"

namespace otpd {

// The kinds of log row (the code_log.kind column; never renumbered).
enum class LogKind : int {
  kPut = 1,         // a new code: code_hash, expires_at, n = attempts already taken
  kWrongGuess = 2,  // one attempt on the live code, and one failure at `at`
  kConsume = 3,     // the code verified: removed, and the user's failures cleared
  kDelete = 4,      // the code removed (expired, DeleteCode, SQL on the otps view)
  kSend = 5,        // a send: phone, client_ip, channel, n = counts toward global
  kFailure = 6,     // one failure at `at` without an attempt (migrated history)
};

struct LogRow {
  int64_t seq = 0;
  LogKind kind = LogKind::kPut;
  std::string user_id;  // as stored; the state folds ASCII case (COLLATE NOCASE)
  int64_t at = 0;
  std::string code_hash;
  int64_t expires_at = 0;
  int64_t n = 0;
  std::string phone;
  std::string client_ip;
  std::string channel;
};

// The times of one key's recent events, oldest first, each with its row.
class RecentEvents {
 public:
  // Keeps the order by time (a late row from another process's clock is
  // placed where it belongs).
  void Add(int64_t at, int64_t seq);
  // The time of the n-th most recent event (n >= 1); nullopt when fewer.
  // The cost does not depend on n.
  std::optional<int64_t> NthRecent(int n) const;
  // Removes events from the oldest on while their time is <= cutoff,
  // passing each removed seq to dead.
  template <typename Dead>
  void DropOld(int64_t cutoff, Dead dead);
  // Removes every event, passing each seq to dead.
  template <typename Dead>
  void Clear(Dead dead);
  bool empty() const { return head_ == events_.size(); }
  size_t size() const { return events_.size() - head_; }

 private:
  struct Event {
    int64_t at;
    int64_t seq;
  };
  void Compact();
  std::vector<Event> events_;
  size_t head_ = 0;  // events_[0, head_) were dropped
};

class CodeLogState {
 public:
  CodeLogState() = default;
  CodeLogState(const CodeLogState&) = delete;
  CodeLogState& operator=(const CodeLogState&) = delete;

  // Applies one row (rows must come in seq order).
  void Apply(const LogRow& row);
  // Forgets everything (before a reload from the file).
  void Clear();

  VerifyState ReadVerify(const std::string& user_id, const VerifyLimits& limits) const;
  SendState ReadSend(const SendRequest& request, const std::string& channel,
                     const SendLimits& limits) const;
  // True when the user's live code has this hash.
  bool HasCode(const std::string& user_id, const std::string& code_hash) const;

  // Forgets codes with expires_at + grace_ms <= now and history at or
  // before now - history_ms. Returns the number of codes forgotten.
  int64_t Purge(int64_t now, int64_t grace_ms, int64_t history_ms);
  // Codes with now < expires_at.
  int64_t CountActive(int64_t now) const;
  // Removes from the dead list and returns the seqs <= upto.
  std::vector<int64_t> TakeDead(int64_t upto);

  size_t users() const { return users_.size(); }
  size_t dead() const { return dead_.size(); }

 private:
  struct History {
    RecentEvents failures;
    RecentEvents sends;
    // Failures past the history that are attempts on the live code: their
    // rows stay (the otps view counts them) until the code goes.
    std::vector<int64_t> held_attempts;
    bool empty() const { return failures.empty() && sends.empty() && held_attempts.empty(); }
  };
  struct UserState {
    bool has_code = false;
    std::string code_hash;
    int64_t expires_at = 0;
    int64_t attempts = 0;
    int64_t code_seq = 0;
    std::unique_ptr<History> history;  // null while there is none
  };

  static std::string Key(const std::string& user_id);
  History* HistoryOf(UserState* user);
  void DropCode(UserState* user);
  void ApplySend(const LogRow& row, UserState* user);
  void MarkDead(int64_t seq) { dead_.push_back(seq); }

  std::unordered_map<std::string, UserState> users_;  // by Key(user_id)
  std::unordered_map<std::string, RecentEvents> phones_;
  std::unordered_map<std::string, RecentEvents> ips_;
  std::unordered_map<std::string, RecentEvents> channels_;  // the global caps, per channel
  std::vector<int64_t> dead_;
};

template <typename Dead>
void RecentEvents::DropOld(int64_t cutoff, Dead dead) {
  while (head_ < events_.size() && events_[head_].at <= cutoff) {
    dead(events_[head_].seq);
    head_++;
  }
  Compact();
}

template <typename Dead>
void RecentEvents::Clear(Dead dead) {
  for (size_t i = head_; i < events_.size(); i++) dead(events_[i].seq);
  events_.clear();
  head_ = 0;
}

}  // namespace otpd

#endif  // OTPD_CODE_LOG_H_
