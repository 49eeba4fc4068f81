// Black-box tests of otpd as systemd runs it: the environment the unit
// gives it (credentials directory, notify socket, watchdog), with the real
// binary (otpd_process.h).
#include <doctest/doctest.h>
#include <openssl/evp.h>
#include <signal.h>
#include <sys/stat.h>

#include <string>
#include <vector>

#include "fake_twilio.h"
#include "notify_socket.h"
#include "otpd_process.h"
#include "test_tls.h"
#include "test_util.h"

namespace otpd {
namespace {

const char kSid[] = "AC0123456789abcdef0123456789abcdef";

std::string Base64(const std::string& in) {
  std::string out(4 * ((in.size() + 2) / 3) + 1, '\0');
  const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]),
                                reinterpret_cast<const unsigned char*>(in.data()),
                                static_cast<int>(in.size()));
  out.resize(static_cast<size_t>(n));
  return out;
}

// A config as an installed host has it: settings in the file, no secret
// on the command line.
std::string ServeConfig(const TempDir& dir, const std::string& extra = "") {
  const std::string path = dir.File("otpd.conf");
  WriteFile(path, "listen = \"127.0.0.1\"\nport = 0\ndatabase = \"" + dir.File("otpd.db") +
                      "\"\nthreads = 8\nsend_cooldown = 0\n" + extra +
                      "\n[users]\nabc = \"+12015551111\"\n");
  return path;
}

// $CREDENTIALS_DIRECTORY as systemd fills it for LoadCredential=.
std::string CredentialsDir(const TempDir& dir, const std::string& token) {
  const std::string creds = dir.File("credentials");
  REQUIRE(mkdir(creds.c_str(), 0700) == 0);
  WriteFile(creds + "/twilio_auth_token", token);
  REQUIRE(chmod((creds + "/twilio_auth_token").c_str(), 0400) == 0);
  return creds;
}

TEST_CASE("otpd binary: the Twilio token only in systemd's credentials directory") {
  TempDir dir;
  TestCa ca(dir.path(), "cred");
  FakeTwilio fake(ca.Issue("server", "IP:127.0.0.1,DNS:localhost"));
  const std::string token = "cred-token-0123456789";
  const std::vector<std::string> env = {
      "CREDENTIALS_DIRECTORY=" + CredentialsDir(dir, token + "\n"),
      std::string("TWILIO_ACCOUNT_SID=") + kSid, "TWILIO_PHONE_NUMBER=+12085551111",
      "OTPD_TWILIO_API_BASE=" + fake.base(), "OTPD_TWILIO_CA_FILE=" + ca.cert_file()};
  const std::string conf = ServeConfig(dir, "sms_backend = \"twilio\"\n");

  CommandResult r = RunOtpd(dir, {"check-config", "--config", conf}, env);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("twilio_auth_token = \"<redacted>\"") != std::string::npos);
  CHECK(r.output().find(token) == std::string::npos);

  OtpdProcess otpd(dir, "a", {"serve", "--config", conf}, env);
  auto res = otpd.Client().Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  REQUIRE(fake.requests().size() == 1);
  CHECK(fake.requests()[0].authorization == "Basic " + Base64(std::string(kSid) + ":" + token));
  CHECK(otpd.ReadLog().find(token) == std::string::npos);
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd binary: an empty credential file (as make install leaves it) is no credential") {
  TempDir dir;
  const std::vector<std::string> env = {"CREDENTIALS_DIRECTORY=" + CredentialsDir(dir, "")};
  CommandResult r = RunOtpd(dir, {"check-config", "--config", ServeConfig(dir)}, env);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("twilio_auth_token = \"\"") != std::string::npos);
  CHECK(r.out.find("sms_backend in effect: console") != std::string::npos);
  // With a Twilio account but the token file still empty, the start stops
  // with the missing credential named.
  r = RunOtpd(
      dir, {"serve", "--config", ServeConfig(dir)},
      {env[0], std::string("TWILIO_ACCOUNT_SID=") + kSid, "TWILIO_PHONE_NUMBER=+12085551111"});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("no credential is set") != std::string::npos);
}

