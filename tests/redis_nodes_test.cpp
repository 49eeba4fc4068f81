// Several otpd nodes on one Redis: the real ./otpd binary (or $OTPD_BIN,
// otpd_process.h), each test with a redis-server of its own
// (redis_server.h), nodes with their own SQLite file and console SMS log,
// spoken to over HTTP on 127.0.0.1. Only in the Redis build.
#ifdef OTPD_REDIS

#include <doctest/doctest.h>
#include <otpd_httplib.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "otpd_process.h"
#include "redis_server.h"
#include "test_util.h"

namespace otpd {
namespace {

using SteadyClock = std::chrono::steady_clock;

const char kSecret[] = "redis-nodes-test-secret-0123456789";
const char kAbcPhone[] = "+12015551111";
const char kDoePhone[] = "+12025552222";

// The config of node `name`: its own database and SMS log in `dir`, the
// shared secret, codes in the Redis at `redis_url` (none: `extra` says
// where with redis_host and the like). `extra` adds keys.
std::string NodeConfig(const TempDir& dir, const std::string& name, const std::string& redis_url,
                       const std::string& extra = "", bool fallback = false) {
  const std::string path = dir.File(name + ".conf");
  WriteFile(path,
            "listen = \"127.0.0.1\"\nport = 0\nthreads = 48\n"
            "database = \"" +
                dir.File(name + ".db") +
                "\"\n"
                "sms_log_file = \"" +
                dir.File(name + ".sms") +
                "\"\n"
                "secret = \"" +
                kSecret +
                "\"\nip_requests_per_minute = 0\n"
                "store = \"redis\"\n" +
                (redis_url.empty() ? "" : "redis_url = \"" + redis_url + "\"\n") +
                "redis_fallback = " + (fallback ? "true" : "false") + "\n" + extra +
                "\n[users]\nabc = \"" + kAbcPhone + "\"\n\"John.Doe\" = \"" + kDoePhone + "\"\n");
  return path;
}

std::string ToLower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

struct Answer {
  int status = -1;  // -1: no answer
  std::string body;
  std::string retry_after;
};

// `otpd serve --config CONFIG` as node `name` of `dir`, with shorthands for
// the service's requests. Stopped cleanly (SIGTERM) when destroyed, before
// ~OtpdProcess checks its log.
class Node : public OtpdProcess {
 public:
  Node(const TempDir& dir, const std::string& name, const std::string& config)
      : OtpdProcess(dir, name, {"serve", "--config", config}), sms_log_(dir.File(name + ".sms")) {}
  ~Node() { Terminate(); }

  const std::string& sms_log() const { return sms_log_; }

  Answer Get(const std::string& path) const { return Request("GET", path, ""); }
  Answer Post(const std::string& path, const std::string& body) const {
    return Request("POST", path, body);
  }
  Answer Send(const std::string& user) const {
    return Post("/send-code", "{\"user_id\":\"" + user + "\"}");
  }
  Answer Verify(const std::string& user, const std::string& code) const {
    return Post("/verify-code", VerifyJson(user, code));
  }

 private:
  Answer Request(const std::string& method, const std::string& path,
                 const std::string& body) const {
    httplib::Client cli = Client();
    httplib::Result res =
        method == "POST" ? cli.Post(path.c_str(), body, "application/json") : cli.Get(path.c_str());
    Answer a;
    if (!res) return a;
    a.status = res->status;
    a.body = res->body;
    a.retry_after = res->get_header_value("Retry-After");
    return a;
  }

  std::string sms_log_;
};

int64_t MillisSince(SteadyClock::time_point start) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(SteadyClock::now() - start).count();
}

// Polls GET `path` until it answers `status`; false after `seconds`.
bool WaitForStatus(const Node& node, const std::string& path, int status, int seconds) {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(seconds);
  while (SteadyClock::now() < deadline) {
    if (node.Get(path).status == status) return true;
    usleep(50000);
  }
  return false;
}

// Sends a code to `user` on `node` and returns it from the node's SMS log.
std::string SendAndRead(const Node& node, const std::string& user, const std::string& phone) {
  const Answer a = node.Send(user);
  REQUIRE_MESSAGE(a.status == 200, a.body);
  const std::string code = LastCode(node.sms_log(), phone);
  REQUIRE(code.size() == 6);
  return code;
}

// 503 unavailable with Retry-After, as every store call answers while
// Redis is down.
void CheckUnavailable(const Answer& a) {
  CHECK_MESSAGE(a.status == 503, a.body);
  CHECK(a.body.find("\"error_type\":\"unavailable\"") != std::string::npos);
  CHECK(!a.retry_after.empty());
}

// The `field` of the `section` of INFO ("" when absent).
std::string InfoField(const RedisServer& redis, const std::string& section,
                      const std::string& field) {
  const RedisReply info = redis.Call({"INFO", section});
  std::istringstream lines(info.str);
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(field + ":", 0) == 0) return line.substr(field.size() + 1);
  }
  return "";
}

