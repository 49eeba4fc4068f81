// Black-box tests: the real ./otpd binary (or $OTPD_BIN), started with a
// config file on a free loopback port, spoken to over HTTP
// (otpd_process.h).
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <otpd_httplib.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "fake_twilio.h"
#include "otpd_process.h"
#include "redis_server.h"
#include "test_tls.h"
#include "test_util.h"

namespace otpd {
namespace {

// For tests that send several codes to one user quickly: the send limits
// are off (their own tests turn them on).
const char kNoSendLimits[] =
    "send_cooldown = 0\nsend_user_cap = 0\nsend_phone_cap = 0\nsend_ip_cap = 0\n";

// The config lines that put codes in the shared test Redis when
// TestStoreIsRedis() ("" otherwise). Every otpd started with a config from
// one TempDir shares that directory's key prefix, as they share its
// database; no fallback to SQLite, so a Redis problem fails the test.
std::string StoreConfig(const TempDir& dir) {
  if (!TestStoreIsRedis()) return "";
#ifndef OTPD_REDIS
  FAIL("OTPD_TEST_STORE=redis needs the Redis build: make REDIS=1");
#endif
  const std::string marker = dir.File(".redis_prefix");
  std::string prefix = ReadFile(marker);
  if (prefix.empty()) {
    prefix = UniqueRedisPrefix();
    WriteFile(marker, prefix);
  }
  return "store = \"redis\"\nredis_url = \"" + SharedTestRedis().url() + "\"\nredis_prefix = \"" +
         prefix + "\"\nredis_fallback = false\n";
}

std::string Config(const TempDir& dir, const std::string& sms_log, const std::string& extra = "") {
  const std::string path = dir.File(sms_log + ".conf");
  WriteFile(path, "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" + dir.File("otpd.db") +
                      "\"\nsms_log_file = \"" + dir.File(sms_log) + "\"\nthreads = 96\n" +
                      StoreConfig(dir) + extra +
                      "\n[users]\nabc = \"+12015551111\"\n\"John.Doe\" = \"+12025552222\"\n");
  return path;
}

std::map<std::string, double> Scrape(const OtpdProcess& otpd) {
  auto res = otpd.Client().Get("/metrics");
  REQUIRE(res);
  REQUIRE(res->status == 200);
  std::map<std::string, double> series;
  std::string bad;
  REQUIRE_MESSAGE(ParsePrometheus(res->body, &series, &bad), bad);
  return series;
}

// Waits up to 10 s until `log` has `count` lines with msg=`msg`.
bool WaitForLog(const std::string& log, const std::string& msg, size_t count = 1);

// The log lines whose msg is `msg`.
std::vector<std::string> LogLines(const std::string& log, const std::string& msg) {
  std::vector<std::string> out;
  std::istringstream lines(ReadFile(log));
  std::string line;
  while (std::getline(lines, line)) {
    const size_t at = line.find(" msg=" + msg);
    const size_t end = at + 5 + msg.size();
    if (at != std::string::npos && (end == line.size() || line[end] == ' ')) out.push_back(line);
  }
  return out;
}

bool WaitForLog(const std::string& log, const std::string& msg, size_t count) {
  return WaitUntil([&] { return LogLines(log, msg).size() >= count; });
}

bool SendAll(int fd, const std::string& data) {
  return send(fd, data.data(), data.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(data.size());
}

// Whether the server on 127.0.0.1:`server_port` has read every byte sent
// on the client socket `fd` so far: the server side of the connection is
// in /proc/net/tcp with an empty receive queue (a connection not yet
// accepted, or with bytes unread, shows them there).
bool ServerHasRead(int fd, int server_port) {
  sockaddr_in local{};
  socklen_t len = sizeof local;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &len) != 0) return false;
  char want[64];
  snprintf(want, sizeof want, "0100007F:%04X 0100007F:%04X", server_port, ntohs(local.sin_port));
  std::istringstream table(ReadFile("/proc/net/tcp"));
  for (std::string line; std::getline(table, line);) {
    const size_t at = line.find(want);
    if (at == std::string::npos) continue;
    // "... st tx_queue:rx_queue ...": the fields after both addresses.
    std::istringstream fields(line.substr(at + strlen(want)));
    std::string state, queues;
    fields >> state >> queues;
    const size_t colon = queues.find(':');
    return colon != std::string::npos && std::stoul(queues.substr(colon + 1), nullptr, 16) == 0;
  }
  return false;
}

// Everything the peer sends until it closes (each read waits up to 60 s,
// a hang guard).
std::string ReadAll(int fd) {
  timeval tv{60, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  return out;
}

}  // namespace

TEST_CASE("otpd binary: SIGTERM answers every request in flight, then exits 0") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log", kNoSendLimits)});
  const std::string body = R"({"user_id":"abc"})";
  const std::string head =
      "POST /send-code HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
      "Content-Type: application/json\r\nContent-Length: " +
      std::to_string(body.size()) + "\r\n\r\n";
  // Five requests whose bodies are only half sent when the signal comes.
  std::vector<int> fds;
  for (int i = 0; i < 5; i++) {
    const int fd = ConnectToLoopback(otpd.port());
    REQUIRE(fd >= 0);
    REQUIRE(SendAll(fd, head + body.substr(0, 5)));
    fds.push_back(fd);
  }
  // The signal comes once otpd has taken all five and read what was sent.
  REQUIRE(WaitUntil([&] {
    return std::all_of(fds.begin(), fds.end(),
                       [&](int fd) { return ServerHasRead(fd, otpd.port()); });
  }));
  REQUIRE(kill(otpd.pid(), SIGTERM) == 0);
  REQUIRE(WaitForLog(otpd.log(), "stopping"));
  CHECK(WaitUntil([&] {  // no longer accepting, once the listener closes
    const int fd = ConnectToLoopback(otpd.port());
    if (fd >= 0) close(fd);
    return fd < 0;
  }));
  for (int fd : fds) {
    REQUIRE(SendAll(fd, body.substr(5)));
    const std::string answer = ReadAll(fd);
    close(fd);
    CHECK_MESSAGE(answer.rfind("HTTP/1.1 200 ", 0) == 0, answer);
  }
  CHECK(otpd.Terminate() == 0);
  CHECK(WaitForLog(otpd.log(), "\"otpd stopped\""));
  // The database was closed cleanly: the last connection checkpointed and
  // removed the write-ahead log.
  struct stat st;
  CHECK(stat(dir.File("otpd.db-wal").c_str(), &st) != 0);
  CHECK(stat(dir.File("otpd.db").c_str(), &st) == 0);
}

