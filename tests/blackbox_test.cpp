// Black-box tests: the real ./otpd binary (or $OTPD_BIN), started with a
// config file on a free loopback port, spoken to over HTTP.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <httplib.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>
#include <vector>

#include "test_util.h"

namespace otpd {
namespace {

std::string Binary() {
  const char* bin = getenv("OTPD_BIN");
  return bin && *bin ? bin : "./otpd";
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};

// Runs otpd with `args` to completion, capturing stdout and stderr.
CommandResult RunOtpd(const TempDir& dir, const std::vector<std::string>& args) {
  const std::string out = dir.File("cmd.out"), err = dir.File("cmd.err");
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    int o = open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    int e = open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
    dup2(o, 1);
    dup2(e, 2);
    std::vector<char*> argv;
    std::string bin = Binary();
    argv.push_back(&bin[0]);
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  CommandResult r;
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  return r;
}

// A running `otpd serve`, stopped by PID when destroyed.
class OtpdProcess {
 public:
  OtpdProcess(const TempDir& dir, const std::string& name, const std::vector<std::string>& args)
      : log_(dir.File(name + ".log")) {
    pid_ = fork();
    REQUIRE(pid_ >= 0);
    if (pid_ == 0) {
      int e = open(log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
      dup2(e, 2);
      std::vector<char*> argv;
      std::string bin = Binary();
      argv.push_back(&bin[0]);
      for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
      argv.push_back(nullptr);
      execv(bin.c_str(), argv.data());
      _exit(127);
    }
    WaitForPort();
  }
  ~OtpdProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }

  int port() const { return port_; }
  const std::string& log() const { return log_; }
  httplib::Client Client() const {
    httplib::Client c("127.0.0.1", port_);
    c.set_connection_timeout(5);
    c.set_read_timeout(10);
    return c;
  }

  // SIGTERM, then the exit code (-1 if it did not exit within 10 s).
  int Terminate() {
    kill(pid_, SIGTERM);
    for (int i = 0; i < 1000; i++) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      usleep(10000);
    }
    return -1;
  }

 private:
  // otpd logs "otpd started ... port=N" once it accepts connections.
  void WaitForPort() {
    for (int i = 0; i < 1000 && port_ == 0; i++) {
      std::string log = ReadFile(log_);
      size_t at = log.find("msg=\"otpd started\"");
      if (at != std::string::npos) {
        size_t p = log.find(" port=", at);
        if (p != std::string::npos) port_ = atoi(log.c_str() + p + 6);
      }
      int status = 0;
      if (port_ == 0 && waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL("otpd exited at start: " << log);
      }
      if (port_ == 0) usleep(10000);
    }
    REQUIRE_MESSAGE(port_ > 0, ReadFile(log_));
  }

  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
};

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string Config(const TempDir& dir, const std::string& sms_log, const std::string& extra = "") {
  const std::string path = dir.File(sms_log + ".conf");
  WriteFile(path, "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" + dir.File("otpd.db") +
                      "\"\nsms_log_file = \"" + dir.File(sms_log) + "\"\nthreads = 96\n" + extra +
                      "\n[users]\nabc = \"+11111111111\"\n\"John.Doe\" = \"+12222222222\"\n");
  return path;
}

// The last code texted to `phone`, from a console sender's log file.
std::string LastCode(const std::string& sms_log, const std::string& phone) {
  std::istringstream lines(ReadFile(sms_log));
  std::string line, code;
  while (std::getline(lines, line)) {
    if (line.rfind(phone + " ", 0) == 0) code = FindCode(line.substr(phone.size()));
  }
  return code;
}

std::string VerifyBody(const std::string& user, const std::string& code) {
  return "{\"user_id\":\"" + user + "\",\"passcode\":\"" + code + "\"}";
}

std::string Wrong(const std::string& code) {
  std::string w = code;
  w[0] = w[0] == '9' ? '0' : static_cast<char>(w[0] + 1);
  return w;
}

// Fires one wrong guess per client at once; returns the count per status.
std::map<int, int> ConcurrentWrongGuesses(const std::vector<const OtpdProcess*>& nodes, int n,
                                          const std::string& code) {
  std::atomic<bool> go{false};
  std::atomic<int> ready{0};
  std::vector<int> statuses(static_cast<size_t>(n), 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; i++) {
    threads.emplace_back([&, i] {
      httplib::Client cli = nodes[static_cast<size_t>(i) % nodes.size()]->Client();
      ready++;
      while (!go) std::this_thread::yield();
      auto res = cli.Post("/verify-code", VerifyBody("abc", Wrong(code)), "application/json");
      statuses[static_cast<size_t>(i)] = res ? res->status : -1;
    });
  }
  while (ready < n) std::this_thread::yield();
  go = true;
  for (auto& t : threads) t.join();
  std::map<int, int> counts;
  for (int s : statuses) counts[s]++;
  return counts;
}

}  // namespace

