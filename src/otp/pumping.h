// SMS-pumping detection that needs no operator.
//
// Every real send is counted per region (the ISO code libphonenumber gives
// the number: "JM") and per number prefix (the calling code and the first
// prefix_digits national digits: "+1-876"), in one-minute buckets, in a
// store every otpd process on the same database (or Redis) shares. Each
// count over the last `window` is compared with the key's own baseline: its
// sends over the `baseline` before that window, scaled to one window. A
// key whose window count reaches min_sends, exceeds `multiple` times its
// baseline, and converts (verified / sent in the window) below
// conversion_below percent is paused for `pause`: every send to it answers
// 429 rate_limited until the pause ends or an operator lifts it (otpd
// regions unpause). The pause is in the store, so it holds across
// processes and restarts. Each new pause is audited (event "pumping",
// outcome "paused:<key>"), logged and counted in the guard's RegionMetrics.
//
// When a pause starts, the key's buckets inside the window are removed:
// the spike is not left to inflate the baseline, and once the pause ends
// counting starts over (the next send does not trip it again at once).
//
// RegionStore is the storage (store/regions_sqlite.cpp,
// store/regions_redis.cpp); PumpingGuard the policy. Both thread-safe. A
// store failure never refuses a send: it is logged and the send goes on.
// When one send makes both its region and its prefix a spike, only the
// region (the broader key) is paused.
#ifndef OTPD_PUMPING_H_
#define OTPD_PUMPING_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/clock.h"
#include "core/live_value.h"
#include "core/phone.h"
#include "core/region_metrics.h"
#include "core/status.h"
#include "otp/audit.h"

namespace otpd {

class SqliteDb;
struct RedisEndpoint;

struct PumpingOptions {
  bool enabled = true;
  int64_t window_ms = 3600 * 1000;         // the recent window
  int64_t baseline_ms = 24 * 3600 * 1000;  // the history before it (> window)
  int multiple = 5;                        // window sends above multiple x baseline: a spike
  int min_sends = 20;                      // fewer sends in the window never pause
  int conversion_below = 30;               // percent; a spike pauses only below it (100: always)
  int64_t pause_ms = 3600 * 1000;
  int prefix_digits = 3;  // national digits in a prefix key; 0: regions only
};

// What the store knows of one key ("JM", or a prefix "+1-876") at a time.
struct RegionCounts {
  std::string key;
  int64_t window_sent = 0;      // sends in the last window (this one included)
  int64_t window_verified = 0;  // codes verified in the last window
  int64_t baseline_sent = 0;    // sends in the baseline before the window
  int64_t first_seen_ms = 0;    // the key's first counted send (0: none)
  int64_t paused_until_ms = 0;  // > now: paused
  std::string reason;           // why the latest pause started
};

class RegionStore {
 public:
  virtual ~RegionStore() = default;
  // Counts one send to each of `keys` at now_ms and answers each key's
  // counts after it (`out` parallel to `keys`). The windows end at now_ms.
  virtual Status AddSend(const std::vector<std::string>& keys, int64_t now_ms, int64_t window_ms,
                         int64_t baseline_ms, std::vector<RegionCounts>* out) = 0;
  // Counts one verified code for `key` at now_ms.
  virtual Status AddVerified(const std::string& key, int64_t now_ms) = 0;
  // The key of `keys` paused longest past now_ms, and until when; *until_ms
  // = 0 when none is paused.
  virtual Status PausedUntil(const std::vector<std::string>& keys, int64_t now_ms, std::string* key,
                             int64_t* until_ms) = 0;
  // Pauses `key` until until_ms (never shortening a longer pause) and drops
  // its buckets from window_start_ms on. *started: no pause was in force.
  virtual Status Pause(const std::string& key, int64_t now_ms, int64_t until_ms,
                       int64_t window_start_ms, const std::string& reason, bool* started) = 0;
  // Drops the key's buckets from window_start_ms on (the prefix of a send
  // whose region was paused, so it does not trip once the region is lifted).
  virtual Status DropWindow(const std::string& key, int64_t window_start_ms) = 0;
  // Ends the key's pause; *was_paused: one was in force.
  virtual Status Unpause(const std::string& key, int64_t now_ms, bool* was_paused) = 0;
  // Every key with counts in the baseline or a pause, sorted by key.
  virtual Status List(int64_t now_ms, int64_t window_ms, int64_t baseline_ms,
                      std::vector<RegionCounts>* out) = 0;
  // Drops buckets older than cutoff_ms, and keys with nothing left and no
  // pause.
  virtual Status Purge(int64_t cutoff_ms) = 0;
};

// The `pumping_counts` and `pumping_state` tables in `db` (created when
// missing; nothing else in the file changes).
Status NewSqliteRegionStore(std::shared_ptr<SqliteDb> db, std::unique_ptr<RegionStore>* store);

#ifdef OTPD_REDIS
// The store in Redis (store/regions_redis.cpp), shared by every node on
// the server and `prefix`. Connects on first use.
Status NewRedisRegionStore(const RedisEndpoint& endpoint, const std::string& prefix, int timeout_ms,
                           std::unique_ptr<RegionStore>* store);
#endif

// The keys a send to `phone` (E.164) counts under: its region, then its
// prefix when prefix_digits > 0. Empty when the number does not parse.
std::vector<std::string> PumpingKeys(const std::string& phone, int prefix_digits);
// The same for a number already parsed (ParsePhone is the costly part).
std::vector<std::string> PumpingKeysOf(const PhoneInfo& info, int prefix_digits);

// Whether a key is a prefix ("+1-876") rather than a region ("JM").
bool IsPrefixKey(const std::string& key);

// The key's baseline scaled to one window: sends per window the key
// usually sees. Only the history the key has (since first_seen_ms, at
// least one window) is divided over, so a young key is not judged against
// a day of zeros it never had.
double ExpectedPerWindow(const RegionCounts& c, int64_t now_ms, const PumpingOptions& o);

// Whether `c` is a spike to pause (the rule above); *why says what was
// seen ("84 sends in 3600 s, baseline 2.1, conversion 0%").
bool IsSpike(const RegionCounts& c, int64_t now_ms, const PumpingOptions& o, std::string* why);

// What a send check answers.
struct PumpingVerdict {
  bool allowed = true;
  std::string key;             // the paused key when !allowed
  int64_t retry_after_ms = 0;  // !allowed: until the pause ends (> 0)
};

class PumpingGuard {
 public:
  // `store`, `clock` and `audit` (may be null) must outlive the guard.
  PumpingGuard(RegionStore* store, Clock* clock, AuditLog* audit,
               const PumpingOptions& options = PumpingOptions());