// JOURNAL_STREAM as systemd sets it when stderr is the journal: the
// device and inode of `path` (created empty when missing).
std::string JournalStream(const std::string& path) {
  if (ReadFile(path).empty()) WriteFile(path, "");
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  return "JOURNAL_STREAM=" + std::to_string(st.st_dev) + ":" + std::to_string(st.st_ino);
}

TEST_CASE("otpd binary: under journald a priority and no ts= field; SIGINT stops it with exit 0") {
  TempDir dir;
  const std::string conf = Config(dir, "sms.log");
  // OtpdProcess opens a.log without replacing it: stderr is that file.
  OtpdProcess otpd(dir, "a", {"--config", conf}, {JournalStream(dir.File("a.log"))});
  CHECK(otpd.Client().Get("/healthz")->status == 200);
  REQUIRE(WaitForLog(otpd.log(), "request"));
  WriteFile(conf, "code_length = 99\n");  // the reload fails: an error line
  REQUIRE(kill(otpd.pid(), SIGHUP) == 0);
  REQUIRE(WaitForLog(otpd.log(), "\"reload failed; keeping the running config\""));
  REQUIRE(kill(otpd.pid(), SIGINT) == 0);
  REQUIRE(WaitForLog(otpd.log(), "\"otpd stopped\""));
  const auto stopping = LogLines(otpd.log(), "stopping");
  REQUIRE(stopping.size() == 1);
  CHECK(stopping[0] == "<6>level=info msg=stopping signal=INT");
  const auto failed = LogLines(otpd.log(), "\"reload failed; keeping the running config\"");
  REQUIRE(failed.size() == 1);
  CHECK(failed[0].rfind("<3>level=error msg=", 0) == 0);
  for (const std::string& line : LogLines(otpd.log(), "request")) {
    CHECK(line.rfind("<6>level=info msg=request ", 0) == 0);
  }
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd binary: JOURNAL_STREAM naming another file is not the journal") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log")},
                   {JournalStream(dir.File("elsewhere"))});
  CHECK(otpd.Client().Get("/healthz")->status == 200);
  REQUIRE(WaitForLog(otpd.log(), "request"));
  for (const std::string& line : LogLines(otpd.log(), "request")) {
    CHECK(line.rfind("ts=", 0) == 0);
  }
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd binary: SIGHUP re-syncs [users] and applies live settings") {
  TempDir dir;
  const std::string conf = Config(dir, "sms.log", kNoSendLimits);
  OtpdProcess otpd(dir, "a", {"--config", conf});
  auto cli = otpd.Client();
  auto res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->body.find("+1*******111") != std::string::npos);
  CHECK(cli.Post("/send-code", R"({"user_id":"newbie"})", "application/json")->status == 404);

  WriteFile(conf, "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" + dir.File("otpd.db") +
                      "\"\nsms_log_file = \"" + dir.File("sms.log") +
                      "\"\nthreads = 64\nexpose_phone = \"full\"\n" + StoreConfig(dir) +
                      kNoSendLimits +
                      "message_template = \"{app} says {code}\"\n"
                      "[users]\nabc = \"+12015551111\"\nnewbie = \"+12035553333\"\n");
  REQUIRE(kill(otpd.pid(), SIGHUP) == 0);
  REQUIRE(WaitForLog(otpd.log(), "reloaded"));
  res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->body.find("\"phone\":\"+12015551111\"") != std::string::npos);
  CHECK(ReadFile(dir.File("sms.log")).find("+12015551111 otpd says ") != std::string::npos);
  CHECK(cli.Post("/send-code", R"({"user_id":"newbie"})", "application/json")->status == 200);
  CHECK(cli.Post("/send-code", R"({"user_id":"john.doe"})", "application/json")->status == 404);
  const auto warn = LogLines(otpd.log(), "\"changed settings take effect at the next restart\"");
  REQUIRE(warn.size() == 1);
  CHECK(warn[0].find("keys=threads") != std::string::npos);
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd binary: a bad config on SIGHUP is logged and the running config kept") {
  TempDir dir;
  const std::string conf = Config(dir, "sms.log");
  OtpdProcess otpd(dir, "a", {"--config", conf});
  auto cli = otpd.Client();
  size_t n = 0;
  for (const std::string& bad : {std::string("code_length = 11\n"), std::string("not toml\n"),
                                 std::string("[users]\nabc = \"555\"\n")}) {
    WriteFile(conf, bad);
    REQUIRE(kill(otpd.pid(), SIGHUP) == 0);
    REQUIRE(WaitForLog(otpd.log(), "\"reload failed; keeping the running config\"", ++n));
  }
  const auto failed = LogLines(otpd.log(), "\"reload failed; keeping the running config\"");
  CHECK(failed[0].find("code_length") != std::string::npos);
  CHECK(LogLines(otpd.log(), "reloaded").empty());
  auto res = cli.Post("/send-code", R"({"user_id":"john.doe"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("+1*******222") != std::string::npos);
  CHECK(LastCode(dir.File("sms.log"), "+12025552222").size() == 6);
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd binary: log_file is reopened on SIGHUP (logrotate)") {
  TempDir dir;
  // The process's stderr and log_file are the same path here, so the test
  // harness finds the start line either way.
  const std::string conf = Config(dir, "sms.log", "log_file = \"" + dir.File("a.log") + "\"");
  OtpdProcess otpd(dir, "a", {"--config", conf});
  auto cli = otpd.Client();
  CHECK(cli.Get("/healthz")->status == 200);
  REQUIRE(WaitForLog(otpd.log(), "request"));
  REQUIRE(rename(dir.File("a.log").c_str(), dir.File("a.log.1").c_str()) == 0);
  REQUIRE(kill(otpd.pid(), SIGHUP) == 0);
  REQUIRE(WaitForLog(dir.File("a.log"), "reloaded"));
  CHECK(cli.Get("/readyz")->status == 200);
  REQUIRE(WaitForLog(dir.File("a.log"), "request"));
  CHECK(ReadFile(dir.File("a.log")).find("path=/readyz") != std::string::npos);
  CHECK(ReadFile(dir.File("a.log.1")).find("path=/readyz") == std::string::npos);
  CHECK(ReadFile(dir.File("a.log.1")).find("\"otpd started\"") != std::string::npos);
  struct stat st;
  REQUIRE(stat(dir.File("a.log").c_str(), &st) == 0);
  CHECK((st.st_mode & 0027) == 0);  // created 0640 (less with the umask)
  CHECK(otpd.Terminate() == 0);
}