// The key's contents as text, whatever its type: hash fields and values,
// zset members and scores, and so on.
std::string DumpKey(const RedisServer& redis, const std::string& key) {
  const std::string type = redis.Call({"TYPE", key}).str;
  RedisReply r;
  if (type == "string") r = redis.Call({"GET", key});
  if (type == "hash") r = redis.Call({"HGETALL", key});
  if (type == "zset") r = redis.Call({"ZRANGE", key, "0", "-1", "WITHSCORES"});
  if (type == "set") r = redis.Call({"SMEMBERS", key});
  if (type == "list") r = redis.Call({"LRANGE", key, "0", "-1"});
  if (type == "stream") r = redis.Call({"XRANGE", key, "-", "+"});
  std::string out = r.str;
  for (const RedisReply& e : r.elements) out += " " + e.str;
  return out;
}

}  // namespace

TEST_CASE("redis nodes: a code sent on one node verifies once, on another") {
  RedisServer redis;
  TempDir dir;
  Node a(dir, "a", NodeConfig(dir, "a", redis.url()));
  Node b(dir, "b", NodeConfig(dir, "b", redis.url()));
  CHECK(a.store() == "redis");
  CHECK(b.store() == "redis");
  const std::string code = SendAndRead(a, "ABC", kAbcPhone);
  CHECK(b.Verify("abc", code).status == 200);
  CHECK(b.Verify("abc", code).status == 404);  // consumed for both
  CHECK(a.Verify("abc", code).status == 404);
  CHECK(ReadFile(b.sms_log()).empty());
}

TEST_CASE("redis nodes: one node on the Unix socket, one on TCP, share codes") {
  RedisServer redis;
  TempDir dir;
  Node a(dir, "a", NodeConfig(dir, "a", redis.unix_url()));
  Node b(dir, "b", NodeConfig(dir, "b", redis.url()));
  CHECK(a.store() == "redis");
  const std::string code = SendAndRead(a, "abc", kAbcPhone);
  CHECK(b.Verify("abc", code).status == 200);
  CHECK(a.Verify("abc", code).status == 404);
}

TEST_CASE("redis nodes: one prefix needs one secret; another prefix is another deployment") {
  RedisServer redis;
  TempDir dir;
  Node a(dir, "a", NodeConfig(dir, "a", redis.url()));
  const std::string code = SendAndRead(a, "abc", kAbcPhone);
  // Codes hashed with another secret could never verify here: refused.
  const std::string config = NodeConfig(dir, "b", redis.url());
  std::string text = ReadFile(config);
  text.replace(text.find(kSecret), strlen(kSecret), "another-secret-9876543210abcdef");
  WriteFile(config, text);
  const CommandResult r = RunOtpd(dir, {"serve", "--config", config});
  CHECK(r.exit_code == 1);
  CHECK(r.output().find("secret") != std::string::npos);
  CHECK(r.output().find("another-secret") == std::string::npos);
  CHECK(r.output().find(kSecret) == std::string::npos);
  MESSAGE("another secret: ", r.output());
  // Under a prefix of its own it is welcome, and sees none of a's codes.
  text.insert(text.find("[users]"), "redis_prefix = \"other:\"\n");
  WriteFile(config, text);
  Node b(dir, "b", config);
  CHECK(b.store() == "redis");
  CHECK(b.Verify("abc", code).status == 404);
  CHECK(a.Verify("abc", code).status == 200);
  CHECK(redis.Call({"EXISTS", "other:secret-check"}).integer == 1);
}

