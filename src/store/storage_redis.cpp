// Storage in Redis (built with make REDIS=1), for several otpd nodes that
// share one code store. Every operation is one Lua script, run by SHA
// (EVALSHA) and loaded again after NOSCRIPT, so it is atomic across nodes:
// Redis runs one script at a time.
//
// Keys, under the configured prefix P (every one has a TTL):
//   P code:<user>          hash: hash, issued_at, expires_at, attempts.
//                          TTL: expiry + expired grace + a minute.
//   P codes                sorted set user -> expires_at: what PurgeExpired
//                          and CountActiveCodes read. TTL: the longest code's.
//   P sends:user:<user>    sorted sets of send times (score: ms), one per
//   P sends:phone:<phone>  limit, trimmed to the window on every write.
//   P sends:ip:<ip>        (Phones and IPs as pseudonyms, see RedisOptions.)
//                          A set is written only while its cap is on, so it
//   P sends:all            holds at most cap entries. TTL: the window.
//   P sends:all:<channel>  the same for voice and whatsapp (sends:all is SMS's).
//   P failures:<user>      failed verification times. TTL: the window.
//   P health               CheckWritable's write. TTL: a minute.
//   P secret-check         a fingerprint of the code-hash secret: kept, so
//                          every node must bring the same (see storage.h).
//
// Times are the node's clock (as with SQLite), passed to every script; TTLs
// only collect garbage and are always longer than the data is needed. The
// scripts touch keys they compute, so Redis Cluster is not supported: use
// one server (with replicas and Sentinel for availability).
#include <hiredis/hiredis.h>
#include <openssl/rand.h>
#include <openssl/sha.h>
#include <sys/time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <mutex>
#include <utility>
#include <vector>

#include "core/code_hash.h"
#include "core/log.h"
#include "core/phone.h"
#include "otp/storage.h"