// A database file replaced under a running otpd refuses every write. The
// audit records written behind the answers then fail on every try; they
// used to be retried at once, forever: one core busy and a warning per try
// (700 MB of log in 20 minutes). Now the tries back off and the warning
// comes once a minute, so a second later there is still one.
TEST_CASE("otpd binary: writes behind the answer that keep failing back off, one warning") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log", kNoSendLimits)});
  auto cli = otpd.Client();
  const std::string db = dir.File("otpd.db");
  // A copy renamed over the file: the same bytes, another inode.
  WriteFile(db + ".copy", ReadFile(db));
  REQUIRE(rename((db + ".copy").c_str(), db.c_str()) == 0);
  const std::string guess = R"({"user_id":"abc","passcode":"000000"})";
  for (int i = 0; i < 50; i++) {
    auto r = cli.Post("/verify-code", guess, "application/json");
    REQUIRE(r);
    CHECK(r->status != 200);
  }
  const std::string msg = "\"cannot write queued records; will retry\"";
  REQUIRE(WaitForLog(otpd.log(), msg));
  for (int i = 0; i < 50; i++) cli.Post("/verify-code", guess, "application/json");
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const std::vector<std::string> lines = LogLines(otpd.log(), msg);
  CHECK(lines.size() == 1);
  if (!lines.empty()) CHECK(lines[0].find("replaced") != std::string::npos);
  // Not ready, whichever store holds the codes: with Redis the node's
  // users, audit trail and phone verdicts are still in this file.
  auto ready = cli.Get("/readyz");
  REQUIRE(ready);
  CHECK(ready->status == 503);
  CHECK(LogLines(otpd.log(), "\"not ready\"").size() >= 1);
}

TEST_CASE("otpd users import/export: CSV and old-service lines, all or nothing, round trip") {
  TempDir dir;
  const std::string db = dir.File("otpd.db");
  WriteFile(dir.File("bad.csv"), "user_id,phone\nok,+12015551111\nbad,555\nok,+12025552222\n");
  CommandResult r = RunOtpd(dir, {"users", "import", dir.File("bad.csv"), "--database", db});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("line 3: phone '555'") != std::string::npos);
  CHECK(r.err.find("line 4: user 'ok' already on line 2") != std::string::npos);
  CHECK(RunOtpd(dir, {"users", "list", "--database", db}).out.empty());  // nothing written

  WriteFile(dir.File("users.csv"), "user_id,phone\nAmy,+12015551111\n\"Doe, J\",+12025552222\n");
  WriteFile(dir.File("mock_database.py"),
            "USER_PHONE_DATABASE = {\n    \"abc\": \"+12035553333\",\n    \"amy\": "
            "\"+12055554444\",\n}\n");
  CHECK(RunOtpd(dir, {"users", "import", dir.File("users.csv"), "--database", db}).exit_code == 0);
  r = RunOtpd(dir, {"users", "import", dir.File("mock_database.py"), "--database", db});
  CHECK(r.exit_code == 0);
  r = RunOtpd(dir, {"users", "export", "--database", db});
  CHECK(r.exit_code == 0);
  CHECK(r.out ==
        "user_id,phone,locale\nabc,+12035553333,\namy,+12055554444,\n\"doe, j\",+12025552222,\n");
  WriteFile(dir.File("export.csv"), r.out);
  const std::string db2 = dir.File("copy.db");
  CHECK(RunOtpd(dir, {"users", "import", dir.File("export.csv"), "--database", db2}).exit_code ==
        0);
  CHECK(RunOtpd(dir, {"users", "export", "--database", db2}).out == r.out);
}

TEST_CASE("otpd backup: consistent copies of a database being written, never overwriting") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log")});
  std::atomic<bool> stop{false};
  std::atomic<int> answered{0};
  std::atomic<int> requests{0};  // answered in any way: the database is written
  std::vector<std::thread> load;
  for (int t = 0; t < 4; t++) {
    load.emplace_back([&] {
      auto cli = otpd.Client();
      while (!stop) {
        auto res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
        if (res && res->status == 200) answered++;
        if (cli.Post("/verify-code", VerifyJson("abc", "000000"), "application/json")) requests++;
      }
    });
  }
  for (int i = 0; i < 3; i++) {
    const int requests_before = requests;
    REQUIRE(WaitUntil([&] { return requests > requests_before + 3; }));  // under load
    const std::string copy = dir.File("backup" + std::to_string(i) + ".db");
    CommandResult r = RunOtpd(dir, {"backup", copy, "--database", dir.File("otpd.db")});
    CHECK_MESSAGE(r.exit_code == 0, r.err);
    sqlite3* db = nullptr;
    REQUIRE(sqlite3_open_v2(copy.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK);
    std::string check, mode, users;
    auto text = [](void* out, int, char** v, char**) {
      *static_cast<std::string*>(out) = v[0] ? v[0] : "";
      return 0;
    };
    sqlite3_exec(db, "PRAGMA integrity_check", text, &check, nullptr);
    sqlite3_exec(db, "PRAGMA journal_mode", text, &mode, nullptr);
    sqlite3_exec(db, "SELECT count(*) FROM users", text, &users, nullptr);
    sqlite3_close(db);
    CHECK(check == "ok");
    CHECK(mode == "delete");
    CHECK(users == "2");
    struct stat st;
    REQUIRE(stat(copy.c_str(), &st) == 0);
    CHECK((st.st_mode & 0777) == 0600);
  }
  stop = true;
  for (auto& t : load) t.join();
  CHECK(answered > 0);
  const std::string before = ReadFile(dir.File("backup0.db"));
  CommandResult r =
      RunOtpd(dir, {"backup", dir.File("backup0.db"), "--database", dir.File("otpd.db")});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("already exists") != std::string::npos);
  CHECK(ReadFile(dir.File("backup0.db")) == before);
  r = RunOtpd(dir, {"backup", dir.File("x.db"), "--database", dir.File("missing.db")});
  CHECK(r.exit_code == 1);
}

TEST_CASE("otpd check-config: exit 0 with secrets redacted, 2 naming the bad key") {
  TempDir dir;
  const std::string conf = Config(dir, "sms.log", "secret = \"my-very-secret-value-42\"");
  CommandResult r = RunOtpd(dir, {"check-config", "--config", conf});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("my-very-secret-value-42") == std::string::npos);
  CHECK(r.out.find("secret = \"<redacted>\"") != std::string::npos);
  CHECK(r.out.find("twilio_auth_token = \"\"") != std::string::npos);
  // systemd's LoadCredential= hands the Twilio token over in a directory.
  WriteFile(dir.File("twilio_auth_token"), "from-credentials\n");
  // A token makes sms_backend = auto pick Twilio, which needs the rest.
  r = RunOtpd(dir, {"check-config", "--config", conf},
              {"CREDENTIALS_DIRECTORY=" + dir.path(),
               "TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef",
               "TWILIO_PHONE_NUMBER=+12085551111"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("twilio_auth_token = \"<redacted>\"") != std::string::npos);
  CHECK(r.out.find("from-credentials") == std::string::npos);
  WriteFile(dir.File("bad.conf"), "max_attempts = 0\n");
  r = RunOtpd(dir, {"check-config", "--config", dir.File("bad.conf")});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("max_attempts") != std::string::npos);
}

