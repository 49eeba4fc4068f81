// RegionStore in Redis (built with make REDIS=1), so every node counts
// into the same buckets and sees the same pauses. Sends are counted once
// per send (two keys), so one connection guarded by a mutex is enough; it
// is reopened after a failure. Every operation on a key is one Lua script,
// atomic across nodes.
//
// Keys, under the prefix P:
//   P pump:c:<key>   hash "s:<minute>" -> sends, "v:<minute>" -> verified;
//                    expires a baseline after its last write
//   P pump:st:<key>  hash first_seen, until, reason. TTL: at least a
//                    baseline after the last send, and a day past a pause's
//                    end (so a pause outlives quiet; Purge removes idle ones)
//   P pump:keys      set of every key with a state. TTL: the longest state's
// A pause survives a Redis restart only with Redis persistence (as the
// send history does; README, Redis).
#include <hiredis/hiredis.h>

#include <algorithm>
#include <atomic>
#include <mutex>
#include <utility>
#include <vector>

#include "core/redis_url.h"
#include "otp/pumping.h"

namespace otpd {
namespace {

constexpr int64_t kBucketMs = 60 * 1000;

// keep(key, ms): the key's TTL becomes ms unless it already has a longer one.
#define OTPD_LUA_KEEP                                                                     \
  "local function keep(key, ms)\n"                                                        \
  "  if redis.call('PTTL', key) < tonumber(ms) then redis.call('PEXPIRE', key, ms) end\n" \
  "end\n"

// KEYS: counts, state, key set. ARGV: key, add (1/0), now_ms, minute,
// window_from, baseline_from, ttl_ms. Returns {window_sent,
// window_verified, baseline_sent, first_seen, until, reason}.
constexpr char kCountLua[] = OTPD_LUA_KEEP
    "local minute = tonumber(ARGV[4])\n"
    "if ARGV[2] == '1' then\n"
    "  redis.call('HINCRBY', KEYS[1], 's:' .. ARGV[4], 1)\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[7])\n"
    "  local seen = redis.call('HGET', KEYS[2], 'first_seen')\n"
    "  if not seen or seen == '0' then redis.call('HSET', KEYS[2], 'first_seen', ARGV[3]) end\n"
    "  redis.call('SADD', KEYS[3], ARGV[1])\n"
    "  keep(KEYS[2], ARGV[7])\n"
    "  keep(KEYS[3], ARGV[7])\n"
    "end\n"
    "local wfrom, bfrom = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "local ws, wv, bs = 0, 0, 0\n"
    "local all = redis.call('HGETALL', KEYS[1])\n"
    "for i = 1, #all, 2 do\n"
    "  local kind, m, n = string.sub(all[i], 1, 1), tonumber(string.sub(all[i], 3)),\n"
    "                     tonumber(all[i + 1])\n"
    "  if m >= wfrom and m <= minute then\n"
    "    if kind == 's' then ws = ws + n else wv = wv + n end\n"
    "  elseif m >= bfrom and m < wfrom then\n"
    "    if kind == 's' then bs = bs + n end\n"
    "  elseif m < bfrom and ARGV[2] == '1' then\n"
    "    redis.call('HDEL', KEYS[1], all[i])\n"
    "  end\n"
    "end\n"
    "local st = redis.call('HMGET', KEYS[2], 'first_seen', 'until', 'reason')\n"
    "return {ws, wv, bs, st[1] or '0', st[2] or '0', st[3] or ''}\n";

// KEYS: counts. ARGV: minute, ttl_ms.
constexpr char kVerifiedLua[] =
    "redis.call('HINCRBY', KEYS[1], 'v:' .. ARGV[1], 1)\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "return 1\n";

// KEYS: counts, state, key set. ARGV: key, now_ms, until_ms, window_from,
// reason. Returns 1 when no pause was in force.
constexpr char kPauseLua[] = OTPD_LUA_KEEP
    "local cur = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')\n"
    "local started = cur <= tonumber(ARGV[2])\n"
    "if tonumber(ARGV[3]) > cur then redis.call('HSET', KEYS[2], 'until', ARGV[3]) end\n"
    "if started then redis.call('HSET', KEYS[2], 'reason', ARGV[5]) end\n"
    "if not redis.call('HGET', KEYS[2], 'first_seen') then\n"
    "  redis.call('HSET', KEYS[2], 'first_seen', '0')\n"
    "end\n"
    "redis.call('SADD', KEYS[3], ARGV[1])\n"
    "local pause_end = tonumber(redis.call('HGET', KEYS[2], 'until') or '0')\n"
    "local hold = pause_end - tonumber(ARGV[2]) + 86400000\n"
    "keep(KEYS[2], hold)\n"
    "keep(KEYS[3], hold)\n"
    "for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
    "  if tonumber(string.sub(name, 3)) >= tonumber(ARGV[4]) then\n"
    "    redis.call('HDEL', KEYS[1], name)\n"
    "  end\n"
    "end\n"
    "return started and 1 or 0\n";

// KEYS: counts. ARGV: window_from.
constexpr char kDropLua[] =
    "for _, name in ipairs(redis.call('HKEYS', KEYS[1])) do\n"
    "  if tonumber(string.sub(name, 3)) >= tonumber(ARGV[1]) then\n"
    "    redis.call('HDEL', KEYS[1], name)\n"
    "  end\n"
    "end\n"
    "return 1\n";

// KEYS: state. ARGV: now_ms. Returns 1 when a pause was lifted.
constexpr char kUnpauseLua[] =
    "local cur = tonumber(redis.call('HGET', KEYS[1], 'until') or '0')\n"
    "if cur <= tonumber(ARGV[1]) then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'until', '0')\n"
    "return 1\n";

// KEYS: key set. ARGV: prefix, cutoff_ms. Drops idle keys.
constexpr char kPurgeLua[] =
    "for _, key in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  local st = ARGV[1] .. 'pump:st:' .. key\n"
    "  local cur = tonumber(redis.call('HGET', st, 'until') or '0')\n"
    "  if cur < tonumber(ARGV[2]) and redis.call('EXISTS', ARGV[1] .. 'pump:c:' .. key) == 0 then\n"
    "    redis.call('DEL', st)\n"
    "    redis.call('SREM', KEYS[1], key)\n"
    "  end\n"
    "end\n"
    "return 1\n";

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

std::string Str(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
             ? std::string(r->str, r->len)
             : std::string();
}

int64_t Int(const redisReply* r) {
  if (r == nullptr) return 0;
  if (r->type == REDIS_REPLY_INTEGER) return r->integer;
  try {
    const std::string s = Str(r);
    return s.empty() ? 0 : std::stoll(s);
  } catch (...) {
    return 0;
  }
}

int64_t FirstMinute(int64_t start_ms) {
  return (start_ms >= 0 ? start_ms / kBucketMs : (start_ms - kBucketMs + 1) / kBucketMs) + 1;
}

class RedisRegionStore : public RegionStore {
 public:
  RedisRegionStore(const RedisEndpoint& endpoint, std::string prefix, int timeout_ms)
      : endpoint_(endpoint), prefix_(std::move(prefix)), timeout_ms_(timeout_ms) {}
  ~RedisRegionStore() override {
    if (c_ != nullptr) redisFree(c_);
  }