namespace otpd {
namespace {

// --- scripts ---------------------------------------------------------------

// Shared by the scripts that check a rolling-window cap: whether `cap`
// entries of sorted set `key` lie in (now - window, +inf), and if so how many
// ms until the oldest of them leaves the window. Scores and `now` are ms.
#define OTPD_LUA_CAP_REACHED                                                         \
  "local function cap_reached(key, cap, window, now)\n"                              \
  "  if cap <= 0 or window <= 0 then return false, 0 end\n"                          \
  "  local r = redis.call('ZREVRANGEBYSCORE', key, '+inf', '(' .. (now - window),\n" \
  "                       'WITHSCORES', 'LIMIT', cap - 1, 1)\n"                      \
  "  if #r == 0 then return false, 0 end\n"                                          \
  "  return true, tonumber(r[2]) + window - now\n"                                   \
  "end\n"

// Stores a code: KEYS[k] the code, KEYS[k + 1] the codes index; ARGV[a] to
// ARGV[a + 4]: hash, issued_at, expires_at, ttl_ms, user. Shared by the put
// script (k = a = 1) and the fused send-and-put script.
#define OTPD_LUA_PUT(k, a)                                                     \
  "local function put_code(k, a)\n"                                            \
  "  redis.call('HSET', KEYS[k], 'hash', ARGV[a], 'issued_at', ARGV[a + 1],\n" \
  "             'expires_at', ARGV[a + 2], 'attempts', 0)\n"                   \
  "  redis.call('PEXPIRE', KEYS[k], ARGV[a + 3])\n"                            \
  "  redis.call('ZADD', KEYS[k + 1], ARGV[a + 2], ARGV[a + 4])\n"              \
  "  if redis.call('PTTL', KEYS[k + 1]) < tonumber(ARGV[a + 3]) then\n"        \
  "    redis.call('PEXPIRE', KEYS[k + 1], ARGV[a + 3])\n"                      \
  "  end\n"                                                                    \
  "end\n"                                                                      \
  "put_code(" k ", " a ")\n"

// KEYS: code, codes index. ARGV: hash, issued_at, expires_at, ttl_ms, user.
constexpr char kPutScript[] = OTPD_LUA_PUT("1", "1") "return 1\n";

// KEYS: code, codes index. ARGV: hash, user.
constexpr char kDeleteScript[] =
    "local h = redis.call('HGET', KEYS[1], 'hash')\n"
    "if h and h == ARGV[1] then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('ZREM', KEYS[2], ARGV[2])\n"
    "end\n"
    "return 1\n";

// KEYS: code, failures, codes index, data-lost. ARGV: hash, now, max_attempts, grace,
// max_failures, failure_window, failure member, user.
// Returns {outcome, attempts_remaining, expires_at, retry_after}; outcome as
// VerifyOutcome: 0 ok, 1 invalid, 2 locked, 3 expired, 4 not found,
// 5 throttled. The order of checks is Storage::VerifyCode's.
constexpr char kVerifyScript[] = OTPD_LUA_CAP_REACHED
    "local function equal(a, b)\n"  // every byte compared, whatever differs
    "  if #a ~= #b then return false end\n"
    "  local diff = 0\n"
    "  for i = 1, #a do\n"
    "    diff = bit.bor(diff, bit.bxor(string.byte(a, i), string.byte(b, i)))\n"
    "  end\n"
    "  return diff == 0\n"
    "end\n"
    "local now = tonumber(ARGV[2])\n"
    "local max_attempts = tonumber(ARGV[3])\n"
    "local window = tonumber(ARGV[6])\n"
    "local lost = redis.call('PTTL', KEYS[4])\n"  // see RedisPool::CheckAlive
    "if lost > 0 and tonumber(ARGV[5]) > 0 then return {5, 0, 0, lost} end\n"
    "local hit, retry = cap_reached(KEYS[2], tonumber(ARGV[5]), window, now)\n"
    "if hit then return {5, 0, 0, retry} end\n"
    "local row = redis.call('HMGET', KEYS[1], 'hash', 'expires_at', 'attempts')\n"
    "if not row[1] then return {4, 0, 0, 0} end\n"
    "local expires_at = tonumber(row[2])\n"
    "local attempts = tonumber(row[3])\n"
    "if now - expires_at >= tonumber(ARGV[4]) then\n"
    "  redis.call('DEL', KEYS[1])\n"
    "  redis.call('ZREM', KEYS[3], ARGV[8])\n"
    "  return {4, 0, expires_at, 0}\n"
    "end\n"
    "if now >= expires_at then return {3, 0, expires_at, 0} end\n"
    "if attempts >= max_attempts then return {2, 0, expires_at, 0} end\n"
    "if equal(row[1], ARGV[1]) then\n"
    "  redis.call('DEL', KEYS[1], KEYS[2])\n"
    "  redis.call('ZREM', KEYS[3], ARGV[8])\n"
    "  return {0, 0, expires_at, 0}\n"
    "end\n"
    "redis.call('HINCRBY', KEYS[1], 'attempts', 1)\n"
    "if window > 0 then\n"
    "  redis.call('ZADD', KEYS[2], ARGV[2], ARGV[7])\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - window)\n"
    "  redis.call('PEXPIRE', KEYS[2], window + 1000)\n"
    "end\n"
    "return {1, max_attempts - (attempts + 1), expires_at, 0}\n";

// Checks and records a send. KEYS: sends of the user, of the phone, of the
// IP, of everyone on the request's channel.
// ARGV: now, cooldown, per_user, per_phone, per_ip, global, window, member,
// counts toward global (1/0: checked either way, recorded only when 1).
// Returns {0, limit (SendLimit), retry_after} when a limit refuses, and
// otherwise goes on after recording the send.
#define OTPD_LUA_RESERVE                                                             \
  OTPD_LUA_CAP_REACHED                                                               \
  "local now = tonumber(ARGV[1])\n"                                                  \
  "local cooldown, per_user = tonumber(ARGV[2]), tonumber(ARGV[3])\n"                \
  "local per_phone, per_ip = tonumber(ARGV[4]), tonumber(ARGV[5])\n"                 \
  "local global, window = tonumber(ARGV[6]), tonumber(ARGV[7])\n"                    \
  "local checks = {{1, KEYS[1], 1, cooldown}, {2, KEYS[1], per_user, window},\n"     \
  "                {3, KEYS[2], per_phone, window}, {4, KEYS[3], per_ip, window},\n" \
  "                {5, KEYS[4], global, window}}\n"                                  \
  "local limit, retry = 0, 0\n"                                                      \
  "for _, c in ipairs(checks) do\n" /* every limit, so retry clears them all */      \
  "  local hit, r = cap_reached(c[2], c[3], c[4], now)\n"                            \
  "  if hit then\n"                                                                  \
  "    if limit == 0 then limit = c[1] end\n"                                        \
  "    if r > retry then retry = r end\n"                                            \
  "  end\n"                                                                          \
  "end\n"                                                                            \
  "if limit ~= 0 then return {0, limit, retry} end\n"                                \
  "local function record(key, keep)\n"                                               \
  "  if keep <= 0 then return end\n"                                                 \
  "  redis.call('ZADD', key, ARGV[1], ARGV[8])\n"                                    \
  "  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - keep)\n"                      \
  "  redis.call('PEXPIRE', key, keep + 1000)\n"                                      \
  "end\n"                                                                            \
  "local user_keep = 0\n"                                                            \
  "if cooldown > 0 then user_keep = cooldown end\n"                                  \
  "if per_user > 0 and window > user_keep then user_keep = window end\n"             \
  "record(KEYS[1], user_keep)\n"                                                     \
  "if per_phone > 0 then record(KEYS[2], window) end\n"                              \
  "if per_ip > 0 then record(KEYS[3], window) end\n"                                 \
  "if global > 0 and ARGV[9] == '1' then record(KEYS[4], window) end\n"

// Returns {allowed (0/1), limit (SendLimit), retry_after}.
constexpr char kReserveScript[] = OTPD_LUA_RESERVE "return {1, 0, 0}\n";

// ReserveSendAndPut in one round trip: the reserve script, then, only when
// the send is allowed, the put script on KEYS[5..6] and ARGV[10..14].
constexpr char kReserveAndPutScript[] =
    OTPD_LUA_RESERVE OTPD_LUA_PUT("5", "10") "return {1, 0, 0}\n";

// KEYS: codes index. ARGV: cutoff (now - grace), batch size, code key prefix.
// Deletes up to a batch of codes with expires_at <= cutoff; returns
// {deleted, index entries looked at}.
constexpr char kPurgeScript[] =
    "local cutoff = tonumber(ARGV[1])\n"
    "local users = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', cutoff,\n"
    "                         'LIMIT', 0, tonumber(ARGV[2]))\n"
    "local n = 0\n"
    "for _, u in ipairs(users) do\n"
    "  local key = ARGV[3] .. u\n"
    "  local e = redis.call('HGET', key, 'expires_at')\n"
    "  if e and tonumber(e) <= cutoff then\n"
    "    redis.call('DEL', key)\n"
    "    n = n + 1\n"
    "  end\n"
    "  redis.call('ZREM', KEYS[1], u)\n"
    "end\n"
    "return {n, #users}\n";

#undef OTPD_LUA_CAP_REACHED

struct Script {
  const char* name;
  const char* source;
  std::string sha;  // hex SHA-1 of source: what EVALSHA names it by

