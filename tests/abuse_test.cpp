// Black-box tests of the abuse limits against the real ./otpd binary
// (otpd_process.h): the region allow-list, the per-client key for IPv6,
// and concealment of unknown users (budget, phone length, metrics).
#include <doctest/doctest.h>
#include <otpd_httplib.h>
#include <sqlite3.h>
#include <unistd.h>

#include <cstdlib>
#include <map>
#include <regex>
#include <set>
#include <string>
#include <vector>

#include "core/phone.h"
#include "otpd_process.h"
#include "redis_server.h"
#include "test_util.h"

namespace otpd {
namespace {

// The config lines that put codes in the shared test Redis when
// TestStoreIsRedis() ("" otherwise); one prefix per TempDir.
std::string AbuseStoreConfig(const TempDir& dir) {
  if (!TestStoreIsRedis()) return "";
  const std::string marker = dir.File(".redis_prefix");
  std::string prefix = ReadFile(marker);
  if (prefix.empty()) {
    prefix = UniqueRedisPrefix();
    WriteFile(marker, prefix);
  }
  return "store = \"redis\"\nredis_url = \"" + SharedTestRedis().url() + "\"\nredis_prefix = \"" +
         prefix + "\"\nredis_fallback = false\n";
}

// A config with `extra` settings and `users` ("id = \"phone\"" lines);
// X-Forwarded-For from the loopback is believed, so a test picks the
// client address.
std::string AbuseConfig(const TempDir& dir, const std::string& name, const std::string& extra,
                        const std::string& users) {
  const std::string path = dir.File(name + ".conf");
  WriteFile(path, "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" + dir.File("otpd.db") +
                      "\"\nsms_log_file = \"" + dir.File("sms.log") +
                      "\"\ntrusted_proxies = \"127.0.0.1\"\n" + AbuseStoreConfig(dir) + extra +
                      "\n[users]\n" + users);
  return path;
}

// POST /send-code for `user` as client `ip`; the answer (REQUIREd).
httplib::Result SendFrom(const OtpdProcess& otpd, const std::string& user,
                         const std::string& ip = "192.0.2.1") {
  httplib::Headers headers = {{"X-Forwarded-For", ip}};
  auto res = otpd.Client().Post("/send-code", headers, "{\"user_id\":\"" + user + "\"}",
                                "application/json");
  REQUIRE(res);
  return res;
}

std::string PhoneIn(const std::string& body) {
  std::smatch m;
  static const std::regex kPhone("\"phone\":\"([^\"]*)\"");
  return std::regex_search(body, m, kPhone) ? m[1].str() : "";
}

void InsertUser(const TempDir& dir, const std::string& id, const std::string& phone) {
  sqlite3* db = nullptr;
  REQUIRE(sqlite3_open(dir.File("otpd.db").c_str(), &db) == SQLITE_OK);
  sqlite3_busy_timeout(db, 5000);
  const std::string sql =
      "INSERT INTO users(user_id, phone) VALUES ('" + id + "', '" + phone + "')";
  CHECK(sqlite3_exec(db, sql.c_str(), nullptr, nullptr, nullptr) == SQLITE_OK);
  sqlite3_close(db);
}

double Series(const OtpdProcess& otpd, const std::string& name) {
  auto res = otpd.Client().Get("/metrics");
  REQUIRE(res);
  std::map<std::string, double> series;
  std::string bad;
  REQUIRE_MESSAGE(ParsePrometheus(res->body, &series, &bad), bad);
  auto it = series.find(name);
  return it == series.end() ? -1 : it->second;
}

const char kOpenLimits[] =
    "send_cooldown = 0\nsend_user_cap = 0\nsend_phone_cap = 0\nsend_ip_cap = 0\n";

}  // namespace

TEST_CASE("otpd binary: allowed_regions = US refuses Jamaica inside +1; every form normalised") {
  TempDir dir;
  const std::string users =
      "abc = \"+12015551111\"\njam = \"+1 876 210 1234\"\nsf = \"+1 (415) 555-0123\"\n";
  OtpdProcess otpd(dir, "a",
                   {"--config", AbuseConfig(dir, "a", "allowed_regions = \"US,GB\"\n", users)});
  CHECK(SendFrom(otpd, "jam")->status == 429);
  CHECK(SendFrom(otpd, "abc")->status == 200);
  CHECK(SendFrom(otpd, "sf")->status == 200);
  CHECK(!LastCode(dir.File("sms.log"), "+14155550123").empty());  // [users] normalised
  CHECK(LastCode(dir.File("sms.log"), "+18762101234").empty());
  // Plain SQL: read back normalised; a VoIP number refused at send time.
  InsertUser(dir, "london", "+4402079460018");
  InsertUser(dir, "voip", "+445612345678");
  CHECK(SendFrom(otpd, "london")->status == 200);
  CHECK(!LastCode(dir.File("sms.log"), "+442079460018").empty());
  CHECK(SendFrom(otpd, "voip")->status == 429);

  // The CLI normalises too, and refuses invalid and premium-rate numbers.
  const std::string db = dir.File("otpd.db");
  CHECK(RunOtpd(dir, {"users", "add", "cli", "+1 (212) 555-0111", "--database", db}).exit_code ==
        0);
  CHECK(RunOtpd(dir, {"users", "list", "--database", db}).out.find("cli\t+12125550111\t-\n") !=
        std::string::npos);
  CommandResult r = RunOtpd(dir, {"users", "add", "bad", "+11111111111", "--database", db});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("not a valid number") != std::string::npos);
  r = RunOtpd(dir, {"users", "add", "premium", "+1 900 555 0111", "--database", db});
  CHECK(r.exit_code != 0);
  CHECK(r.err.find("premium_rate") != std::string::npos);
}