TEST_CASE("redis nodes: 64 concurrent wrong guesses over two nodes take exactly max_attempts" *
          doctest::test_suite("tsan")) {
  RedisServer redis;
  TempDir dir;
  Node a(dir, "a", NodeConfig(dir, "a", redis.url()));
  Node b(dir, "b", NodeConfig(dir, "b", redis.url()));
  const std::string code = SendAndRead(a, "abc", kAbcPhone);
  std::map<int, int> counts = ConcurrentWrongGuesses({&a, &b}, "abc", 64, code);
  CHECK(counts[400] == 3);
  CHECK(counts[429] == 61);
  for (const Node* node : {&a, &b}) {
    const Answer locked = node->Verify("abc", code);  // the right code too
    CHECK(locked.status == 429);
    CHECK(locked.body.find("\"error_type\":\"too_many_attempts\"") != std::string::npos);
    CHECK(!locked.retry_after.empty());
  }
}

TEST_CASE("redis nodes: the resend cooldown and the failure cap count both nodes") {
  RedisServer redis;
  TempDir dir;
  const std::string limits = "send_cooldown = 60\nmax_attempts = 10\nverify_failure_cap = 4\n";
  Node a(dir, "a", NodeConfig(dir, "a", redis.url(), limits));
  Node b(dir, "b", NodeConfig(dir, "b", redis.url(), limits));

  SendAndRead(a, "abc", kAbcPhone);
  const Answer resend = b.Send("abc");
  CHECK(resend.status == 429);
  CHECK(resend.body.find("\"error_type\":\"rate_limited\"") != std::string::npos);
  const int retry = atoi(resend.retry_after.c_str());
  CHECK(retry > 50);
  CHECK(retry <= 60);
  CHECK(ReadFile(b.sms_log()).empty());  // nothing texted

  // Two failures on each node reach the cap of four: then even the right
  // code is refused.
  const std::string code = SendAndRead(b, "john.doe", kDoePhone);
  CHECK(a.Verify("john.doe", WrongCode(code)).status == 400);
  CHECK(b.Verify("john.doe", WrongCode(code)).status == 400);
  CHECK(a.Verify("john.doe", WrongCode(code)).status == 400);
  const Answer fourth = b.Verify("john.doe", WrongCode(code));
  CHECK(fourth.status == 400);
  CHECK(fourth.body.find("\"attempts_remaining\":6") != std::string::npos);
  for (const Node* node : {&a, &b}) {
    const Answer throttled = node->Verify("john.doe", code);
    CHECK(throttled.status == 429);
    CHECK(throttled.body.find("\"error_type\":\"too_many_attempts\"") != std::string::npos);
    CHECK(atoi(throttled.retry_after.c_str()) > 0);
  }
}

TEST_CASE("redis nodes: Redis down answers 503; back on the same port, both nodes recover") {
  RedisServerOptions options;
  options.persistent = true;  // the code sent before the stop survives it
  RedisServer redis(options);
  TempDir dir;
  Node a(dir, "a", NodeConfig(dir, "a", redis.url()));
  Node b(dir, "b", NodeConfig(dir, "b", redis.url()));
  const std::string code = SendAndRead(a, "abc", kAbcPhone);
  CHECK(a.Get("/readyz").status == 200);
  CHECK(b.Get("/readyz").status == 200);

  redis.Stop();
  for (const Node* node : {&a, &b}) {
    CheckUnavailable(node->Send("john.doe"));
    CheckUnavailable(node->Verify("abc", code));
    CHECK(node->Get("/readyz").status == 503);
    CHECK(node->Get("/healthz").status == 200);
  }
  CHECK(LastCode(a.sms_log(), kDoePhone).empty());  // no SMS without a store

  const auto restarted = SteadyClock::now();
  redis.Start();
  CHECK(WaitForStatus(a, "/readyz", 200, 60));
  CHECK(WaitForStatus(b, "/readyz", 200, 60));
  MESSAGE("both nodes ready ", MillisSince(restarted), " ms after Redis came back");
  CHECK(b.Verify("abc", code).status == 200);
  CHECK(a.Verify("abc", code).status == 404);
  CHECK(a.Send("john.doe").status == 200);
}