  Script(const char* script_name, const char* text) : name(script_name), source(text) {
    unsigned char digest[SHA_DIGEST_LENGTH];
    SHA1(reinterpret_cast<const unsigned char*>(text), strlen(text), digest);
    char hex[2 * SHA_DIGEST_LENGTH + 1];
    for (int i = 0; i < SHA_DIGEST_LENGTH; i++) snprintf(hex + 2 * i, 3, "%02x", digest[i]);
    sha = hex;
  }
};

constexpr int64_t kPurgeBatch = 500;
constexpr int64_t kCodeTtlSlackMs = 60 * 1000;
constexpr int64_t kFirstBackoffMs = 100;
constexpr int64_t kMaxBackoffMs = 5000;

int64_t SteadyMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

// --- connections -------------------------------------------------------------

// At most `connections` hiredis contexts (one per thread at a time). After a
// failed connect, no new one is tried for a backoff that doubles from 100 ms
// to 5 s; meanwhile Acquire fails at once, so requests answer 503 quickly.
class RedisPool {
 public:
  // `clock`: the backoff's time (its monotonic clock).
  RedisPool(const RedisOptions& options, Clock* clock) : options_(options), clock_(clock) {}
  ~RedisPool() {
    for (redisContext* c : idle_) redisFree(c);
  }

  Status Acquire(redisContext** out);
  // `broken`: the connection failed (I/O, timeout): it is closed, and so
  // are the idle ones, which a Redis restart has broken as well.
  void Release(redisContext* c, bool broken);

  // Runs one command on `c`; *broken tells whether the connection is lost.
  static Status Command(redisContext* c, const std::vector<std::string>& argv, Reply* reply,
                        bool* broken);

 private:
  Status Connect(redisContext** out);
  Status Setup(redisContext* c);
  // Notices a Redis that lost its data while this process used it (see
  // RedisOptions::lost_data_hold_ms).
  Status CheckAlive(redisContext* c);
  std::string Where() const { return "redis at " + options_.endpoint.Describe(); }

  int64_t MonotonicMillis() const { return clock_->MonotonicMicros() / 1000; }