namespace {

// What one load thread of the crash test knows about its user.
struct CrashUser {
  std::string id, phone;
  std::string code;          // the last code answered 200, "" if none
  int attempts = 0;          // wrong guesses answered 400 on that code
  bool consumed = false;     // the code was verified (200)
  bool lost_send = false;    // a send got no answer: the live code is unknown
  bool lost_guess = false;   // a wrong guess got no answer: it may have counted
  bool lost_verify = false;  // a right guess got no answer: it may have consumed
  int sends = 0;
  int refused = 0;     // sends answered 429: nothing stored, the code before stays live
  int unexpected = 0;  // any other answer (the test fails on it)
};

// How far the load threads got: users with at least two codes answered.
struct CrashProgress {
  std::mutex mu;
  std::condition_variable changed;
  size_t users_with_two_sends = 0;
};

// Sends, guesses wrong, sometimes verifies, until a request gets no answer.
void CrashLoad(const OtpdProcess& otpd, const std::string& sms_log, CrashUser* u,
               CrashProgress* progress) {
  auto cli = otpd.Client();
  const std::string send = "{\"user_id\":\"" + u->id + "\"}";
  for (int i = 0;; i++) {
    auto res = cli.Post("/send-code", send, "application/json");
    if (!res) return void(u->lost_send = true);
    if (res->status == 429) {  // a known state: nothing was stored
      u->refused++;
      continue;
    }
    if (res->status != 200) return void(u->unexpected = res->status);
    u->code = LastCode(sms_log, u->phone);
    u->attempts = 0;
    u->consumed = false;
    if (++u->sends == 2) {
      std::lock_guard<std::mutex> lock(progress->mu);
      progress->users_with_two_sends++;
      progress->changed.notify_all();
    }
    res = cli.Post("/verify-code", VerifyJson(u->id, WrongCode(u->code)), "application/json");
    if (!res) return void(u->lost_guess = true);
    if (res->status != 400) return void(u->unexpected = res->status);
    u->attempts++;
    if (i % 2 == 0) continue;
    res = cli.Post("/verify-code", VerifyJson(u->id, u->code), "application/json");
    if (!res) return void(u->lost_verify = true);
    if (res->status != 200) return void(u->unexpected = res->status);
    u->consumed = true;
  }
}

// A send lost at the kill whose SMS is in the log was stored first (the
// store commits before the SMS goes out), so its code is the live one,
// with no attempts. Without its SMS the live code is unknown.
void RecoverLostSend(const std::string& sms_log, CrashUser* u) {
  if (!u->lost_send) return;
  std::istringstream lines(ReadFile(sms_log));
  int texted = 0;
  for (std::string line; std::getline(lines, line);) texted += line.rfind(u->phone + " ", 0) == 0;
  const std::string code = LastCode(sms_log, u->phone);
  if (texted != u->sends + 1 || code.size() != 6) return;
  u->code = code;
  u->attempts = 0;
  u->consumed = false;
  u->lost_send = false;
}

// attempts_remaining of a 400 invalid_code answer, -1 for anything else.
int AttemptsRemaining(const httplib::Result& res) {
  if (!res || res->status != 400) return -1;
  const std::string field = "\"attempts_remaining\":";
  const size_t at = res->body.find(field);
  return at == std::string::npos ? -1 : std::atoi(res->body.c_str() + at + field.size());
}

std::string QueryText(const std::string& db_path, const std::string& sql) {
  sqlite3* db = nullptr;
  std::string out;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) == SQLITE_OK) {
    sqlite3_exec(
        db, sql.c_str(),
        [](void* o, int, char** v, char**) {
          *static_cast<std::string*>(o) = v[0] ? v[0] : "NULL";
          return 0;
        },
        &out, nullptr);
  }
  sqlite3_close(db);
  return out;
}

}  // namespace

TEST_CASE("otpd binary: kill -9 under load loses no answered code and no attempt") {
  TempDir dir;
  std::string users = "[users]\n";
  std::vector<CrashUser> state(24);
  for (size_t i = 0; i < state.size(); i++) {
    state[i].id = "crash" + std::to_string(i);
    state[i].phone = "+120155500" + std::to_string(10 + i);
    users += state[i].id + " = \"" + state[i].phone + "\"\n";
  }
  const int kMaxAttempts = 10;
  const std::string conf = dir.File("crash.conf");
  // Every send and abuse limit off: each request of the load is answered
  // by the store, not refused before it.
  WriteFile(conf, "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" + dir.File("otpd.db") +
                      "\"\nsms_log_file = \"" + dir.File("sms.log") +
                      "\"\nmax_attempts = " + std::to_string(kMaxAttempts) +
                      "\nsend_cooldown = 0\nsend_user_cap = 0\nsend_phone_cap = 0\n"
                      "send_ip_cap = 0\nsms_budget_per_hour = 0\nverify_failure_cap = 0\n"
                      "ip_requests_per_minute = 0\npumping_detection = false\n" +
                      StoreConfig(dir) + users);
  {
    OtpdProcess otpd(dir, "a", {"--config", conf});
    CrashProgress progress;
    std::vector<std::thread> load;
    for (auto& u : state) {
      load.emplace_back(CrashLoad, std::cref(otpd), dir.File("sms.log"), &u, &progress);
    }
    {
      // Kill once every user has had two codes answered (mid-load).
      std::unique_lock<std::mutex> lock(progress.mu);
      const bool loaded = progress.changed.wait_for(lock, std::chrono::seconds(60), [&] {
        return progress.users_with_two_sends == state.size();
      });
      CHECK(loaded);
    }
    otpd.Kill9();
    for (auto& t : load) t.join();
  }
  for (CrashUser& u : state) RecoverLostSend(dir.File("sms.log"), &u);
  CHECK(QueryText(dir.File("otpd.db"), "PRAGMA integrity_check") == "ok");
  int on_disk_checked = 0;
  for (const CrashUser& u : state) {
    CHECK_MESSAGE(u.unexpected == 0, u.id << " got " << u.unexpected);
    CHECK(u.sends >= 2);
    // Codes in Redis: the attempts on disk are Redis's business; the
    // restarted otpd's answers below check them.
    if (u.lost_send || u.code.empty() || TestStoreIsRedis()) continue;
    const std::string attempts =
        QueryText(dir.File("otpd.db"), "SELECT attempts FROM otps WHERE user_id = '" + u.id + "'");
    if (u.consumed || u.lost_verify) {
      CHECK_MESSAGE((attempts.empty() || u.lost_verify), u.id);
      continue;
    }
    // Attempts never go backwards: every 400 answered is on disk.
    const int on_disk = attempts.empty() ? -1 : std::stoi(attempts);
    CHECK_MESSAGE((on_disk == u.attempts || (u.lost_guess && on_disk == u.attempts + 1)),
                  u.id << " answered " << u.attempts << ", on disk " << attempts);
    on_disk_checked++;
  }
  OtpdProcess again(dir, "b", {"--config", conf});
  auto cli = again.Client();
  int live_checked = 0, consumed_checked = 0;
  for (const CrashUser& u : state) {
    if (u.lost_send || u.code.empty() || u.lost_verify) continue;  // the live code is unknown
    if (u.consumed) {
      // A code answered 200 at verify stays consumed.
      CHECK_MESSAGE(
          cli.Post("/verify-code", VerifyJson(u.id, u.code), "application/json")->status == 404,
          u.id);
      consumed_checked++;
      continue;
    }
    // Its answered wrong guesses all count (a lost one may count too)...
    const int left = AttemptsRemaining(
        cli.Post("/verify-code", VerifyJson(u.id, WrongCode(u.code)), "application/json"));
    const int want = kMaxAttempts - u.attempts - 1;
    CHECK_MESSAGE((left == want || (u.lost_guess && left == want - 1)),
                  u.id << ": " << left << " attempts left, want " << want);
    // ...and the code answered 200 at send still verifies.
    auto res = cli.Post("/verify-code", VerifyJson(u.id, u.code), "application/json");
    REQUIRE(res);
    CHECK_MESSAGE(res->status == 200, u.id);
    live_checked++;
  }
  int sends = 0, refused = 0;
  for (const CrashUser& u : state) sends += u.sends, refused += u.refused;
  MESSAGE("crash test: ", sends, " codes sent, ", refused, " refused; after kill -9 ", live_checked,
          " live codes and ", consumed_checked, " consumed ones checked, ", on_disk_checked,
          " attempt counts on disk");
  // Only the request in flight at the kill is unknown, one per user (and
  // it is most often a send, which leaves that user's code unknown): at
  // least one code must have been checked, or the test proved nothing.
  REQUIRE(live_checked + consumed_checked >= 1);
  if (!TestStoreIsRedis()) REQUIRE(on_disk_checked >= 1);
  CHECK(again.Terminate() == 0);
}