TEST_CASE("otpd binary: allowed_country_codes = 1 warns that it admits many regions") {
  TempDir dir;
  OtpdProcess wide(dir, "w",
                   {"--config", AbuseConfig(dir, "w", "allowed_country_codes = \"1\"\n",
                                            "abc = \"+12015551111\"\n")});
  const std::string log = wide.ReadLog();
  CHECK(log.find("admits more than one region") != std::string::npos);
  CHECK(log.find("JM") != std::string::npos);
  OtpdProcess narrow(dir, "n",
                     {"--config", AbuseConfig(dir, "n", "allowed_country_codes = \"33\"\n",
                                              "abc = \"+12015551111\"\n")});
  CHECK(narrow.ReadLog().find("admits more than one region") == std::string::npos);
}

TEST_CASE("otpd binary: send_ip_cap counts one IPv6 /64 as one client") {
  TempDir dir;
  std::string users;
  for (int i = 0; i < 4; i++)
    users += "u" + std::to_string(i) + " = \"+1201555010" + std::to_string(i) + "\"\n";
  const std::string limits =
      "send_cooldown = 0\nsend_user_cap = 0\nsend_phone_cap = 0\n"
      "send_ip_cap = 2\n";
  OtpdProcess otpd(dir, "a", {"--config", AbuseConfig(dir, "a", limits, users)});
  CHECK(SendFrom(otpd, "u0", "2001:db8:1:2::1")->status == 200);
  CHECK(SendFrom(otpd, "u1", "2001:db8:1:2::2")->status == 200);
  auto res = SendFrom(otpd, "u2", "2001:db8:1:2:ffff::3");  // same /64
  CHECK(res->status == 429);
  CHECK(res->body.find("\"error_type\":\"rate_limited\"") != std::string::npos);
  CHECK(SendFrom(otpd, "u3", "2001:db8:1:3::1")->status == 200);  // the next /64
}

TEST_CASE("otpd binary: concealed sends do not spend sms_budget_per_hour, but respect it") {
  TempDir dir;
  const std::string extra =
      std::string(kOpenLimits) + "conceal_unknown_users = true\nsms_budget_per_hour = 3\n";
  const std::string users =
      "abc = \"+12015551111\"\nbob = \"+12025552222\"\ncat = \"+12035553333\"\n";
  OtpdProcess otpd(dir, "a", {"--config", AbuseConfig(dir, "a", extra, users)});
  for (int i = 0; i < 10; i++) {
    CAPTURE(i);
    CHECK(SendFrom(otpd, "madeup" + std::to_string(i))->status == 200);
  }
  // The real users still have the whole budget...
  CHECK(SendFrom(otpd, "abc")->status == 200);
  CHECK(SendFrom(otpd, "bob")->status == 200);
  CHECK(SendFrom(otpd, "cat")->status == 200);
  // ...and once it is spent, known and unknown users answer alike.
  CHECK(SendFrom(otpd, "abc")->status == 429);
  CHECK(SendFrom(otpd, "madeup-late")->status == 429);
}