  void SetOptions(const PumpingOptions& options) { options_.Set(options); }
  const PumpingOptions& options() const { return options_.Get(); }

  // The keys of a parsed number under the current prefix_digits (empty
  // while detection is off).
  std::vector<std::string> KeysOf(const PhoneInfo& info) const;
  // Before a send is reserved: refused when one of its keys is paused.
  PumpingVerdict Check(const std::vector<std::string>& keys);
  // After a real send was reserved: counts it, and pauses a key this send
  // made a spike (then this send is refused too). `user_id` and
  // `client_ip` go to the audit record of a new pause.
  PumpingVerdict CountSend(const std::vector<std::string>& keys, const std::string& user_id,
                           const std::string& client_ip);
  // The same for a phone (E.164), parsed here.
  PumpingVerdict Check(const std::string& phone);
  PumpingVerdict CountSend(const std::string& phone, const std::string& user_id,
                           const std::string& client_ip);
  // A code sent to `phone` was verified.
  void CountVerified(const std::string& phone);
  // A code sent to `user_id` was verified. The keys come from the user's
  // last send counted here (remembered per user, a bounded map); only when
  // there is none (the send went through another process, or before a
  // restart) is `phone_of` called for the user's phone (a directory read
  // and a parse, which a verify otherwise never pays). Nothing at all while
  // detection is off.
  void CountVerifiedUser(const std::string& user_id, const std::function<std::string()>& phone_of);

  // The admin command's operations (also for tests).
  Status List(std::vector<RegionCounts>* out);
  Status Pause(const std::string& key, int64_t pause_ms, bool* started);
  Status Unpause(const std::string& key, bool* was_paused);
  // Refreshes the region gauges from the store and purges old buckets
  // (the daemon calls it every minute).
  Status Refresh();

  // The region gauges and pause counts, for /metrics. Valid for the life
  // of the guard.
  RegionMetrics* metrics() { return &metrics_; }

 private:
  void Started(const RegionCounts& c, const std::string& why, const std::string& user_id,
               const std::string& client_ip);

  void Remember(const std::string& user_id, const std::vector<std::string>& keys);
  void CountVerifiedKeys(const std::vector<std::string>& keys);

  RegionStore* const store_;
  Clock* const clock_;
  AuditLog* const audit_;
  LiveValue<PumpingOptions> options_;
  RegionMetrics metrics_;
  std::mutex sent_mu_;
  // The keys of each user's last counted send (at most kRememberedUsers;
  // cleared whole when full).
  std::unordered_map<std::string, std::vector<std::string>> sent_keys_;  // guarded by sent_mu_
};

// Parses a key as an operator writes it: a region ("jm" -> "JM") or a
// prefix ("+1-876", "+1876" with prefix_digits 3 -> "+1-876").
// InvalidArgument saying what is expected otherwise.
Status ParsePumpingKey(const std::string& text, int prefix_digits, std::string* key);

}  // namespace otpd

#endif  // OTPD_PUMPING_H_