TEST_CASE("redis nodes: a hung Redis costs at most the timeout, answers 503, and recovers") {
  RedisServer redis;
  TempDir dir;
  Node a(dir, "a", NodeConfig(dir, "a", redis.url(), "redis_timeout_ms = 300\n"));
  const std::string code = SendAndRead(a, "abc", kAbcPhone);
  redis.Pause();  // connected, but nothing answers
  for (int i = 0; i < 3; i++) {
    const auto start = SteadyClock::now();
    CheckUnavailable(a.Verify("abc", WrongCode(code)));
    const int64_t ms = MillisSince(start);
    // Redis stays paused until Resume: an answer at all is the timeout at
    // work, so the time is only reported (a loaded machine stretches it).
    MESSAGE("a verify took ", ms, " ms with redis_timeout_ms = 300");
  }
  CHECK(a.Get("/readyz").status == 503);
  CHECK(a.Get("/healthz").status == 200);
  redis.Resume();
  CHECK(WaitForStatus(a, "/readyz", 200, 60));
  // Whether a guess that timed out counted is not known; one did at most
  // before the connection was dropped, so the code still has attempts.
  CHECK(a.Verify("abc", code).status == 200);
}

TEST_CASE("redis nodes: after SCRIPT FLUSH the scripts are loaded again") {
  RedisServer redis;
  TempDir dir;
  Node a(dir, "a", NodeConfig(dir, "a", redis.url(), "send_cooldown = 0\n"));
  std::string code = SendAndRead(a, "abc", kAbcPhone);
  CHECK(a.Verify("abc", WrongCode(code)).status == 400);
  REQUIRE(redis.Call({"SCRIPT", "FLUSH"}).ok());
  CHECK(a.Verify("abc", code).status == 200);
  code = SendAndRead(a, "abc", kAbcPhone);
  REQUIRE(redis.Call({"SCRIPT", "FLUSH"}).ok());
  code = SendAndRead(a, "abc", kAbcPhone);
  CHECK(a.Verify("abc", WrongCode(code)).status == 400);
  CHECK(a.Verify("abc", code).status == 200);
  // Scripts run by SHA; a flushed one was answered NOSCRIPT and reloaded.
  CHECK(!InfoField(redis, "commandstats", "cmdstat_evalsha").empty());
  CHECK(!InfoField(redis, "errorstats", "errorstat_NOSCRIPT").empty());
}

TEST_CASE("redis nodes: every key has a TTL; no code or phone in plain text in a value") {
  RedisServer redis;
  TempDir dir;
  Node a(dir, "a", NodeConfig(dir, "a", redis.url()));
  Node b(dir, "b", NodeConfig(dir, "b", redis.url()));
  const std::string abc = SendAndRead(a, "abc", kAbcPhone);
  CHECK(b.Verify("abc", WrongCode(abc)).status == 400);  // a failure on record
  const std::string doe = SendAndRead(b, "john.doe", kDoePhone);
  CHECK(a.Verify("john.doe", doe).status == 200);
  CHECK(a.Get("/readyz").status == 200);

  const RedisReply keys = redis.Call({"KEYS", "otpd:*"});
  REQUIRE(keys.type == RedisReply::Type::kArray);
  CHECK(keys.elements.size() >= 4);  // abc's code, the index, sends, failures
  CHECK(redis.Call({"DBSIZE"}).integer == static_cast<int64_t>(keys.elements.size()));
  const std::set<std::string> codes = TextedCodes(dir);
  CHECK(codes.size() == 2);
  for (const RedisReply& key : keys.elements) {
    const int64_t pttl = redis.Call({"PTTL", key.str}).integer;
    // The secret's fingerprint, which every node must match, and the
    // marker whose loss tells that Redis lost its data, are kept on purpose
    // (storage.h, RedisOptions::secret_fingerprint).
    if (key.str != "otpd:secret-check" && key.str != "otpd:alive") {
      CHECK_MESSAGE((pttl > 0 || pttl == -2), key.str << " has PTTL " << pttl);
    }
    const std::string value = DumpKey(redis, key.str);
    for (const std::string& run : DigitRuns(value)) {
      CHECK_MESSAGE(codes.count(run) == 0, key.str << " holds a code: " << value);
    }
    for (const std::string phone : {kAbcPhone, kDoePhone}) {
      CHECK_MESSAGE(value.find(phone.substr(1)) == std::string::npos,
                    key.str << " holds a phone: " << value);
    }
  }
  MESSAGE("keys: ", keys.ToString());
}