TEST_CASE("otpd binary: Type=notify and WatchdogSec= over a real notify socket") {
  TempDir dir;
  NotifySocket manager(dir.File("notify"));
  // Pings every 50 ms: the test waits for three of them, not for a time.
  const std::vector<std::string> env = {"NOTIFY_SOCKET=" + manager.path(), "WATCHDOG_USEC=100000"};
  OtpdProcess otpd(dir, "a", {"serve", "--config", ServeConfig(dir)}, env);
  const std::string ready = manager.Receive();
  CHECK(HasLine(ready, "READY=1"));
  CHECK(HasLine(ready, "STATUS=serving on 127.0.0.1 port " + std::to_string(otpd.port())));
  for (int i = 0; i < 3; ++i) CHECK(manager.ReceiveUntil("WATCHDOG=1") == "WATCHDOG=1");
  auto res = otpd.Client().Get("/readyz");
  REQUIRE(res);
  CHECK(res->status == 200);
  REQUIRE(kill(otpd.pid(), SIGHUP) == 0);
  CHECK(manager.ReceiveUntil("STATUS=serving on 127.0.0.1 port " + std::to_string(otpd.port()) +
                             "; reloaded") != "");
  CHECK(otpd.Terminate() == 0);
  CHECK(HasLine(manager.ReceiveUntil("STOPPING=1"), "STOPPING=1"));
}

TEST_CASE("otpd binary: no notify socket, no notifications, same start") {
  TempDir dir;
  OtpdProcess otpd(dir, "a", {"serve", "--config", ServeConfig(dir)}, {"WATCHDOG_USEC=100000"});
  auto res = otpd.Client().Get("/healthz");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(otpd.ReadLog().find("systemd notification failed") == std::string::npos);
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd binary: every command reads the installed config without --config") {
  TempDir dir;
  const std::vector<std::string> env = {"OTPD_DEFAULT_CONFIG=" + ServeConfig(dir)};
  CommandResult r = RunOtpd(dir, {"users", "add", "bob", "+12135554567"}, env);
  REQUIRE(r.exit_code == 0);
  r = RunOtpd(dir, {"users", "list"}, env);
  CHECK(r.exit_code == 0);
  CHECK(r.out.find("bob\t+12135554567") != std::string::npos);
  r = RunOtpd(dir, {"check-config"}, env);
  CHECK(r.out.find("database = \"" + dir.File("otpd.db") + "\"") != std::string::npos);
  OtpdProcess otpd(dir, "a", {"serve"}, env);
  auto res = otpd.Client().Post("/send-code", R"({"user_id":"bob"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(otpd.Terminate() == 0);
}

TEST_CASE("otpd users: locales, users without a phone, a spreadsheet's CSV, export | import") {
  TempDir dir;
  const std::string db = dir.File("otpd.db");
  CommandResult r = RunOtpd(
      dir, {"users", "add", "Maria", "+12125553001", "--locale", "es-MX", "--database", db});
  REQUIRE(r.exit_code == 0);
  CHECK(r.out == "maria\t+12125553001\tes-MX\n");
  r = RunOtpd(dir, {"users", "add", "bob", "+12125553002", "--locale", "es MX", "--database", db});
  CHECK(r.exit_code == 2);
  CHECK(r.err.find("es MX") != std::string::npos);
  // As a spreadsheet saves it: a byte order mark, CRLF, its own column order.
  WriteFile(dir.File("sheet.csv"),
            "\xEF\xBB\xBFLocale,User_ID,Phone\r\npt-BR,joao,+5511912345678\r\n,nophone,\r\n");
  r = RunOtpd(dir, {"users", "import", dir.File("sheet.csv"), "--database", db});
  REQUIRE(r.exit_code == 0);
  r = RunOtpd(dir, {"users", "list", "--database", db});
  CHECK(r.out == "joao\t+5511912345678\tpt-BR\nmaria\t+12125553001\tes-MX\nnophone\t-\t-\n");
  const CommandResult exported = RunOtpd(dir, {"users", "export", "--database", db});
  REQUIRE(exported.exit_code == 0);
  CHECK(exported.out ==
        "user_id,phone,locale\njoao,+5511912345678,pt-BR\nmaria,+12125553001,es-MX\nnophone,,\n");
  WriteFile(dir.File("export.csv"), exported.out);
  const std::string copy = dir.File("copy.db");
  REQUIRE(RunOtpd(dir, {"users", "import", dir.File("export.csv"), "--database", copy}).exit_code ==
          0);
  CHECK(RunOtpd(dir, {"users", "export", "--database", copy}).out == exported.out);
}

TEST_CASE("otpd users list/export/remove and audit never create a mistyped database") {
  TempDir dir;
  const std::string typo = dir.File("otpd.bd");
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"users", "list"}, {"users", "export"}, {"users", "remove", "abc"}, {"audit"}}) {
    std::vector<std::string> with_db = args;
    with_db.push_back("--database");
    with_db.push_back(typo);
    const CommandResult r = RunOtpd(dir, with_db);
    CAPTURE(args[0]);
    CHECK(r.exit_code == 1);
    CHECK(r.err.find("no database at " + typo) != std::string::npos);
    struct stat st;
    CHECK(stat(typo.c_str(), &st) != 0);
  }
}

}  // namespace
}  // namespace otpd
