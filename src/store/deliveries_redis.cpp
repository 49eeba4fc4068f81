// DeliveryLog in Redis (built with make REDIS=1), so a receipt that reaches
// any node finds the send another node made. One connection guarded by a
// mutex, reopened after a failure. Every operation is one Lua script,
// atomic across nodes.
//
// The row of each send is written behind the request, as in the SQLite
// log (store/batch_writer.h: every 20 ms, or at 256 rows, pipelined in one
// round trip, and before any read here, so this process always finds its
// own sends). One synchronous round trip per send on this one connection
// had every send queue behind the mutex. The cost: a crash loses at most
// the last 20 ms of rows (their receipts answer `ignored`), and a receipt
// reaching another node within 20 ms of the send is not found. A rewritten
// row is harmless: recording checks that the row does not exist yet.
//
// Keys, under the prefix P (each with a TTL of ttl_ms from the send):
//   P dlv:<message id>    hash: provider, user, phone, sent_at, exp, status,
//                         err, updated
//   P dlv-last:<user>     the user's newest message id
//   P dlv-pending         sorted set id -> sent_at of messages without a
//                         final status, read by MarkUnknown
#include <hiredis/hiredis.h>

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/redis_url.h"
#include "otp/deliveries.h"
#include "store/batch_writer.h"

namespace otpd {
namespace {

#define OTPD_LUA_RANK                                                             \
  "local function rank(s)\n"                                                      \
  "  if s == 'accepted' or s == 'scheduled' then return 1 end\n"                  \
  "  if s == 'queued' then return 2 end\n"                                        \
  "  if s == 'sending' then return 3 end\n"                                       \
  "  if s == 'sent' then return 4 end\n"                                          \
  "  if s == 'delivered' or s == 'undelivered' or s == 'failed' or s == 'read'\n" \
  "     or s == 'canceled' then return 5 end\n"                                   \
  "  return 0\n"                                                                  \
  "end\n"

// KEYS: row, last, pending. ARGV: id, provider, user, phone, sent_at, exp,
// status, ttl_ms.
constexpr char kRecordLua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end\n"
    "redis.call('HSET', KEYS[1], 'provider', ARGV[2], 'user', ARGV[3], 'phone', ARGV[4],\n"
    "           'sent_at', ARGV[5], 'exp', ARGV[6], 'status', ARGV[7], 'err', '0',\n"
    "           'updated', ARGV[5])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[8])\n"
    "redis.call('SET', KEYS[2], ARGV[1], 'PX', ARGV[8])\n"
    "redis.call('ZADD', KEYS[3], ARGV[5], ARGV[1])\n"
    "redis.call('PEXPIRE', KEYS[3], ARGV[8])\n"
    "return 1\n";

// KEYS: row, pending. ARGV: status, err, now, id. Returns {found, changed,
// hash...}.
constexpr char kApplyLua[] = OTPD_LUA_RANK
    "local cur = redis.call('HGET', KEYS[1], 'status')\n"
    "if not cur then return {0, 0} end\n"
    "local to = ARGV[1]\n"
    "local adv = false\n"
    "if cur == 'unknown' then adv = rank(to) == 5\n"
    "elseif cur ~= to then adv = rank(to) > rank(cur) end\n"
    "if adv then\n"
    "  redis.call('HSET', KEYS[1], 'status', to, 'err', ARGV[2], 'updated', ARGV[3])\n"
    "  if rank(to) == 5 then redis.call('ZREM', KEYS[2], ARGV[4]) end\n"
    "end\n"
    "return {1, adv and 1 or 0, redis.call('HGETALL', KEYS[1])}\n";

// KEYS: pending. ARGV: cutoff, now, row key prefix. Returns {id, hash, ...}.
constexpr char kMarkLua[] = OTPD_LUA_RANK
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[1], 'LIMIT', 0, 500)\n"
    "local out = {}\n"
    "for _, id in ipairs(ids) do\n"
    "  redis.call('ZREM', KEYS[1], id)\n"
    "  local key = ARGV[3] .. id\n"
    "  local st = redis.call('HGET', key, 'status')\n"
    "  if st and st ~= 'unknown' and rank(st) < 5 then\n"
    "    redis.call('HSET', key, 'status', 'unknown', 'updated', ARGV[2])\n"
    "    table.insert(out, id)\n"
    "    table.insert(out, redis.call('HGETALL', key))\n"
    "  end\n"
    "end\n"
    "return out\n";

struct ReplyDeleter {
  void operator()(redisReply* r) const { freeReplyObject(r); }
};
using Reply = std::unique_ptr<redisReply, ReplyDeleter>;

std::string Str(const redisReply* r) {
  return r != nullptr && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS)
             ? std::string(r->str, r->len)
             : std::string();
}