  const RedisOptions options_;
  Clock* const clock_;
  std::atomic<bool> seen_alive_{false};  // "<prefix>alive" was there or set by us
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<redisContext*> idle_;
  int open_ = 0;             // idle + leased
  bool connecting_ = false;  // a connect after a failure is under way
  int64_t backoff_ms_ = 0;   // 0: the last connect worked
  int64_t retry_at_ms_ = 0;  // MonotonicMillis()
  Status last_error_;
};

Status RedisPool::Command(redisContext* c, const std::vector<std::string>& argv, Reply* reply,
                          bool* broken) {
  std::vector<const char*> args;
  std::vector<size_t> lengths;
  for (const std::string& a : argv) {
    args.push_back(a.data());
    lengths.push_back(a.size());
  }
  reply->reset(static_cast<redisReply*>(
      redisCommandArgv(c, static_cast<int>(args.size()), args.data(), lengths.data())));
  *broken = *reply == nullptr;
  if (*broken) {
    return Status::Unavailable(std::string("redis: connection lost: ") +
                               (c->errstr[0] != '\0' ? c->errstr : "no answer"));
  }
  return Status::OK();
}

// An error reply as a Status: Redis that cannot take writes for now
// (loading after a restart, a read-only replica, out of memory, busy with a
// script) is Unavailable; anything else is a bug or a misconfiguration.
Status ErrorReply(const std::string& what, const redisReply* r) {
  const std::string text(r->str, r->len);
  for (const char* transient : {"LOADING", "READONLY", "OOM", "BUSY", "MASTERDOWN", "TRYAGAIN",
                                "CLUSTERDOWN", "NOREPLICAS"}) {
    if (text.rfind(transient, 0) == 0) return Status::Unavailable(what + ": " + text);
  }
  return Status::Internal(what + ": " + text);
}

Status RedisPool::Setup(redisContext* c) {
  const RedisEndpoint& e = options_.endpoint;
  std::vector<std::vector<std::string>> commands;
  if (!e.password.empty()) {
    commands.push_back(e.username.empty()
                           ? std::vector<std::string>{"AUTH", e.password}
                           : std::vector<std::string>{"AUTH", e.username, e.password});
  }
  if (e.db != 0) commands.push_back({"SELECT", std::to_string(e.db)});
  commands.push_back({"PING"});
  const std::string check_key = options_.prefix + "secret-check";
  if (!options_.secret_fingerprint.empty()) {
    commands.push_back({"SET", check_key, options_.secret_fingerprint, "NX"});
    commands.push_back({"GET", check_key});
  }
  Reply reply;
  for (const auto& argv : commands) {
    bool broken = false;
    Status s = Command(c, argv, &reply, &broken);
    if (!s.ok()) return Status::Unavailable(Where() + ": " + s.message());
    if (reply->type != REDIS_REPLY_ERROR) continue;
    Status e2 = ErrorReply(Where() + ": " + argv[0] + " refused", reply.get());
    // A refused password or database is a configuration error, not an outage.
    if (e2.code() == Status::Code::kInternal) return Status::InvalidArgument(e2.message());
    return e2;
  }
  if (!options_.secret_fingerprint.empty() &&
      (reply->type != REDIS_REPLY_STRING ||
       std::string(reply->str, reply->len) != options_.secret_fingerprint)) {
    return Status::InvalidArgument(
        Where() + ": " + check_key +
        " was written by otpd nodes with another secret; every node sharing this Redis and "
        "prefix needs the same secret (copy otpd.secret from one of them)");
  }
  return CheckAlive(c);
}

// "<prefix>alive" has no TTL: once this process has seen it, its absence
// on a new connection means Redis lost every key (a restart without
// persistence, a FLUSHALL, a failover to an empty replica), the per-user
// failure history with them. Verifies are then refused for the failure
// window (the verify script reads "<prefix>data-lost"), so nobody gets a
// fresh set of guesses. A process that starts on an empty Redis cannot
// tell a first start from a loss, and does not hold.
Status RedisPool::CheckAlive(redisContext* c) {
  Reply reply;
  bool broken = false;
  Status s = Command(c, {"SET", options_.prefix + "alive", "1", "NX"}, &reply, &broken);
  if (!s.ok()) return Status::Unavailable(Where() + ": " + s.message());
  const bool created = reply->type == REDIS_REPLY_STATUS;
  if (!seen_alive_.exchange(true) || !created || options_.lost_data_hold_ms <= 0) {
    return Status::OK();
  }
  s = Command(
      c,
      {"SET", options_.prefix + "data-lost", "1", "PX", std::to_string(options_.lost_data_hold_ms)},
      &reply, &broken);
  if (!s.ok()) return Status::Unavailable(Where() + ": " + s.message());
  Log(LogLevel::kError,
      "redis lost its data (restart without persistence?); verifies answer 429 for "
      "verify_failure_window so the failure cap is not reset",
      {{"redis", options_.endpoint.Describe()},
       {"hold_ms", std::to_string(options_.lost_data_hold_ms)}});
  return Status::OK();
}

Status RedisPool::Connect(redisContext** out) {
  const RedisEndpoint& e = options_.endpoint;
  struct timeval tv;
  tv.tv_sec = options_.timeout_ms / 1000;
  tv.tv_usec = (options_.timeout_ms % 1000) * 1000;
  redisContext* c = e.unix_path.empty() ? redisConnectWithTimeout(e.host.c_str(), e.port, tv)
                                        : redisConnectUnixWithTimeout(e.unix_path.c_str(), tv);
  if (c == nullptr) return Status::Unavailable(Where() + ": cannot allocate a connection");
  if (c->err != 0) {
    Status s = Status::Unavailable(Where() + ": " + c->errstr);
    redisFree(c);
    return s;
  }
  redisSetTimeout(c, tv);
  if (e.unix_path.empty()) redisEnableKeepAlive(c);
  Status s = Setup(c);
  if (!s.ok()) {
    redisFree(c);
    return s;
  }
  *out = c;
  return Status::OK();
}

Status RedisPool::Acquire(redisContext** out) {
  std::unique_lock<std::mutex> lock(mu_);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.timeout_ms);
  for (;;) {
    if (!idle_.empty()) {
      *out = idle_.back();
      idle_.pop_back();
      return Status::OK();
    }
    if (open_ < options_.connections) {
      // After a failure: one connect at a time, and not before the backoff.
      if (backoff_ms_ > 0 && (connecting_ || MonotonicMillis() < retry_at_ms_)) {
        if (last_error_.code() != Status::Code::kUnavailable) return last_error_;
        return Status::Unavailable(last_error_.message() + " (reconnecting)");
      }
      const bool probing = backoff_ms_ > 0;
      open_++;
      connecting_ = connecting_ || probing;
      lock.unlock();
      redisContext* c = nullptr;
      Status s = Connect(&c);
      lock.lock();
      if (probing) connecting_ = false;
      if (!s.ok()) {
        open_--;
        backoff_ms_ = backoff_ms_ == 0 ? kFirstBackoffMs : std::min(2 * backoff_ms_, kMaxBackoffMs);
        retry_at_ms_ = MonotonicMillis() + backoff_ms_;
        last_error_ = s;
        cv_.notify_all();
        return s;
      }
      backoff_ms_ = 0;
      *out = c;
      return Status::OK();
    }
    if (cv_.wait_until(lock, deadline) == std::cv_status::timeout && idle_.empty() &&
        open_ >= options_.connections) {
      return Status::Unavailable("redis: every connection stayed busy for " +
                                 std::to_string(options_.timeout_ms) + " ms");
    }
  }
}

void RedisPool::Release(redisContext* c, bool broken) {
  std::vector<redisContext*> closing;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (broken) {
      closing.swap(idle_);
      closing.push_back(c);
      open_ -= static_cast<int>(closing.size());
    } else {
      idle_.push_back(c);
    }
  }
  // One connection back wakes one waiter: waking them all made every
  // release a herd (57% of otpd's CPU at 32 concurrent verifies on 8
  // connections). Connections closed free their slots for all of them.
  if (broken) {
    cv_.notify_all();
  } else {
    cv_.notify_one();
  }
  for (redisContext* dead : closing) redisFree(dead);
}