TEST_CASE("otpd check-config: the old service's .env variables work unchanged") {
  TempDir dir;
  // env.example of the old service, as systemd's EnvironmentFile= passes it.
  const std::vector<std::pair<const char*, const char*>> env = {
      {"TWILIO_ACCOUNT_SID", "ACold0123"},
      {"TWILIO_AUTH_TOKEN", "old-token-value"},
      {"TWILIO_PHONE_NUMBER", "+1234567890"},
      {"REDIS_HOST", "localhost"},
      {"REDIS_PORT", "6379"},
      {"REDIS_DB", "0"}};
  for (const auto& [name, value] : env) setenv(name, value, 1);
  CommandResult r = RunOtpd(dir, {"check-config", "--database", dir.File("x.db")});
  for (const auto& kv : env) unsetenv(kv.first);
  CHECK_MESSAGE(r.exit_code == 0, r.err);
  CHECK(r.out.find("twilio_account_sid = \"ACold0123\"") != std::string::npos);
  CHECK(r.out.find("twilio_phone_number = \"+1234567890\"") != std::string::npos);
  CHECK(r.out.find("twilio_auth_token = \"<redacted>\"") != std::string::npos);
  CHECK(r.out.find("old-token-value") == std::string::npos);
}

TEST_CASE("otpd binary: metrics after a scripted sequence, and one access line per request") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log")});
  auto cli = otpd.Client();
  REQUIRE(cli.Post("/send-code", R"({"user_id":"ABC"})", "application/json")->status == 200);
  const std::string code = LastCode(dir.File("sms.log"), "+12015551111");
  CHECK(cli.Post("/send-code", R"({"user_id":"ghost"})", "application/json")->status == 404);
  CHECK(cli.Post("/verify-code", VerifyJson("abc", WrongCode(code)), "application/json")->status ==
        400);
  auto mid = Scrape(otpd);
  CHECK(mid["otpd_active_codes"] == 1);
  httplib::Headers id = {{"X-Request-Id", "trace-42"}};
  auto res = cli.Post("/verify-code", id, VerifyJson("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("X-Request-Id") == "trace-42");
  CHECK(cli.Post("/verify-code", VerifyJson("abc", code), "application/json")->status == 404);
  CHECK(cli.Get("/nowhere")->status == 404);
  // A request is counted just after its answer is written, by its own
  // worker thread, which a loaded machine may hold back; its access line
  // follows the count. Wait for the 7 lines so far, then scrape once (each
  // scrape counts too).
  REQUIRE(WaitForLog(otpd.log(), "request", 7));
  auto m = Scrape(otpd);
  CHECK(m[R"(otpd_sends_total{outcome="sent"})"] == 1);
  CHECK(m[R"(otpd_sends_total{outcome="user_not_found"})"] == 1);
  CHECK(m[R"(otpd_verifies_total{outcome="invalid"})"] == 1);
  CHECK(m[R"(otpd_verifies_total{outcome="ok"})"] == 1);
  CHECK(m[R"(otpd_verifies_total{outcome="not_found"})"] == 1);
  CHECK(m[R"(otpd_http_requests_total{route="/send-code",status="200"})"] == 1);
  CHECK(m[R"(otpd_http_requests_total{route="/verify-code",status="404"})"] == 1);
  CHECK(m[R"(otpd_http_requests_total{route="other",status="404"})"] == 1);
  CHECK(m[R"(otpd_http_requests_total{route="/metrics",status="200"})"] == 1);
  CHECK(m[R"(otpd_sms_send_duration_seconds_count{result="ok"})"] == 1);
  CHECK(m["otpd_active_codes"] == 0);
  CHECK(otpd.Terminate() == 0);

  // 8 requests, 8 access lines, each with every field.
  const auto lines = LogLines(otpd.log(), "request");
  REQUIRE(lines.size() == 8);
  for (const std::string& line : lines) {
    for (const char* field : {" method=", " path=", " status=", " latency=", " client=127.0.0.1",
                              " request_id=", " user_id="}) {
      CHECK_MESSAGE(line.find(field) != std::string::npos, line);
    }
  }
  // Each request has its own connection, so lines may come in any order.
  auto find = [&lines](const std::string& a, const std::string& b) {
    return std::count_if(lines.begin(), lines.end(), [&](const std::string& l) {
      return l.find(a) != std::string::npos && l.find(b) != std::string::npos;
    });
  };
  CHECK(find("path=/send-code status=200", "user_id=abc") == 1);
  CHECK(find("path=/send-code status=404", "user_id=ghost") == 1);
  CHECK(find("path=/verify-code status=200", "request_id=trace-42 user_id=abc") == 1);
  CHECK(find("path=/nowhere status=404", "user_id=-") == 1);
}

TEST_CASE("otpd binary: send and verify a code, read from sms_log_file") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"serve", "--config", Config(dir, "sms.log")});
  auto cli = otpd.Client();
  auto res = cli.Post("/send-code", R"({"user_id":"ABC"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body ==
        R"({"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+1*******111"})");
  const std::string code = LastCode(dir.File("sms.log"), "+12015551111");
  REQUIRE(code.size() == 6);
  res = cli.Post("/verify-code", VerifyJson("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  // Quoted keys of the [users] table work, case-insensitively.
  res = cli.Post("/send-code", R"({"user_id":"john.doe"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  // The code is on the console (the dev tool) but never in a log line.
  // Read after the exit: a request's log line may follow its answer.
  CHECK(otpd.Terminate() == 0);
  const std::string log = ReadFile(otpd.log());
  CHECK(log.find("to +1*******111: ") != std::string::npos);
  CHECK(log.find("msg=request") != std::string::npos);
  CHECK(log.find("otpd stopped") != std::string::npos);
}

// The old service's environment names, plus the fake's address and CA.
std::vector<std::string> TwilioEnv(const FakeTwilio& fake, const TestCa& ca) {
  return {"TWILIO_ACCOUNT_SID=AC0123456789abcdef0123456789abcdef",
          "TWILIO_AUTH_TOKEN=bb-token-0123456789", "TWILIO_PHONE_NUMBER=+12085551111",
          "OTPD_TWILIO_API_BASE=" + fake.base(), "OTPD_TWILIO_CA_FILE=" + ca.cert_file()};
}

TEST_CASE("otpd binary: Twilio through the old service's environment names") {
  TempDir dir;
  TestCa ca(dir.path(), "bb");
  FakeTwilio fake(ca.Issue("server", "IP:127.0.0.1,DNS:localhost"));
  const std::vector<std::string> env = TwilioEnv(fake, ca);

  CommandResult r = RunOtpd(dir, {"sms", "test", "+12135554567"}, env);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "sent: backend=twilio id=SM0123456789abcdef0123456789abcdef\n");
  REQUIRE(fake.requests().size() == 1);
  CHECK(fake.requests()[0].form["From"] == "+12085551111");

  r = RunOtpd(dir, {"check-config"}, env);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("sms_backend in effect: twilio") != std::string::npos);
  CHECK(r.out.find("bb-token") == std::string::npos);

  // sms_log_file is set, but auto picks Twilio: the code goes to the fake.
  OtpdProcess otpd(dir, "a", {"serve", "--config", Config(dir, "sms.log", kNoSendLimits)}, env);
  auto cli = otpd.Client();
  auto res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  REQUIRE(fake.requests().size() == 2);
  CHECK(fake.requests()[1].form["To"] == "+12015551111");
  const std::string code = FindCode(fake.requests()[1].form["Body"]);
  REQUIRE(code.size() == 6);
  res = cli.Post("/verify-code", VerifyJson("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);

  // Twilio refuses: 500 sms_failed with provider_code, and no code left.
  fake.Respond([](int, httplib::Response& r400) {
    r400.status = 400;
    r400.set_content(TwilioErrorJson(21608, 400), "application/json");
  });
  res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 500);
  CHECK(res->body.find("\"sms_failed\"") != std::string::npos);
  CHECK(res->body.find("\"provider_code\":21608") != std::string::npos);
  const std::string log = ReadFile(otpd.log());
  CHECK(log.find("twilio_code=21608") != std::string::npos);
  CHECK(log.find("bb-token") == std::string::npos);
  CHECK(log.find("code is") == std::string::npos);  // no message body in the log
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd binary: a Twilio error naming the number in any form logs it masked") {
  TempDir dir;
  TestCa ca(dir.path(), "bm");
  FakeTwilio fake(ca.Issue("server", "IP:127.0.0.1,DNS:localhost"));
  OtpdProcess otpd(dir, "a", {"serve", "--config", Config(dir, "sms.log", kNoSendLimits)},
                   TwilioEnv(fake, ca));
  // The user's number +12015551111 as Twilio and carriers write it.
  fake.Respond([](int, httplib::Response& r) {
    r.status = 400;
    r.set_content(
        "{\"code\":21211,\"message\":\"The 'To' number +1 (201) 555-1111 is not valid; also "
        "tried 1-201-555-1111, (201) 555 1111, 201.555.1111 and 12015551111\","
        "\"more_info\":\"https://www.twilio.com/docs/errors/21211\",\"status\":400}",
        "application/json");
  });
  auto res = otpd.Client().Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 500);
  CHECK(otpd.Terminate() == 0);
  const std::string log = ReadFile(otpd.log());
  CHECK(log.find("twilio_code=21211") != std::string::npos);
  CHECK(log.find("is not valid") != std::string::npos);  // the message is kept, masked
  // No run of the number's digits survives, whatever the separators a
  // number is written with (other characters end a run, so the digits of a
  // timestamp and a port next to it do not make one by chance).
  std::string digits;
  for (char c : log) {
    if (std::isdigit(static_cast<unsigned char>(c))) {
      digits += c;
    } else if (std::string(" -.()+").find(c) == std::string::npos) {
      digits += '|';
    }
  }
  CHECK(digits.find("5551111") == std::string::npos);
  for (const char* form : {"555-1111", "555 1111", "555.1111", "(201)"}) {
    CAPTURE(form);
    CHECK(log.find(form) == std::string::npos);
  }
}