int64_t Int(const std::string& s) {
  try {
    return s.empty() ? 0 : std::stoll(s);
  } catch (...) {
    return 0;
  }
}

// A row from HGETALL's flat name/value array.
Delivery RowOf(const std::string& id, const redisReply* hash) {
  std::map<std::string, std::string> f;
  for (size_t i = 0; hash != nullptr && hash->type == REDIS_REPLY_ARRAY && i + 1 < hash->elements;
       i += 2) {
    f[Str(hash->element[i])] = Str(hash->element[i + 1]);
  }
  Delivery d;
  d.message_id = id;
  d.provider = f["provider"];
  d.user_id = f["user"];
  d.masked_phone = f["phone"];
  d.sent_at_ms = Int(f["sent_at"]);
  d.code_expires_at_ms = Int(f["exp"]);
  d.status = f["status"];
  d.error_code = static_cast<int>(Int(f["err"]));
  d.updated_at_ms = Int(f["updated"]);
  return d;
}

class RedisDeliveryLog : public DeliveryLog {
 public:
  RedisDeliveryLog(const RedisEndpoint& endpoint, std::string prefix, int timeout_ms,
                   int64_t ttl_ms)
      : endpoint_(endpoint),
        prefix_(std::move(prefix)),
        timeout_ms_(timeout_ms),
        ttl_ms_(ttl_ms),
        queue_(new BatchWriter<Delivery>(
            BatchWriterOptions{"delivery rows", 256, 100000, 20},
            [this](const std::vector<Delivery>& rows) { return WriteRows(rows); })) {}
  ~RedisDeliveryLog() override {
    queue_.reset();  // writes what is queued, while the connection is still here
    if (c_ != nullptr) redisFree(c_);
  }

  Status RecordSend(const Delivery& d) override { return queue_->Add(d); }
  uint64_t Dropped() const override { return queue_->dropped(); }

  Status Apply(const std::string& message_id, const std::string& status, int error_code,
               int64_t now_ms, bool* found, bool* changed, Delivery* row) override {
    *found = *changed = false;
    queue_->Flush();
    Reply r;
    Status s = Run({"EVAL", kApplyLua, "2", Row(message_id), Pending(), status,
                    std::to_string(error_code), std::to_string(now_ms), message_id},
                   &r);
    if (!s.ok()) return s;
    if (r->type != REDIS_REPLY_ARRAY || r->elements < 2)
      return Status::Internal("redis: bad reply");
    *found = r->element[0]->integer == 1;
    *changed = r->element[1]->integer == 1;
    if (*found && r->elements >= 3) *row = RowOf(message_id, r->element[2]);
    return s;
  }

  Status LastForUser(const std::string& user_id, Delivery* row) override {
    queue_->Flush();
    Reply r;
    Status s = Run({"GET", Last(user_id)}, &r);
    if (!s.ok()) return s;
    const std::string id = Str(r.get());
    if (id.empty()) return Status::NotFound("no send recorded for " + user_id);
    s = Run({"HGETALL", Row(id)}, &r);
    if (!s.ok()) return s;
    if (r->type != REDIS_REPLY_ARRAY || r->elements == 0) {
      return Status::NotFound("no send recorded for " + user_id);
    }
    *row = RowOf(id, r.get());
    return s;
  }