  Status AddSend(const std::vector<std::string>& keys, int64_t now_ms, int64_t window_ms,
                 int64_t baseline_ms, std::vector<RegionCounts>* out) override {
    out->clear();
    for (const std::string& key : keys) {
      RegionCounts c;
      Status s = Count(key, true, now_ms, window_ms, baseline_ms, &c);
      if (!s.ok()) return s;
      out->push_back(c);
    }
    return Status::OK();
  }

  Status AddVerified(const std::string& key, int64_t now_ms) override {
    Reply r;
    return Run({"EVAL", kVerifiedLua, "1", Counts(key), std::to_string(now_ms / kBucketMs),
                std::to_string(ttl_ms_.load())},
               &r);
  }

  Status PausedUntil(const std::vector<std::string>& keys, int64_t now_ms, std::string* key,
                     int64_t* until_ms) override {
    *until_ms = 0;
    for (const std::string& k : keys) {
      Reply r;
      Status s = Run({"HGET", State(k), "until"}, &r);
      if (!s.ok()) return s;
      const int64_t until = Int(r.get());
      if (until > now_ms && until > *until_ms) {
        *until_ms = until;
        *key = k;
      }
    }
    return Status::OK();
  }

  Status Pause(const std::string& key, int64_t now_ms, int64_t until_ms, int64_t window_start_ms,
               const std::string& reason, bool* started) override {
    Reply r;
    Status s =
        Run({"EVAL", kPauseLua, "3", Counts(key), State(key), KeySet(), key, std::to_string(now_ms),
             std::to_string(until_ms), std::to_string(FirstMinute(window_start_ms)), reason},
            &r);
    *started = s.ok() && Int(r.get()) == 1;
    return s;
  }

  Status DropWindow(const std::string& key, int64_t window_start_ms) override {
    Reply r;
    return Run({"EVAL", kDropLua, "1", Counts(key), std::to_string(FirstMinute(window_start_ms))},
               &r);
  }

  Status Unpause(const std::string& key, int64_t now_ms, bool* was_paused) override {
    Reply r;
    Status s = Run({"EVAL", kUnpauseLua, "1", State(key), std::to_string(now_ms)}, &r);
    *was_paused = s.ok() && Int(r.get()) == 1;
    return s;
  }

  Status List(int64_t now_ms, int64_t window_ms, int64_t baseline_ms,
              std::vector<RegionCounts>* out) override {
    out->clear();
    Reply r;
    Status s = Run({"SMEMBERS", KeySet()}, &r);
    if (!s.ok()) return s;
    std::vector<std::string> keys;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i < r->elements; ++i) {
      keys.push_back(Str(r->element[i]));
    }
    std::sort(keys.begin(), keys.end());
    for (const std::string& key : keys) {
      RegionCounts c;
      s = Count(key, false, now_ms, window_ms, baseline_ms, &c);
      if (!s.ok()) return s;
      out->push_back(c);
    }
    return Status::OK();
  }