// --- the store ----------------------------------------------------------------

class RedisStorage : public Storage {
 public:
  RedisStorage(const RedisOptions& options, Clock* clock);

  Status PutCode(const StoredCode& code) override;
  Status DeleteCode(const std::string& user_id, const std::string& code_hash) override;
  Status VerifyCode(const std::string& user_id, const std::string& code_hash,
                    const VerifyLimits& limits, VerifyResult* result) override;
  Status ReserveSend(const SendRequest& request, const SendLimits& limits,
                     SendDecision* decision) override;
  // One script, one round trip (kReserveAndPutScript).
  Status ReserveSendAndPut(const SendRequest& request, const SendLimits& limits,
                           const StoredCode& code, SendDecision* decision) override;
  Status PurgeExpired(int64_t grace_ms, int64_t history_ms, int64_t* purged) override;
  Status CheckWritable() override;
  Status CountActiveCodes(int64_t* count) override;

 private:
  // The keys and arguments of the put script (appended to *keys, *args).
  Status PutArgs(const StoredCode& code, std::vector<std::string>* keys,
                 std::vector<std::string>* args) const;
  // The same for the reserve script.
  Status ReserveArgs(const SendRequest& request, const SendLimits& limits,
                     std::vector<std::string>* keys, std::vector<std::string>* args);
  // The reserve script's answer {allowed, limit, retry_after} as a decision.
  Status ReadDecision(const Script& script, const redisReply* reply, SendDecision* decision);
  // Runs `argv` on a pooled connection.
  Status Run(const std::vector<std::string>& argv, Reply* reply);
  // EVALSHA of `script`, loading it first when Redis does not have it
  // (NOSCRIPT: a restarted or flushed server). An error reply is a Status.
  Status Eval(const Script& script, const std::vector<std::string>& keys,
              const std::vector<std::string>& args, Reply* reply);
  // Integers of an array reply of `count` integers.
  static Status Integers(const Script& script, const redisReply* r, size_t count,
                         std::vector<int64_t>* out);
  std::string CodeKey(const std::string& user_id) const {
    return prefix_ + "code:" + NormalizeUserId(user_id);
  }
  // `value` (a phone, an IP) as it appears in a key name.
  std::string KeyPart(const char* kind, const std::string& value) const {
    if (options_.key_hasher == nullptr) return value;
    return options_.key_hasher->Pseudonym(std::string(kind) + ":" + value);
  }
  // Every user's sends on `channel`, for the global cap. SMS keeps the
  // name it had before channels existed.
  std::string GlobalSendsKey(Channel channel) const {
    if (channel == Channel::kSms) return prefix_ + "sends:all";
    return prefix_ + "sends:all:" + ChannelName(channel);
  }
  // Unique among every node: a sorted-set member for one event at `now`.
  std::string EventId(int64_t now);