  Status MarkUnknown(int64_t cutoff_ms, int64_t now_ms, std::vector<Delivery>* rows) override {
    rows->clear();
    queue_->Flush();
    Reply r;
    Status s = Run({"EVAL", kMarkLua, "1", Pending(), std::to_string(cutoff_ms),
                    std::to_string(now_ms), prefix_ + "dlv:"},
                   &r);
    if (!s.ok()) return s;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
      rows->push_back(RowOf(Str(r->element[i]), r->element[i + 1]));
    }
    return s;
  }

  // Rows expire by their TTL; only the pending index needs trimming.
  Status Purge(int64_t cutoff_ms, int64_t* purged) override {
    queue_->Flush();
    Reply r;
    Status s = Run({"ZREMRANGEBYSCORE", Pending(), "-inf", "(" + std::to_string(cutoff_ms)}, &r);
    *purged = s.ok() && r->type == REDIS_REPLY_INTEGER ? r->integer : 0;
    return s;
  }

 private:
  std::string Row(const std::string& id) const { return prefix_ + "dlv:" + id; }
  std::string Last(const std::string& user) const { return prefix_ + "dlv-last:" + user; }
  std::string Pending() const { return prefix_ + "dlv-pending"; }

  Status Connect() {
    struct timeval tv;
    tv.tv_sec = timeout_ms_ / 1000;
    tv.tv_usec = (timeout_ms_ % 1000) * 1000;
    c_ = endpoint_.unix_path.empty()
             ? redisConnectWithTimeout(endpoint_.host.c_str(), endpoint_.port, tv)
             : redisConnectUnixWithTimeout(endpoint_.unix_path.c_str(), tv);
    if (c_ == nullptr || c_->err != 0) {
      Status s = Status::Unavailable("redis deliveries: " +
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
      s = Status::Unavailable(std::string("redis deliveries: ") + c_->errstr);
    } else if ((*reply)->type == REDIS_REPLY_ERROR) {
      s = Status::Unavailable("redis deliveries: " + std::string((*reply)->str, (*reply)->len));
    }
    if (!s.ok()) {
      redisFree(c_);
      c_ = nullptr;
    }
    return s;
  }

  static std::vector<std::string> RecordArgv(const Delivery& d, const std::string& row,
                                             const std::string& last, const std::string& pending,
                                             int64_t ttl_ms) {
    return {"EVAL",
            kRecordLua,
            "3",
            row,
            last,
            pending,
            d.message_id,
            d.provider,
            d.user_id,
            d.masked_phone,
            std::to_string(d.sent_at_ms),
            std::to_string(d.code_expires_at_ms),
            d.status.empty() ? "accepted" : d.status,
            std::to_string(ttl_ms)};
  }

  // The queued rows, pipelined: every command sent, then every answer read.
  // Any failure closes the connection and fails the whole call, so the
  // batch writer tries all of them again.
  Status WriteRows(const std::vector<Delivery>& rows) {
    std::lock_guard<std::mutex> lock(mu_);
    if (c_ == nullptr) {
      Status s = Connect();
      if (!s.ok()) return s;
    }
    Status s;
    for (const Delivery& d : rows) {
      const std::vector<std::string> argv =
          RecordArgv(d, Row(d.message_id), Last(d.user_id), Pending(), ttl_ms_);
      std::vector<const char*> args;
      std::vector<size_t> lengths;
      for (const std::string& a : argv) {
        args.push_back(a.data());
        lengths.push_back(a.size());
      }
      if (redisAppendCommandArgv(c_, static_cast<int>(args.size()), args.data(), lengths.data()) !=
          REDIS_OK) {
        s = Status::Unavailable(std::string("redis deliveries: ") + c_->errstr);
        break;
      }
    }
    for (size_t i = 0; s.ok() && i < rows.size(); i++) {
      void* raw = nullptr;
      if (redisGetReply(c_, &raw) != REDIS_OK || raw == nullptr) {
        s = Status::Unavailable(std::string("redis deliveries: ") + c_->errstr);
        break;
      }
      Reply r(static_cast<redisReply*>(raw));
      if (r->type == REDIS_REPLY_ERROR) {
        s = Status::Unavailable("redis deliveries: " + std::string(r->str, r->len));
      }
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
  const int64_t ttl_ms_;
  std::mutex mu_;
  redisContext* c_ = nullptr;  // guarded by mu_
  // Last: its thread writes through the members above.
  std::unique_ptr<BatchWriter<Delivery>> queue_;
};

}  // namespace

Status NewRedisDeliveryLog(const RedisEndpoint& endpoint, const std::string& prefix, int timeout_ms,
                           int64_t ttl_ms, std::unique_ptr<DeliveryLog>* log) {
  if (ttl_ms <= 0 || timeout_ms <= 0) {
    return Status::InvalidArgument("NewRedisDeliveryLog: ttl and timeout must be positive");
  }
  log->reset(new RedisDeliveryLog(endpoint, prefix, timeout_ms, ttl_ms));
  return Status::OK();
}

}  // namespace otpd