TEST_CASE("otpd binary: send and verify a code, read from sms_log_file") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"serve", "--config", Config(dir, "sms.log")});
  auto cli = otpd.Client();
  auto res = cli.Post("/send-code", R"({"user_id":"ABC"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body ==
        R"({"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+1*******111"})");
  const std::string code = LastCode(dir.File("sms.log"), "+11111111111");
  REQUIRE(code.size() == 6);
  res = cli.Post("/verify-code", VerifyBody("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  // Quoted keys of the [users] table work, case-insensitively.
  res = cli.Post("/send-code", R"({"user_id":"john.doe"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  // The code is on the console (the dev tool) but never in a log line.
  std::string log = ReadFile(otpd.log());
  CHECK(log.find("to +1*******111: ") != std::string::npos);
  CHECK(log.find("msg=request") != std::string::npos);
  CHECK(otpd.Terminate() == 0);
  CHECK(ReadFile(otpd.log()).find("otpd stopped") != std::string::npos);
}

TEST_CASE("otpd binary: 64 concurrent wrong guesses consume exactly max_attempts") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log")});
  auto cli = otpd.Client();
  REQUIRE(cli.Post("/send-code", R"({"user_id":"abc"})", "application/json")->status == 200);
  const std::string code = LastCode(dir.File("sms.log"), "+11111111111");
  std::map<int, int> counts = ConcurrentWrongGuesses({&otpd}, 64, code);
  CHECK(counts[400] == 3);
  CHECK(counts[429] == 61);
  auto res = cli.Post("/verify-code", VerifyBody("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 429);  // locked: the right code too
  CHECK(res->get_header_value("Retry-After") != "");
}

TEST_CASE("otpd binary: two processes on one database file share codes and counters") {
  TempDir dir;
  OtpdProcess a(dir, "a", {"--config", Config(dir, "a.sms", "send_cooldown = 0")});
  OtpdProcess b(dir, "b", {"--config", Config(dir, "b.sms", "send_cooldown = 0")});
  REQUIRE(a.port() != b.port());
  auto ca = a.Client();
  auto cb = b.Client();
  REQUIRE(ca.Post("/send-code", R"({"user_id":"abc"})", "application/json")->status == 200);
  std::string code = LastCode(dir.File("a.sms"), "+11111111111");
  std::map<int, int> counts = ConcurrentWrongGuesses({&a, &b}, 64, code);
  CHECK(counts[400] == 3);
  CHECK(counts[429] == 61);
  // Sent by b, verified by a.
  REQUIRE(cb.Post("/send-code", R"({"user_id":"abc"})", "application/json")->status == 200);
  code = LastCode(dir.File("b.sms"), "+11111111111");
  auto res = ca.Post("/verify-code", VerifyBody("abc", code), "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  res = cb.Post("/verify-code", VerifyBody("abc", code), "application/json");
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
  REQUIRE(sqlite3_exec(db, "INSERT INTO users(user_id, phone) VALUES ('SqlUser', '+13333333333')",
                       nullptr, nullptr, nullptr) == SQLITE_OK);
  // The schema refuses a phone that is not E.164.
  CHECK(sqlite3_exec(db, "INSERT INTO users(user_id, phone) VALUES ('bad', '555-1234')", nullptr,
                     nullptr, nullptr) != SQLITE_OK);
  sqlite3_close(db);
  auto res = cli.Post("/send-code", R"({"user_id":"sqluser"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body.find("+1*******333") != std::string::npos);

  CommandResult r = RunOtpd(dir, {"users", "add", "CliUser", "+14444444444", "--database",
                                  dir.File("otpd.db")});
  CHECK(r.exit_code == 0);
  CHECK(cli.Post("/send-code", R"({"user_id":"cliuser"})", "application/json")->status == 200);
  r = RunOtpd(dir, {"users", "remove", "cliuser", "--database", dir.File("otpd.db")});
  CHECK(r.exit_code == 0);
  CHECK(cli.Post("/send-code", R"({"user_id":"cliuser"})", "application/json")->status == 404);
}

TEST_CASE("otpd users: add, list, remove; bad input is a clear error and writes nothing") {
  TempDir dir;
  const std::string db = dir.File("otpd.db");
  CHECK(RunOtpd(dir, {"users", "add", "Zed", "+15555555555", "--database", db}).exit_code == 0);
  CHECK(RunOtpd(dir, {"--database", db, "users", "add", "amy", "+16666666666"}).exit_code == 0);
  CommandResult r = RunOtpd(dir, {"users", "list", "--database", db});
  CHECK(r.exit_code == 0);
  CHECK(r.out == "amy\t+16666666666\nzed\t+15555555555\n");
  r = RunOtpd(dir, {"users", "add", "bob", "555-1234", "--database", db});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("555-1234") != std::string::npos);
  r = RunOtpd(dir, {"users", "add", "", "+17777777777", "--database", db});
  CHECK(r.exit_code != 0);
  r = RunOtpd(dir, {"users", "remove", "nobody", "--database", db});
  CHECK(r.exit_code != 0);
  CHECK(RunOtpd(dir, {"users", "list", "--database", db}).out ==
        "amy\t+16666666666\nzed\t+15555555555\n");
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

TEST_CASE("otpd binary: allowed_country_codes refuses other countries; a bad list stops the start") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log", "allowed_country_codes = \"44\"")});
  auto res = otpd.Client().Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 429);
  CHECK(res->get_header_value("Retry-After") == "3600");
  CommandResult r = RunOtpd(dir, {"--config", Config(dir, "x", "allowed_country_codes = \"+1\"")});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("allowed_country_codes") != std::string::npos);
}

// Whether otpd's log shows `text` within two seconds (the access log line
// is written after the answer has gone out).
bool LogShows(const OtpdProcess& otpd, const std::string& text) {
  for (int i = 0; i < 200; i++) {
    if (ReadFile(otpd.log()).find(text) != std::string::npos) return true;
    usleep(10000);
  }
  return false;
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
  OtpdProcess trusting(dir, "t", {"--config", Config(dir, "t", limits +
                                                     "trusted_proxies = \"127.0.0.1\"")});
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
  OtpdProcess otpd(dir, "a", {"--config", Config(dir, "sms.log", "api_keys_file = \"" + keys + "\"")});
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
  CommandResult r = RunOtpd(dir, {"--config", Config(dir, "x", "api_keys_file = \"" + keys + "\"")});
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
    REQUIRE(cli.Post("/verify-code", VerifyBody("abc", "000000x"), "application/json"));
    REQUIRE(cli.Post("/send-code", R"({"user_id":"john.doe"})", "application/json"));
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
  CHECK(r.exit_code == 1);
  CHECK(r.err.find("--since 'soon'") != std::string::npos);
}

}  // namespace otpd