  const RedisOptions options_;
  const std::string prefix_;
  Clock* const clock_;
  RedisPool pool_;
  const Script put_{"put", kPutScript};
  const Script delete_{"delete", kDeleteScript};
  const Script verify_{"verify", kVerifyScript};
  const Script reserve_{"reserve", kReserveScript};
  const Script reserve_put_{"reserve and put", kReserveAndPutScript};
  const Script purge_{"purge", kPurgeScript};
  std::string node_id_;  // random, per process
  std::atomic<uint64_t> events_{0};
};

RedisStorage::RedisStorage(const RedisOptions& options, Clock* clock)
    : options_(options), prefix_(options.prefix), clock_(clock), pool_(options, clock) {
  unsigned char bytes[8] = {};
  if (RAND_bytes(bytes, sizeof bytes) != 1) {
    // Not secret, only distinct: the time and PID distinguish nodes too.
    const uint64_t t = static_cast<uint64_t>(SteadyMillis()) ^ static_cast<uint64_t>(getpid());
    memcpy(bytes, &t, sizeof bytes);
  }
  char hex[17];
  for (int i = 0; i < 8; i++) snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
  node_id_ = hex;
}

std::string RedisStorage::EventId(int64_t now) {
  return std::to_string(now) + "-" + node_id_ + "-" + std::to_string(events_++);
}

Status RedisStorage::Run(const std::vector<std::string>& argv, Reply* reply) {
  redisContext* c = nullptr;
  Status s = pool_.Acquire(&c);
  if (!s.ok()) return s;
  bool broken = false;
  s = RedisPool::Command(c, argv, reply, &broken);
  pool_.Release(c, broken);
  return s;
}

Status RedisStorage::Eval(const Script& script, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args, Reply* reply) {
  std::vector<std::string> argv = {"EVALSHA", script.sha, std::to_string(keys.size())};
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  Status s = Run(argv, reply);
  if (!s.ok()) return s;
  const std::string what = std::string("redis script ") + script.name;
  const auto is_error = [&reply] { return (*reply)->type == REDIS_REPLY_ERROR; };
  if (is_error() && std::string((*reply)->str, (*reply)->len).rfind("NOSCRIPT", 0) == 0) {
    Reply loaded;
    s = Run({"SCRIPT", "LOAD", script.source}, &loaded);
    if (!s.ok()) return s;
    if (loaded->type == REDIS_REPLY_ERROR) return ErrorReply(what + ": SCRIPT LOAD", loaded.get());
    if (std::string(loaded->str, loaded->len) != script.sha) {
      return Status::Internal(what + ": SCRIPT LOAD answered another SHA");
    }
    s = Run(argv, reply);
    if (!s.ok()) return s;
  }
  return is_error() ? ErrorReply(what, reply->get()) : Status::OK();
}

