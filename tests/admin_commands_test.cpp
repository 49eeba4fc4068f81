// The admin commands in process: a temporary database, the streams read
// back from memory, the fake clock for `audit --since`.
#include "app/admin_commands.h"

#include <doctest/doctest.h>
#include <stdio.h>

#include <fstream>
#include <memory>
#include <set>
#include <sstream>

#include "otp/audit.h"
#include "otp/pumping.h"
#include "store/sqlite_db.h"
#include "test_util.h"

namespace otpd {
namespace {

// One command run: the invocation, its streams in memory.
struct Run {
  explicit Run(const TempDir& dir, Command command, std::vector<std::string> args = {}) {
    inv.command = command;
    inv.args = std::move(args);
    inv.config.database = dir.File("otpd.db");
    inv.config.secret_file = dir.File("otpd.secret");
    env.inv = &inv;
    env.in = &in;
    env.out = open_memstream(&out_buf, &out_size);
    env.err = open_memstream(&err_buf, &err_size);
    env.clock = &clock;
  }
  ~Run() {
    Close();
    free(out_buf);
    free(err_buf);
  }
  int Exec() {
    const int code = RunCommand(env);
    Close();
    return code;
  }
  void Close() {
    if (env.out != nullptr) fclose(env.out);
    if (env.err != nullptr) fclose(env.err);
    env.out = env.err = nullptr;
  }
  std::string out() const { return out_buf == nullptr ? "" : std::string(out_buf, out_size); }
  std::string err() const { return err_buf == nullptr ? "" : std::string(err_buf, err_size); }