TEST_CASE("redis nodes: Redis down at start with redis_fallback = true serves from SQLite") {
  TempDir dir;
  const std::string url = "redis://127.0.0.1:" + std::to_string(FreeLoopbackPort()) + "/0";
  Node a(dir, "a", NodeConfig(dir, "a", url, "", /*fallback=*/true));
  CHECK(a.store() == "sqlite");
  bool warned = false;
  std::istringstream lines(a.ReadLog());
  for (std::string line; std::getline(lines, line);) {
    if (line.find("using the local SQLite store") != std::string::npos) {
      warned = line.find("level=warn") != std::string::npos;
    }
  }
  CHECK_MESSAGE(warned, a.ReadLog());
  CHECK(a.Get("/readyz").status == 200);
  const std::string code = SendAndRead(a, "abc", kAbcPhone);
  CHECK(a.Verify("abc", code).status == 200);
}

TEST_CASE("redis nodes: Redis down at start with redis_fallback = false: 503 until it comes up") {
  TempDir dir;
  const int port = FreeLoopbackPort();
  const std::string url = "redis://127.0.0.1:" + std::to_string(port) + "/0";
  Node a(dir, "a", NodeConfig(dir, "a", url));
  CHECK(a.store() == "redis");
  CHECK_MESSAGE(a.ReadLog().find("level=error") != std::string::npos, a.ReadLog());
  CHECK(a.Get("/readyz").status == 503);
  CHECK(a.Get("/healthz").status == 200);
  CheckUnavailable(a.Send("abc"));
  CheckUnavailable(a.Verify("abc", "123456"));

  RedisServerOptions options;
  options.port = port;
  RedisServer redis(options);
  const auto started = SteadyClock::now();
  CHECK(WaitForStatus(a, "/readyz", 200, 60));
  MESSAGE("ready ", MillisSince(started), " ms after Redis started");
  const std::string code = SendAndRead(a, "abc", kAbcPhone);
  CHECK(a.Verify("abc", code).status == 200);
}

TEST_CASE("redis nodes: a wrong Redis password stops the start; no password is ever shown") {
  RedisServerOptions options;
  options.password = "right-password-4242";
  RedisServer redis(options);
  TempDir dir;
  const std::string host = "127.0.0.1:" + std::to_string(redis.port());
  // In the URL, with fallback on; as redis_password, with fallback off
  // (a redis_url would win over redis_host, redis_port and redis_password).
  const std::vector<std::string> configs = {
      NodeConfig(dir, "url", "redis://:wrong-password-1717@" + host + "/0", "", true),
      NodeConfig(dir, "key", "",
                 "redis_host = \"127.0.0.1\"\nredis_port = " + std::to_string(redis.port()) +
                     "\nredis_password = \"wrong-password-1717\"\n",
                 false)};
  for (const std::string& config : configs) {
    CAPTURE(config);
    const CommandResult r = RunOtpd(dir, {"serve", "--config", config});
    CHECK(r.exit_code == 1);
    CHECK(r.output().find("otpd started") == std::string::npos);
    CHECK(ToLower(r.output()).find("redis") != std::string::npos);
    CHECK(r.output().find("wrong-password-1717") == std::string::npos);
    CHECK(r.output().find("right-password-4242") == std::string::npos);
    MESSAGE("wrong password: ", r.output());
  }
  // The right one serves, and neither the log nor check-config shows it.
  const std::string config = NodeConfig(dir, "ok", redis.url());
  {
    Node ok(dir, "ok", config);
    CHECK(ok.store() == "redis");
    CHECK(ok.Verify("abc", SendAndRead(ok, "abc", kAbcPhone)).status == 200);
    CHECK(ok.ReadLog().find("right-password-4242") == std::string::npos);
  }
  const CommandResult r = RunOtpd(dir, {"check-config", "--config", config});
  CHECK(r.exit_code == 0);
  CHECK(r.output().find("redis_url") != std::string::npos);
  CHECK(r.output().find("right-password-4242") == std::string::npos);
}

}  // namespace otpd

#endif  // OTPD_REDIS