TEST_CASE("otpd binary: 64 concurrent wrong guesses consume exactly max_attempts" *
          doctest::test_suite("tsan")) {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log")});
  auto cli = otpd.Client();
  REQUIRE(cli.Post("/send-code", R"({"user_id":"abc"})", "application/json")->status == 200);
  const std::string code = LastCode(dir.File("sms.log"), "+12015551111");
  std::map<int, int> counts = ConcurrentWrongGuesses({&otpd}, "abc", 64, code);
  CHECK(counts[400] == 3);
  CHECK(counts[429] == 61);
  auto res = cli.Post("/verify-code", VerifyJson("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 429);  // locked: the right code too
  CHECK(res->get_header_value("Retry-After") != "");
}

TEST_CASE("otpd binary: two processes on one database file share codes and counters" *
          doctest::test_suite("tsan")) {
  TempDir dir;
  OtpdProcess a(dir, "a", {"--config", Config(dir, "a.sms", "send_cooldown = 0")});
  OtpdProcess b(dir, "b", {"--config", Config(dir, "b.sms", "send_cooldown = 0")});
  REQUIRE(a.port() != b.port());
  auto ca = a.Client();
  auto cb = b.Client();
  REQUIRE(ca.Post("/send-code", R"({"user_id":"abc"})", "application/json")->status == 200);
  std::string code = LastCode(dir.File("a.sms"), "+12015551111");
  std::map<int, int> counts = ConcurrentWrongGuesses({&a, &b}, "abc", 64, code);
  CHECK(counts[400] == 3);
  CHECK(counts[429] == 61);
  // Sent by b, verified by a.
  REQUIRE(cb.Post("/send-code", R"({"user_id":"abc"})", "application/json")->status == 200);
  code = LastCode(dir.File("b.sms"), "+12015551111");
  auto res = ca.Post("/verify-code", VerifyJson("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  res = cb.Post("/verify-code", VerifyJson("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 404);  // single use across processes
}

TEST_CASE("otpd binary: users edited with plain SQL and the CLI are seen live") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log")});
  auto cli = otpd.Client();
  CHECK(cli.Post("/send-code", R"({"user_id":"sqluser"})", "application/json")->status == 404);
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.File("otpd.db").c_str(), &db) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  REQUIRE(sqlite3_exec(db, "INSERT INTO users(user_id, phone) VALUES ('SqlUser', '+12035553333')",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  // The schema refuses a phone that is not E.164.
  CHECK(sqlite3_exec(db, "INSERT INTO users(user_id, phone) VALUES ('bad', '555-1234')", nullptr,
                     nullptr, nullptr) != SQLITE_OK);
  sqlite3_close(db);
  auto res = cli.Post("/send-code", R"({"user_id":"sqluser"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("+1*******333") != std::string::npos);

  CommandResult r =
      RunOtpd(dir, {"users", "add", "CliUser", "+12055554444", "--database", dir.File("otpd.db")});
  CHECK(r.exit_code == 0);
  CHECK(cli.Post("/send-code", R"({"user_id":"cliuser"})", "application/json")->status == 200);
  r = RunOtpd(dir, {"users", "remove", "cliuser", "--database", dir.File("otpd.db")});
  CHECK(r.exit_code == 0);
  CHECK(cli.Post("/send-code", R"({"user_id":"cliuser"})", "application/json")->status == 404);
}

TEST_CASE("otpd users: add, list, remove; bad input is a clear error and writes nothing") {
  TempDir dir;
  const std::string db = dir.File("otpd.db");
  CHECK(RunOtpd(dir, {"users", "add", "Zed", "+12155555555", "--database", db}).exit_code == 0);
  CHECK(RunOtpd(dir, {"--database", db, "users", "add", "amy", "+12165556666"}).exit_code == 0);
  CommandResult r = RunOtpd(dir, {"users", "list", "--database", db});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "amy\t+12165556666\t-\nzed\t+12155555555\t-\n");
  r = RunOtpd(dir, {"users", "add", "bob", "555-1234", "--database", db});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("555-1234") != std::string::npos);
  r = RunOtpd(dir, {"users", "add", "", "+12175557777", "--database", db});
  CHECK(r.exit_code != 0);
  r = RunOtpd(dir, {"users", "remove", "nobody", "--database", db});
  CHECK(r.exit_code != 0);
  CHECK(RunOtpd(dir, {"users", "list", "--database", db}).out ==
        "amy\t+12165556666\t-\nzed\t+12155555555\t-\n");
  struct stat st;
  REQUIRE(stat(db.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("otpd binary: --version, --help, and a bad value stops the start naming the key") {
  TempDir dir;
  CommandResult r = RunOtpd(dir, {"--version"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.rfind("otpd ", 0) == 0);
  r = RunOtpd(dir, {"--help"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("--code-length") != std::string::npos);
  r = RunOtpd(dir, {"serve", "--code-length", "11", "--database", dir.File("x.db")});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("code_length") != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  WriteFile(dir.File("bad.conf"), "expose_phone = \"partial\"\n");
  r = RunOtpd(dir, {"--config", dir.File("bad.conf")});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("expose_phone") != std::string::npos);
  struct stat st;
  CHECK(stat(dir.File("x.db").c_str(), &st) != 0);  // nothing was created
}

TEST_CASE("otpd binary: the secret file is created 0600 beside the database") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log")});
  struct stat st;
  REQUIRE(stat(dir.File("otpd.secret").c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd binary: a resend answers 429 with Retry-After, across processes and restarts") {
  TempDir dir;
  const std::string config = Config(dir, "sms.log", "send_cooldown = 600");
  {
    OtpdProcess a(dir, "a", {"--config", config});
    auto res = a.Client().Post("/send-code", R"({"user_id":"abc"})", "application/json");
    REQUIRE(res);
    CHECK(res->status == 200);
    OtpdProcess b(dir, "b", {"--config", config});
    res = b.Client().Post("/send-code", R"({"user_id":"abc"})", "application/json");
    REQUIRE(res);
    CHECK(res->status == 429);
  }
  const std::string texted = ReadFile(dir.File("sms.log"));
  OtpdProcess c(dir, "c", {"--config", config});  // after both stopped
  auto res = c.Client().Post("/send-code", R"({"user_id":"ABC"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 429);
  const int retry = atoi(res->get_header_value("Retry-After").c_str());
  CHECK(retry > 590);
  CHECK(retry <= 600);
  CHECK(res->body.find("\"error_type\":\"rate_limited\"") != std::string::npos);
  CHECK(res->body.find("\"retry_after\":" + std::to_string(retry) + "}") != std::string::npos);
  CHECK(ReadFile(dir.File("sms.log")) == texted);  // nothing more was sent
}

TEST_CASE(
    "otpd binary: allowed_country_codes refuses other countries; a bad list stops the start") {
  TempDir dir;
  OtpdProcess otpd(dir, "a",
                   {"--config", Config(dir, "sms.log", "allowed_country_codes = \"44\"")});
  auto res = otpd.Client().Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 429);
  CHECK(res->get_header_value("Retry-After") == "3600");
  CommandResult r = RunOtpd(dir, {"--config", Config(dir, "x", "allowed_country_codes = \"+1\"")});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("allowed_country_codes") != std::string::npos);
}

// Whether otpd's log comes to show `text` (the access log line is written
// after the answer has gone out; WaitUntil's guard only ends a hang).
bool LogShows(const OtpdProcess& otpd, const std::string& text) {
  return WaitUntil([&] { return ReadFile(otpd.log()).find(text) != std::string::npos; });
}

// GET /healthz from 127.0.0.1 claiming to forward for `xff` ("" for none).
int HealthzVia(const OtpdProcess& otpd, const std::string& xff, std::string* retry_after) {
  httplib::Headers headers;
  if (!xff.empty()) headers.emplace("X-Forwarded-For", xff);
  auto res = otpd.Client().Get("/healthz", headers);
  REQUIRE(res);
  if (retry_after != nullptr) *retry_after = res->get_header_value("Retry-After");
  return res->status;
}

TEST_CASE("otpd binary: per-IP limit, X-Forwarded-For believed only from trusted_proxies") {
  TempDir dir;
  const std::string limits = "ip_requests_per_minute = 1\nip_burst = 2\n";
  OtpdProcess trusting(dir, "t",
                       {"--config", Config(dir, "t", limits + "trusted_proxies = \"127.0.0.1\"")});
  std::string retry;
  CHECK(HealthzVia(trusting, "6.6.6.6, 198.51.100.1", nullptr) == 200);
  CHECK(HealthzVia(trusting, "198.51.100.1", nullptr) == 200);
  CHECK(HealthzVia(trusting, "7.7.7.7,198.51.100.1", &retry) == 429);  // same client
  CHECK(retry == "60");
  CHECK(HealthzVia(trusting, "198.51.100.2", nullptr) == 200);  // another client
  CHECK(LogShows(trusting, "client=198.51.100.2"));

  OtpdProcess plain(dir, "p", {"--config", Config(dir, "p", limits)});
  CHECK(HealthzVia(plain, "198.51.100.1", nullptr) == 200);
  CHECK(HealthzVia(plain, "198.51.100.2", nullptr) == 200);
  CHECK(HealthzVia(plain, "198.51.100.3", &retry) == 429);  // all count as 127.0.0.1
  CHECK(retry == "60");
  REQUIRE(LogShows(plain, "status=429"));
  CHECK(ReadFile(plain.log()).find("client=198.51.100") == std::string::npos);
}

TEST_CASE("otpd binary: api_keys_file: 401 without the key, /healthz open, 0644 file refused") {
  TempDir dir;
  const std::string keys = dir.File("keys");
  WriteFile(keys, "# keys\nsecret-key-0123456789\n");
  REQUIRE(chmod(keys.c_str(), 0600) == 0);
  OtpdProcess otpd(dir, "a",
                   {"--config", Config(dir, "sms.log", "api_keys_file = \"" + keys + "\"")});
  auto cli = otpd.Client();
  auto res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 401);
  CHECK(res->get_header_value("WWW-Authenticate") == "Bearer");
  CHECK(res->body.find("\"error_type\":\"unauthorized\"") != std::string::npos);
  res = cli.Get("/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
  res = cli.Post("/send-code", {{"Authorization", "Bearer secret-key-0123456789"}},
                 R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);

  REQUIRE(chmod(keys.c_str(), 0644) == 0);
  CommandResult r =
      RunOtpd(dir, {"--config", Config(dir, "x", "api_keys_file = \"" + keys + "\"")});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("chmod 600") != std::string::npos);
}

TEST_CASE("otpd audit: prints the trail of the running server's sends and verifies") {
  TempDir dir;
  const std::string config = Config(dir, "sms.log");
  {
    OtpdProcess otpd(dir, "a", {"--config", config});
    auto cli = otpd.Client();
    REQUIRE(cli.Post("/send-code", R"({"user_id":"abc"})", "application/json"));
    REQUIRE(cli.Post("/verify-code", VerifyJson("abc", "000000x"), "application/json"));
    REQUIRE(cli.Post("/send-code", R"({"user_id":"john.doe"})", "application/json"));
    // Audit records are written behind the requests; a clean stop writes
    // what is still queued.
    CHECK(otpd.Terminate() == 0);
  }
  CommandResult r = RunOtpd(dir, {"audit", "--user", "ABC", "--config", config});
  CHECK(r.exit_code == 0);
  std::istringstream lines(r.out);
  std::vector<std::string> rows;
  for (std::string line; std::getline(lines, line);) rows.push_back(line);
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].find("\tabc\t+1*******111\t127.0.0.1\tsend\tsent") != std::string::npos);
  CHECK(rows[1].find("\tabc\t-\t127.0.0.1\tverify\tinvalid_code") != std::string::npos);
  r = RunOtpd(dir, {"audit", "--since", "2000-01-01", "--config", config});
  CHECK(std::count(r.out.begin(), r.out.end(), '\n') == 3);
  r = RunOtpd(dir, {"audit", "--since", "soon", "--config", config});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("--since 'soon'") != std::string::npos);
}

TEST_CASE("otpd binary: a second secret on one database is refused with one line") {
  TempDir dir;
  if (TestStoreIsRedis()) return;  // the Redis store's check: redis_nodes_test
  const std::string conf = Config(dir, "sms.log");
  {
    OtpdProcess a(dir, "a", {"--config", conf});
    CHECK(a.Terminate() == 0);
  }
  // A lost otpd.secret: a new one is generated, and its codes would never
  // match the ones in the file.
  const std::string first_secret = ReadFile(dir.File("otpd.secret"));
  REQUIRE(!first_secret.empty());
  REQUIRE(unlink(dir.File("otpd.secret").c_str()) == 0);
  CommandResult r = RunOtpd(dir, {"--config", conf});
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("another secret") != std::string::npos);
  CHECK(r.err.find("sqlite3 " + dir.File("otpd.db")) != std::string::npos);
  CHECK(std::count(r.err.begin(), r.err.end(), '\n') == 1);
  CHECK(r.err.find(first_secret) == std::string::npos);
  // The secret the file was started with is welcome again.
  WriteFile(dir.File("otpd.secret"), first_secret);
  REQUIRE(chmod(dir.File("otpd.secret").c_str(), 0600) == 0);
  OtpdProcess again(dir, "b", {"--config", conf});
  CHECK(again.Terminate() == 0);
}

TEST_CASE("otpd binary: a second otpd on a port in use exits 1 with one line naming it") {
  TempDir dir;
  OtpdProcess first(dir, "a", {"--config", Config(dir, "sms.log")});
  const std::string where = "127.0.0.1:" + std::to_string(first.port());
  CommandResult second =
      RunOtpd(dir, {"serve", "--listen", "127.0.0.1", "--port", std::to_string(first.port()),
                    "--database", dir.File("second.db"), "--log-level", "warn"});
  CHECK(second.exit_code == 1);
  CHECK(second.out.empty());
  CHECK(second.err == "otpd: listen: cannot listen on " + where + ": Address already in use\n");
  auto res = first.Client().Get("/healthz");  // the first one still has the port to itself
  REQUIRE(res);
  CHECK(res->status == 200);
}

}  // namespace otpd