  Invocation inv;
  CommandEnv env;
  std::istringstream in;
  FakeClock clock;
  char* out_buf = nullptr;
  size_t out_size = 0;
  char* err_buf = nullptr;
  size_t err_size = 0;
};

int Exec(const TempDir& dir, Command command, std::vector<std::string> args = {},
         std::string* out = nullptr, std::string* err = nullptr) {
  Run run(dir, command, std::move(args));
  const int code = run.Exec();
  if (out != nullptr) *out = run.out();
  if (err != nullptr) *err = run.err();
  return code;
}

TEST_CASE("every command of the command line has one handler, in the table's order") {
  REQUIRE(AdminCommands().size() == Commands().size());
  for (size_t i = 0; i < Commands().size(); ++i) {
    CHECK(AdminCommands()[i].command == Commands()[i].command);
    CHECK((AdminCommands()[i].run != nullptr));
  }
  std::set<Command> seen;
  for (const AdminCommand& c : AdminCommands()) CHECK(seen.insert(c.command).second);
  for (Command c : {Command::kServe, Command::kUsersAdd, Command::kUsersRemove, Command::kUsersList,
                    Command::kUsersImport, Command::kUsersExport, Command::kCheckConfig,
                    Command::kBackup, Command::kSmsTest, Command::kAudit, Command::kRegionsList,
                    Command::kRegionsPause, Command::kRegionsUnpause}) {
    CHECK(seen.count(c) == 1);
  }
  CHECK(seen.count(Command::kExit) == 0);
  CHECK(AdminCommands().front().command == Command::kServe);
}

TEST_CASE("users add, list, remove and export through the command table") {
  TempDir dir;
  std::string out, err;
  REQUIRE(Exec(dir, Command::kUsersAdd, {"Alice", "+12125553001"}, &out, &err) == 0);
  CHECK(out == "alice\t+12125553001\t-\n");
  REQUIRE(Exec(dir, Command::kUsersAdd, {"bob", "+12125553002"}) == 0);
  REQUIRE(Exec(dir, Command::kUsersList, {}, &out) == 0);
  CHECK(out == "alice\t+12125553001\t-\nbob\t+12125553002\t-\n");
  REQUIRE(Exec(dir, Command::kUsersRemove, {"ALICE"}) == 0);
  REQUIRE(Exec(dir, Command::kUsersExport, {}, &out) == 0);
  CHECK(out.find("bob,+12125553002") != std::string::npos);
  CHECK(out.find("alice") == std::string::npos);
}

TEST_CASE("users add with a bad phone fails with one line and writes nothing") {
  TempDir dir;
  std::string out, err;
  CHECK(Exec(dir, Command::kUsersAdd, {"alice", "5551230001"}, &out, &err) == 2);
  CHECK(err.rfind("otpd: users add: ", 0) == 0);
  CHECK(out.empty());
  REQUIRE(Exec(dir, Command::kUsersList, {}, &out) == 0);
  CHECK(out.empty());
}

TEST_CASE("users import is all or nothing and reads standard input for -") {
  TempDir dir;
  {
    std::ofstream f(dir.File("bad.csv"));
    f << "user_id,phone\ncarol,+12125553003\ndave,not-a-phone\n";
  }
  std::string out, err;
  CHECK(Exec(dir, Command::kUsersImport, {dir.File("bad.csv")}, &out, &err) == 1);
  CHECK(err.find("bad.csv: line 3") != std::string::npos);
  REQUIRE(Exec(dir, Command::kUsersList, {}, &out) == 0);
  CHECK(out.empty());  // carol's good line was not written either

  Run run(dir, Command::kUsersImport, {"-"});
  run.in.str("user_id,phone\ncarol,+12125553003\ndave,+12125553004\n");
  REQUIRE(run.Exec() == 0);
  CHECK(run.err() == "otpd: users import: 2 users added or updated\n");
  REQUIRE(Exec(dir, Command::kUsersList, {}, &out) == 0);
  CHECK(out == "carol\t+12125553003\t-\ndave\t+12125553004\t-\n");
}

TEST_CASE("users import of a missing file names it") {
  TempDir dir;
  std::string err;
  CHECK(Exec(dir, Command::kUsersImport, {dir.File("none.csv")}, nullptr, &err) == 1);
  CHECK(err == "otpd: users import: cannot read " + dir.File("none.csv") + "\n");
}

TEST_CASE("audit prints the user's events since the given age, by the injected clock") {
  TempDir dir;
  const int64_t now = FakeClock().NowMillis();  // where each Run's clock stands
  FakeClock clock(now - 2 * 3600 * 1000);       // Record stamps events with it
  {
    std::shared_ptr<SqliteDb> db;
    SqliteOptions o;
    o.path = dir.File("otpd.db");
    REQUIRE(OpenSqliteDb(o, &db).ok());
    std::unique_ptr<AuditLog> audit;
    REQUIRE(NewSqliteAuditLog(db, &clock, &audit).ok());
    REQUIRE(audit->Record(AuditEvent{0, "alice", "+1*****0001", "10.0.0.1", "send", "sent"}).ok());
    clock.Advance(2 * 3600 * 1000 - 60 * 1000);
    REQUIRE(audit->Record(AuditEvent{0, "alice", "", "", "verify", "ok"}).ok());
    REQUIRE(audit->Record(AuditEvent{0, "bob", "", "", "verify", "ok"}).ok());
  }
  Run run(dir, Command::kAudit, {"ALICE", "1h"});
  REQUIRE(run.Exec() == 0);
  CHECK(run.out() == FormatUtc(now - 60 * 1000) + "\talice\t-\t-\tverify\tok\n");

  Run all(dir, Command::kAudit, {"alice", "3h"});
  REQUIRE(all.Exec() == 0);
  CHECK(all.out().find("\t+1*****0001\t10.0.0.1\tsend\tsent\n") != std::string::npos);

  Run bad(dir, Command::kAudit, {"alice", "yesterday"});
  CHECK(bad.Exec() == 2);
  CHECK(bad.err().rfind("otpd: audit: ", 0) == 0);
}

TEST_CASE("regions list, pause and unpause through the command table") {
  TempDir dir;
  std::string out, err;
  CHECK(Exec(dir, Command::kRegionsList, {}, &out, &err) == 1);  // no database yet
  CHECK(err.find("no database at") != std::string::npos);
  {
    // A server's sends: two to Jamaica, none verified.
    std::shared_ptr<SqliteDb> db;
    SqliteOptions o;
    o.path = dir.File("otpd.db");
    REQUIRE(OpenSqliteDb(o, &db).ok());
    std::unique_ptr<RegionStore> store;
    REQUIRE(NewSqliteRegionStore(db, &store).ok());
    FakeClock clock;
    PumpingGuard guard(store.get(), &clock, nullptr);
    REQUIRE(guard.CountSend("+18762101234", "u", "").allowed);
    REQUIRE(guard.CountSend("+18762101235", "u", "").allowed);
  }
  REQUIRE(Exec(dir, Command::kRegionsList, {}, &out) == 0);
  CHECK(out ==
        "key\tsent\tverified\tconversion\tbaseline\tpaused\n"
        "+1-876\t2\t0\t0%\t0.0\t-\n"
        "JM\t2\t0\t0%\t0.0\t-\n");

  REQUIRE(Exec(dir, Command::kRegionsPause, {"jm", "120"}, nullptr, &err) == 0);
  CHECK(err == "otpd: regions: JM paused for 120 s\n");
  REQUIRE(Exec(dir, Command::kRegionsList, {}, &out) == 0);
  const int64_t now = FakeClock().NowMillis();
  CHECK(out.find("JM\t0\t0\t-\t0.0\tuntil " + FormatUtc(now + 120 * 1000) +
                 ": paused by an operator\n") != std::string::npos);
  CHECK(Exec(dir, Command::kRegionsPause, {"JM", "0"}, nullptr, &err) == 2);
  CHECK(err.find("--for must be") != std::string::npos);
  CHECK(Exec(dir, Command::kRegionsPause, {"Jamaica", ""}, nullptr, &err) == 2);
  CHECK(err.find("neither a region") != std::string::npos);

  REQUIRE(Exec(dir, Command::kRegionsUnpause, {"JM"}, nullptr, &err) == 0);
  CHECK(err == "otpd: regions: JM unpaused\n");
  REQUIRE(Exec(dir, Command::kRegionsUnpause, {"JM"}, nullptr, &err) == 0);
  CHECK(err == "otpd: regions: JM was not paused\n");
  REQUIRE(Exec(dir, Command::kRegionsList, {}, &out) == 0);
  CHECK(out.find("\nJM\t0\t0\t-\t0.0\t-\n") != std::string::npos);
}

TEST_CASE("backup refuses a missing database and copies an existing one") {
  TempDir dir;
  std::string err;
  CHECK(Exec(dir, Command::kBackup, {dir.File("copy.db")}, nullptr, &err) == 1);
  CHECK(err == "otpd: backup: no database at " + dir.File("otpd.db") + "\n");
  std::ifstream none(dir.File("otpd.db"));
  CHECK_FALSE(none.good());  // the refusal did not create it

  REQUIRE(Exec(dir, Command::kUsersAdd, {"alice", "+12125553001"}) == 0);
  REQUIRE(Exec(dir, Command::kBackup, {dir.File("copy.db")}, nullptr, &err) == 0);
  CHECK(err == "otpd: backup: " + dir.File("copy.db") + " written\n");
  Run list(dir, Command::kUsersList);
  list.inv.config.database = dir.File("copy.db");
  REQUIRE(list.Exec() == 0);
  CHECK(list.out() == "alice\t+12125553001\t-\n");
}

TEST_CASE("check-config prints the effective settings") {
  TempDir dir;
  Run run(dir, Command::kCheckConfig);
  run.inv.config.code_length = 8;
  REQUIRE(run.Exec() == 0);
  CHECK(run.out() == DescribeConfig(run.inv.config));
  CHECK(run.out().find("code_length = 8\n") != std::string::npos);
}

TEST_CASE("sms test refuses a phone that is not E.164 with exit code 2") {
  TempDir dir;
  std::string out, err;
  CHECK(Exec(dir, Command::kSmsTest, {"5551230001"}, &out, &err) == 2);
  CHECK(err ==
        "otpd: sms test: phone '5551230001' is not in international form ('+', country code, "
        "number) (write it like +14155550123)\n");
  CHECK(out.empty());
}

TEST_CASE("sms test sends one message and prints the backend's answer") {
  TempDir dir;
  FakeSmsSender sms;
  FailingSmsSender failing(&sms);
  Run run(dir, Command::kSmsTest, {"+12125553001"});
  run.inv.config.app_name = "Acme";
  REQUIRE(RunSmsTest(run.inv.config, "+12125553001", &failing, run.env) == 0);
  REQUIRE(sms.count() == 1);
  CHECK(sms.messages()[0].to == "+12125553001");
  CHECK(sms.messages()[0].body == "This is a test message from Acme (otpd).");
  failing.FailWith(21211);
  CHECK(RunSmsTest(run.inv.config, "+12125553001", &failing, run.env) == 1);
  run.Close();
  CHECK(run.out().rfind("sent: backend=console id=", 0) == 0);
  CHECK(run.out().find("\nfailed: backend=console provider_code=21211 ") != std::string::npos);
  CHECK(sms.count() == 1);
}

TEST_CASE("sms test with the console backend writes the message to its log file") {
  TempDir dir;
  Run run(dir, Command::kSmsTest, {"+12125553001"});
  run.inv.config.sms_log_file = dir.File("sms.log");
  REQUIRE(run.Exec() == 0);
  CHECK(run.out().rfind("sent: backend=console", 0) == 0);
  std::ifstream log(dir.File("sms.log"));
  std::stringstream text;
  text << log.rdbuf();
  CHECK(text.str().find("This is a test message from otpd (otpd).") != std::string::npos);
}

}  // namespace
}  // namespace otpd