TEST_CASE("otpd binary: a concealed answer's phone is as long as the region's real numbers") {
  TempDir dir;
  const std::string extra =
      std::string(kOpenLimits) + "conceal_unknown_users = true\nallowed_country_codes = \"44\"\n";
  OtpdProcess otpd(dir, "a",
                   {"--config", AbuseConfig(dir, "a", extra, "uk = \"+447400900123\"\n")});
  auto res = SendFrom(otpd, "uk");
  REQUIRE(res->status == 200);
  const std::string real = PhoneIn(res->body);
  REQUIRE(real.size() == 13);  // +4********123
  std::map<size_t, int> lengths;
  std::set<std::string> fakes;
  for (int i = 0; i < 40; i++) {
    res = SendFrom(otpd, "ghost" + std::to_string(i));
    REQUIRE(res->status == 200);
    const std::string fake = PhoneIn(res->body);
    lengths[fake.size()]++;
    fakes.insert(fake);
    CHECK(fake.rfind("+4", 0) == 0);
  }
  CHECK(lengths == std::map<size_t, int>{{real.size(), 40}});
  CHECK(fakes.size() > 30);  // the tails differ per user
  CHECK(PhoneIn(SendFrom(otpd, "ghost7")->body) == PhoneIn(SendFrom(otpd, "ghost7")->body));
}

TEST_CASE("otpd binary: /metrics counts an SMS duration for concealed sends too") {
  TempDir dir;
  const std::string extra = std::string(kOpenLimits) + "conceal_unknown_users = true\n";
  OtpdProcess otpd(dir, "a",
                   {"--config", AbuseConfig(dir, "a", extra, "abc = \"+12015551111\"\n")});
  const std::string count = "otpd_sms_send_duration_seconds_count{result=\"ok\"}";
  REQUIRE(SendFrom(otpd, "abc")->status == 200);
  for (int i = 0; i < 3; i++) REQUIRE(SendFrom(otpd, "ghost" + std::to_string(i))->status == 200);
  CHECK(Series(otpd, count) == 4);
  CHECK(Series(otpd, "otpd_sends_total{outcome=\"sent\"}") == 4);
}

TEST_CASE("otpd binary: concealed answers before any real send still wait (the prior)") {
  TempDir dir;
  const std::string extra =
      std::string(kOpenLimits) + "conceal_unknown_users = true\nconceal_initial_wait = 400\n";
  OtpdProcess otpd(dir, "a",
                   {"--config", AbuseConfig(dir, "a", extra, "abc = \"+12015551111\"\n")});
  // No real send yet: each concealed answer waits a draw from the prior,
  // uniform over [200 ms, 600 ms] (before the prior it answered at once),
  // and /metrics counts the wait drawn, not one measured by a clock.
  for (int i = 0; i < 3; i++) {
    REQUIRE(SendFrom(otpd, "ghost" + std::to_string(i))->status == 200);
  }
  CHECK(ReadFile(dir.File("sms.log")).empty());
  const std::string histogram = "otpd_sms_send_duration_seconds";
  CHECK(Series(otpd, histogram + "_count{result=\"ok\"}") == 3);
  CHECK(Series(otpd, histogram + "_bucket{result=\"ok\",le=\"0.1\"}") == 0);
  const double waited = Series(otpd, histogram + "_sum{result=\"ok\"}");
  CHECK(waited >= 3 * 0.2);
  CHECK(waited <= 3 * 0.6);
}