  Status Purge(int64_t cutoff_ms) override {
    Reply r;
    return Run({"EVAL", kPurgeLua, "1", KeySet(), prefix_, std::to_string(cutoff_ms)}, &r);
  }

 private:
  std::string Counts(const std::string& key) const { return prefix_ + "pump:c:" + key; }
  std::string State(const std::string& key) const { return prefix_ + "pump:st:" + key; }
  std::string KeySet() const { return prefix_ + "pump:keys"; }

  Status Count(const std::string& key, bool add, int64_t now_ms, int64_t window_ms,
               int64_t baseline_ms, RegionCounts* c) {
    ttl_ms_ = std::max<int64_t>(baseline_ms, kBucketMs);
    Reply r;
    Status s =
        Run({"EVAL", kCountLua, "3", Counts(key), State(key), KeySet(), key, add ? "1" : "0",
             std::to_string(now_ms), std::to_string(now_ms / kBucketMs),
             std::to_string(FirstMinute(now_ms - window_ms)),
             std::to_string(FirstMinute(now_ms - baseline_ms)), std::to_string(ttl_ms_.load())},
            &r);
    if (!s.ok()) return s;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 6) {
      return Status::Internal("redis pumping: bad reply");
    }
    c->key = key;
    c->window_sent = Int(r->element[0]);
    c->window_verified = Int(r->element[1]);
    c->baseline_sent = Int(r->element[2]);
    c->first_seen_ms = Int(r->element[3]);
    c->paused_until_ms = Int(r->element[4]);
    c->reason = Str(r->element[5]);
    return s;
  }

  Status Connect() {
    struct timeval tv;
    tv.tv_sec = timeout_ms_ / 1000;
    tv.tv_usec = (timeout_ms_ % 1000) * 1000;
    c_ = endpoint_.unix_path.empty()
             ? redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, tv)
             : redisConnectUnixWithTimeout(endpoint_.unix_path.c_str(), tv);
    if (c_ == nullptr || c_->err != 0) {
      Status s = Status::Unavailable("redis pumping: " +
                                     std::string(c_ != nullptr ? c_->errstr : "no memory"));
      if (c_ != nullptr) redisFree(c_);
      c_ = nullptr;
      return s;
    }
    redisSetTimeout(c_, tv);
    std::vector<std::vector<std::string>> setup;
    if (!endpoint_.password.empty()) {
      setup.push_back(
          endpoint_.username.empty()
              ? std::vector<std::string>{"AUTH", endpoint_.password}
              : std::vector<std::string>{"AUTH", endpoint_.username, endpoint_.password});
    }
    if (endpoint_.db != 0) setup.push_back({"SELECT", std::to_string(endpoint_.db)});
    for (const auto& argv : setup) {
      Reply r;
      Status s = Command(argv, &r);
      if (!s.ok()) return s;
    }
    return Status::OK();
  }

  // One command on the open connection; closes it on any failure.
  Status Command(const std::vector<std::string>& argv, Reply* reply) {
    std::vector<const char*> args;
    std::vector<size_t> lengths;
    for (const std::string& a : argv) {
      args.push_back(a.data());
      lengths.push_back(a.size());
    }
    reply->reset(static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(args.size()), args.data(), lengths.data())));
    Status s;
    if (*reply == nullptr) {
      s = Status::Unavailable(std::string("redis pumping: ") + c_->errstr);
    } else if ((*reply)->type == REDIS_REPLY_ERROR) {
      s = Status::Unavailable("redis pumping: " + std::string((*reply)->str, (*reply)->len));
    }
    if (!s.ok()) {
      redisFree(c_);
      c_ = nullptr;
    }
    return s;
  }

  Status Run(const std::vector<std::string>& argv, Reply* reply) {
    std::lock_guard<std::mutex> lock(mu_);
    if (c_ == nullptr) {
      Status s = Connect();
      if (!s.ok()) return s;
    }
    return Command(argv, reply);
  }

  const RedisEndpoint endpoint_;
  const std::string prefix_;
  const int timeout_ms_;
  std::atomic<int64_t> ttl_ms_{24 * 3600 * 1000};  // the latest baseline seen
  std::mutex mu_;
  redisContext* c_ = nullptr;  // guarded by mu_
};

}  // namespace

Status NewRedisRegionStore(const RedisEndpoint& endpoint, const std::string& prefix, int timeout_ms,
                           std::unique_ptr<RegionStore>* store) {
  if (timeout_ms <= 0)
    return Status::InvalidArgument("NewRedisRegionStore: timeout must be positive");
  store->reset(new RedisRegionStore(endpoint, prefix, timeout_ms));
  return Status::OK();
}

}  // namespace otpd