Status RedisStorage::Integers(const Script& script, const redisReply* r, size_t count,
                              std::vector<int64_t>* out) {
  if (r->type != REDIS_REPLY_ARRAY || r->elements != count) {
    return Status::Internal(std::string("redis script ") + script.name + ": unexpected answer");
  }
  out->clear();
  for (size_t i = 0; i < count; i++) {
    if (r->element[i]->type != REDIS_REPLY_INTEGER) {
      return Status::Internal(std::string("redis script ") + script.name + ": unexpected answer");
    }
    out->push_back(r->element[i]->integer);
  }
  return Status::OK();
}

Status RedisStorage::PutArgs(const StoredCode& code, std::vector<std::string>* keys,
                             std::vector<std::string>* args) const {
  if (code.user_id.empty() || code.code_hash.empty()) {
    return Status::InvalidArgument("PutCode needs a user ID and a code hash");
  }
  const int64_t now = clock_->NowMillis();
  const int64_t ttl =
      std::max<int64_t>(code.expires_at_ms - now, 0) + options_.expired_grace_ms + kCodeTtlSlackMs;
  keys->insert(keys->end(), {CodeKey(code.user_id), prefix_ + "codes"});
  args->insert(args->end(), {code.code_hash, std::to_string(code.issued_at_ms),
                             std::to_string(code.expires_at_ms), std::to_string(ttl),
                             NormalizeUserId(code.user_id)});
  return Status::OK();
}

Status RedisStorage::PutCode(const StoredCode& code) {
  std::vector<std::string> keys, args;
  Status s = PutArgs(code, &keys, &args);
  if (!s.ok()) return s;
  Reply reply;
  return Eval(put_, keys, args, &reply);
}

Status RedisStorage::DeleteCode(const std::string& user_id, const std::string& code_hash) {
  Reply reply;
  return Eval(delete_, {CodeKey(user_id), prefix_ + "codes"}, {code_hash, NormalizeUserId(user_id)},
              &reply);
}

Status RedisStorage::VerifyCode(const std::string& user_id, const std::string& code_hash,
                                const VerifyLimits& limits, VerifyResult* result) {
  const std::string user = NormalizeUserId(user_id);
  const int64_t now = clock_->NowMillis();
  Reply reply;
  Status s =
      Eval(verify_,
           {CodeKey(user), prefix_ + "failures:" + user, prefix_ + "codes", prefix_ + "data-lost"},
           {code_hash, std::to_string(now), std::to_string(limits.max_attempts),
            std::to_string(limits.expired_grace_ms), std::to_string(limits.max_failures),
            std::to_string(limits.failure_window_ms), EventId(now), user},
           &reply);
  std::vector<int64_t> v;
  if (s.ok()) s = Integers(verify_, reply.get(), 4, &v);
  if (!s.ok()) return s;
  static const VerifyOutcome kOutcomes[] = {VerifyOutcome::kOk,       VerifyOutcome::kInvalid,
                                            VerifyOutcome::kLocked,   VerifyOutcome::kExpired,
                                            VerifyOutcome::kNotFound, VerifyOutcome::kThrottled};
  if (v[0] < 0 || v[0] >= static_cast<int64_t>(std::size(kOutcomes))) {
    return Status::Internal("redis script verify: unknown outcome");
  }
  *result = VerifyResult();
  result->outcome = kOutcomes[v[0]];
  result->attempts_remaining = static_cast<int>(v[1]);
  result->expires_at_ms = v[2];
  result->retry_after_ms = v[3];
  return Status::OK();
}

Status RedisStorage::ReserveArgs(const SendRequest& request, const SendLimits& limits,
                                 std::vector<std::string>* keys, std::vector<std::string>* args) {
  if (request.user_id.empty()) return Status::InvalidArgument("ReserveSend needs a user ID");
  const int64_t now = clock_->NowMillis();
  const bool has_ip = !request.client_ip.empty();
  keys->insert(keys->end(), {prefix_ + "sends:user:" + NormalizeUserId(request.user_id),
                             prefix_ + "sends:phone:" + KeyPart("phone", request.phone),
                             prefix_ + "sends:ip:" + KeyPart("ip", request.client_ip),
                             GlobalSendsKey(request.channel)});
  args->insert(args->end(), {std::to_string(now), std::to_string(limits.cooldown_ms),
                             std::to_string(limits.per_user), std::to_string(limits.per_phone),
                             std::to_string(has_ip ? limits.per_ip : 0),
                             std::to_string(limits.global), std::to_string(limits.window_ms),
                             EventId(now), request.counts_toward_global ? "1" : "0"});
  return Status::OK();
}