TEST_CASE("otpd binary: a burst to one region pauses it (429) across processes and restarts") {
  TempDir dir;
  std::string users = "us = \"+12015551111\"\n";
  for (int i = 0; i < 8; i++) {
    users += "j" + std::to_string(i) + " = \"+187621012" + std::to_string(10 + i) + "\"\n";
  }
  const std::string extra =
      std::string(kOpenLimits) + "pumping_min_sends = 5\npumping_pause = 600\n";
  const std::string conf = AbuseConfig(dir, "a", extra, users);
  {
    OtpdProcess otpd(dir, "a", {"--config", conf});
    for (int i = 0; i < 4; i++) {
      CAPTURE(i);
      CHECK(SendFrom(otpd, "j" + std::to_string(i))->status == 200);
    }
    // The fifth send to Jamaica in the window, none verified: a spike.
    auto res = SendFrom(otpd, "j4");
    CHECK(res->status == 429);
    CHECK(res->body.find("\"error_type\":\"rate_limited\"") != std::string::npos);
    CHECK(res->get_header_value("Retry-After") == "600");
    CHECK(res->body.find("\"retry_after\":600") != std::string::npos);
    CHECK(SendFrom(otpd, "us")->status == 200);  // other regions go on
    CHECK(Series(otpd, "otpd_pumping_pauses_total{scope=\"region\"}") == 1);
    CHECK(Series(otpd, "otpd_region_paused{region=\"JM\"}") == 1);
    CHECK(Series(otpd, "otpd_region_sent_window{region=\"US\"}") == 1);
    CHECK(Series(otpd, "otpd_rate_limited_total{limit=\"pumping\"}") == 1);
    CHECK(otpd.ReadLog().find("sms pumping suspected") != std::string::npos);

    OtpdProcess second(dir, "b", {"--config", conf});  // another process, same store
    CHECK(SendFrom(second, "j5")->status == 429);
    CommandResult r = RunOtpd(dir, {"regions", "--config", conf});
    CHECK(r.exit_code == 0);
    CHECK(r.out.find("key\tsent\tverified\tconversion\tbaseline\tpaused\n") == 0);
    CHECK(r.out.find("\nJM\t0\t0\t-\t0.0\tuntil ") != std::string::npos);
    CHECK(r.out.find("5 sends in 3600 s") != std::string::npos);
    CHECK(r.out.find("\nUS\t1\t0\t0%\t0.0\t-\n") != std::string::npos);
    CHECK(second.Terminate() == 0);
    CHECK(otpd.Terminate() == 0);  // a clean stop: the audit trail is written
  }
  OtpdProcess again(dir, "c", {"--config", conf});  // a restart keeps the pause
  CHECK(SendFrom(again, "j6")->status == 429);
  CommandResult r = RunOtpd(dir, {"regions", "unpause", "jm", "--config", conf});
  CHECK(r.exit_code == 0);
  CHECK(r.err.find("JM unpaused") != std::string::npos);
  CHECK(SendFrom(again, "j6")->status == 200);
  r = RunOtpd(dir, {"regions", "unpause", "Jamaica", "--config", conf});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("neither a region") != std::string::npos);
  r = RunOtpd(dir, {"audit", "--config", conf});
  CHECK(r.out.find("\tj4\t-\t192.0.2.1\tpumping\tpaused:JM\n") != std::string::npos);
}

TEST_CASE("otpd check-config prints the brute-force budget of the settings") {
  TempDir dir;
  CommandResult r = RunOtpd(dir, {"check-config", "--database", dir.File("otpd.db")});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("one user can be guessed at most 10 times an hour") != std::string::npos);
  r = RunOtpd(dir,
              {"check-config", "--database", dir.File("otpd.db"), "--verify-failure-cap", "3"});
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("one user can be guessed at most 3 times an hour") != std::string::npos);
  CHECK(r.out.find("one IP (IPv6: one /64) 18100 times") != std::string::npos);
}

}  // namespace otpd

#ifdef OTPD_REDIS
namespace otpd {

TEST_CASE("otpd binary: a Redis restart without persistence does not reset the failure cap") {
  TempDir dir;
  RedisServer redis;  // no persistence: a restart loses every key
  const std::string extra = std::string(kOpenLimits) + "store = \"redis\"\nredis_url = \"" +
                            redis.url() +
                            "\"\nredis_fallback = false\nverify_failure_cap = 2\n"
                            "max_attempts = 5\n";
  const std::string path = dir.File("r.conf");
  WriteFile(path, "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" + dir.File("otpd.db") +
                      "\"\nsms_log_file = \"" + dir.File("sms.log") + "\"\n" + extra +
                      "\n[users]\nabc = \"+12015551111\"\n");
  OtpdProcess otpd(dir, "r", {"--config", path});
  auto cli = otpd.Client();
  REQUIRE(SendFrom(otpd, "abc")->status == 200);
  const std::string code = LastCode(dir.File("sms.log"), "+12015551111");
  REQUIRE(code.size() == 6);
  const std::string guess = VerifyJson("abc", code == "000000" ? "111111" : "000000");
  CHECK(cli.Post("/verify-code", guess, "application/json")->status == 400);
  CHECK(cli.Post("/verify-code", guess, "application/json")->status == 400);
  CHECK(cli.Post("/verify-code", guess, "application/json")->status == 429);  // the cap

  redis.Restart();
  // Until the store reconnects, /readyz answers 503; the reconnect notices
  // the empty Redis.
  REQUIRE(WaitUntil([&] {
    auto r = cli.Get("/readyz");
    return r && r->status == 200;
  }));
  auto res = cli.Post("/verify-code", guess, "application/json");
  REQUIRE(res);
  CHECK(res->status == 429);  // not a fresh set of guesses
  const int retry = atoi(res->get_header_value("Retry-After").c_str());
  CHECK(retry > 3500);
  CHECK(retry <= 3600);
  CHECK(ReadFile(otpd.log()).find("redis lost its data") != std::string::npos);
}

}  // namespace otpd
#endif  // OTPD_REDIS