Status RedisStorage::ReadDecision(const Script& script, const redisReply* reply,
                                  SendDecision* decision) {
  std::vector<int64_t> v;
  Status s = Integers(script, reply, 3, &v);
  if (!s.ok()) return s;
  static const SendLimit kLimits[] = {SendLimit::kNone,  SendLimit::kCooldown, SendLimit::kUser,
                                      SendLimit::kPhone, SendLimit::kIp,       SendLimit::kGlobal};
  if (v[1] < 0 || v[1] >= static_cast<int64_t>(std::size(kLimits))) {
    return Status::Internal(std::string("redis script ") + script.name + ": unknown limit");
  }
  *decision = SendDecision();
  decision->allowed = v[0] == 1;
  decision->limit = kLimits[v[1]];
  decision->retry_after_ms = v[2];
  return Status::OK();
}

Status RedisStorage::ReserveSend(const SendRequest& request, const SendLimits& limits,
                                 SendDecision* decision) {
  std::vector<std::string> keys, args;
  Status s = ReserveArgs(request, limits, &keys, &args);
  if (!s.ok()) return s;
  Reply reply;
  s = Eval(reserve_, keys, args, &reply);
  if (!s.ok()) return s;
  return ReadDecision(reserve_, reply.get(), decision);
}

Status RedisStorage::ReserveSendAndPut(const SendRequest& request, const SendLimits& limits,
                                       const StoredCode& code, SendDecision* decision) {
  std::vector<std::string> keys, args;
  Status s = ReserveArgs(request, limits, &keys, &args);
  if (s.ok()) s = PutArgs(code, &keys, &args);  // KEYS[5..6], ARGV[10..14]
  if (!s.ok()) return s;
  Reply reply;
  s = Eval(reserve_put_, keys, args, &reply);
  if (!s.ok()) return s;
  return ReadDecision(reserve_put_, reply.get(), decision);
}

// Codes through the index, in batches; send and failure history is trimmed
// on every write and expires with its TTL, so history_ms has nothing to do.
Status RedisStorage::PurgeExpired(int64_t grace_ms, int64_t history_ms, int64_t* purged) {
  if (grace_ms < 0 || history_ms < 0) {
    return Status::InvalidArgument("PurgeExpired: negative grace or history period");
  }
  const int64_t cutoff = clock_->NowMillis() - grace_ms;
  int64_t total = 0;
  for (;;) {
    Reply reply;
    Status s =
        Eval(purge_, {prefix_ + "codes"},
             {std::to_string(cutoff), std::to_string(kPurgeBatch), prefix_ + "code:"}, &reply);
    std::vector<int64_t> v;
    if (s.ok()) s = Integers(purge_, reply.get(), 2, &v);
    if (!s.ok()) return s;
    total += v[0];
    if (v[1] < kPurgeBatch) break;
  }
  *purged = total;
  return Status::OK();
}

// A real write, so a read-only replica or a full Redis (maxmemory with
// noeviction) shows, as well as a lost connection.
Status RedisStorage::CheckWritable() {
  Reply reply;
  Status s =
      Run({"SET", prefix_ + "health", std::to_string(clock_->NowMillis()), "PX", "60000"}, &reply);
  if (!s.ok()) return s;
  return reply->type == REDIS_REPLY_ERROR ? ErrorReply("redis: SET health", reply.get())
                                          : Status::OK();
}

Status RedisStorage::CountActiveCodes(int64_t* count) {
  Reply reply;
  Status s =
      Run({"ZCOUNT", prefix_ + "codes", "(" + std::to_string(clock_->NowMillis()), "+inf"}, &reply);
  if (!s.ok()) return s;
  if (reply->type == REDIS_REPLY_ERROR) return ErrorReply("redis: ZCOUNT", reply.get());
  if (reply->type != REDIS_REPLY_INTEGER) return Status::Internal("redis: ZCOUNT: not an integer");
  *count = reply->integer;
  return Status::OK();
}

}  // namespace

Status NewRedisStorage(const RedisOptions& options, Clock* clock,
                       std::unique_ptr<Storage>* storage) {
  if (clock == nullptr) return Status::InvalidArgument("NewRedisStorage needs a clock");
  if (options.prefix.empty()) return Status::InvalidArgument("redis_prefix must not be empty");
  if (options.connections < 1 || options.timeout_ms < 1) {
    return Status::InvalidArgument("redis: connections and timeout must be positive");
  }
  if (options.endpoint.host.empty() == options.endpoint.unix_path.empty()) {
    return Status::InvalidArgument("redis: give a host or a unix socket path");
  }
  storage->reset(new RedisStorage(options, clock));
  return Status::OK();
}

}  // namespace otpd
