#include "app/admin_commands.h"

#include <sys/stat.h>

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "app/options.h"
#include "app/pumping_parts.h"
#include "app/users_csv.h"
#include "core/phone.h"
#include "store/sqlite_db.h"

namespace otpd {
namespace {

// Exit codes: 1 a runtime failure, 2 a bad command line or configuration.
int Fail(const CommandEnv& env, const std::string& what, const Status& s) {
  fprintf(env.err, "otpd: %s: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

int BadUsage(const CommandEnv& env, const std::string& what, const Status& s) {
  Fail(env, what, s);
  return 2;
}

// The database of the commands that use one, with its users and audit trail.
struct Database {
  std::shared_ptr<SqliteDb> db;
  std::unique_ptr<UserDirectory> users;
  std::unique_ptr<AuditLog> audit;
};

// 0, or the exit code (the error printed).
int OpenDatabase(const CommandEnv& env, bool serving, Database* d) {
  const Config& c = env.inv->config;
  Status s = OpenSqliteDb(DatabaseOptions(c, serving), &d->db);
  if (!s.ok()) return Fail(env, "database " + c.database, s);
  s = NewSqliteUserDirectory(d->db, &d->users);
  if (!s.ok()) return Fail(env, "users", s);
  s = NewSqliteAuditLog(d->db, env.clock, &d->audit);
  if (!s.ok()) return Fail(env, "audit", s);
  return 0;
}

int ServeCommand(const CommandEnv& env) {
  Database d;
  const int failed = OpenDatabase(env, /*serving=*/true, &d);
  if (failed != 0) return failed;
  return Serve(env.inv->config, env.reread, d.db, d.users.get(), d.audit.get());
}

// The commands that only read (and `users remove`) never create a database:
// a mistyped --database is an error, not a new empty file.
bool CreatesDatabase(Command command) {
  return command == Command::kServe || command == Command::kUsersAdd ||
         command == Command::kUsersImport;
}

// 0 when the database exists or the command may create it; else the exit
// code (the error printed).
int RequireDatabase(const CommandEnv& env, const char* what) {
  if (CreatesDatabase(env.inv->command)) return 0;
  const std::string& path = env.inv->config.database;
  struct stat st;
  if (stat(path.c_str(), &st) == 0) return 0;
  return Fail(env, what, Status::NotFound("no database at " + path + " (see --database)"));
}

int UsersCommand(const CommandEnv& env) {
  if (RequireDatabase(env, "users") != 0) return 1;
  Database d;
  const int failed = OpenDatabase(env, /*serving=*/false, &d);
  return failed != 0 ? failed : RunUsersCommand(d.users.get(), env);
}

int AuditCommand(const CommandEnv& env) {
  if (RequireDatabase(env, "audit") != 0) return 1;
  Database d;
  const int failed = OpenDatabase(env, /*serving=*/false, &d);
  return failed != 0 ? failed : RunAuditCommand(d.audit.get(), env);
}

// regions: on the store the config names, as the running server does.
int RegionsCommand(const CommandEnv& env) {
  if (RequireDatabase(env, "regions") != 0) return 1;
  Database d;
  const int failed = OpenDatabase(env, /*serving=*/false, &d);
  if (failed != 0) return failed;
  PumpingParts parts;
  Status s = OpenPumping(env.inv->config, d.db, d.audit.get(), env.inv->config.store, env.clock,
                         /*refresh=*/false, &parts);
  if (!s.ok()) return Fail(env, "regions", s);
  return RunRegionsCommand(parts.guard.get(), env);
}

// backup FILE: never creates a database that is not there.
int BackupCommand(const CommandEnv& env) {
  const Config& c = env.inv->config;
  struct stat st;
  if (stat(c.database.c_str(), &st) != 0) {
    return Fail(env, "backup", Status::NotFound("no database at " + c.database));
  }
  std::shared_ptr<SqliteDb> db;
  Status s = OpenSqliteDb(DatabaseOptions(c, /*serving=*/false), &db);
  if (!s.ok()) return Fail(env, "database " + c.database, s);
  s = db->Backup(env.inv->args[0]);
  if (!s.ok()) return Fail(env, "backup", s);
  fprintf(env.err, "otpd: backup: %s written\n", env.inv->args[0].c_str());
  return 0;
}

int CheckConfigCommand(const CommandEnv& env) {
  fputs(DescribeConfig(env.inv->config).c_str(), env.out);
  return 0;
}

// sms test PHONE: one message through the configured backend, so an
// operator can check the credentials before going live.
int SmsTestCommand(const CommandEnv& env) {
  std::string phone;
  Status valid = NormalizePhone(env.inv->args[0], &phone);
  if (!valid.ok()) {
    fprintf(env.err, "otpd: sms test: %s (write it like +14155550123)\n", valid.message().c_str());
    return 2;
  }
  const std::string& provider = env.inv->args.size() > 2 ? env.inv->args[2] : "";
  if (!provider.empty() && provider != "twilio" && provider != "vonage") {
    return BadUsage(env, "sms test",
                    Status::InvalidArgument("unknown SMS provider '" + provider +
                                            "': use --provider twilio or --provider vonage"));
  }
  std::unique_ptr<SmsSender> sms;
  Status s = provider.empty() ? NewSmsSender(env.inv->config, &sms)
                              : NewProviderSmsSender(env.inv->config, provider, &sms);
  if (!s.ok()) return Fail(env, "sms", s);
  Channel channel = Channel::kSms;
  const std::string& name = env.inv->args.size() > 1 ? env.inv->args[1] : "sms";
  if (!ParseChannel(name, &channel)) {
    fprintf(env.err, "otpd: sms test: --channel %s: must be sms, voice or whatsapp\n",
            name.c_str());
    return 2;
  }
  if (!sms->Supports(channel)) {
    fprintf(env.err, "otpd: sms test: the %s backend cannot send by %s\n",
            EffectiveSmsBackend(env.inv->config).c_str(), name.c_str());
    return 2;
  }
  return RunSmsTest(env.inv->config, phone, channel, sms.get(), env);
}

int ListUsers(const char* what, UserDirectory* users, std::vector<User>* list,
              const CommandEnv& env) {
  Status s = users->List(list);
  return s.ok() ? 0 : Fail(env, what, s);
}

// "-" for a field that is not set, in `users list`.
std::string Dash(const std::string& field) { return field.empty() ? "-" : field; }

// users add ID PHONE [--locale TAG]: a bad phone or locale is a bad
// argument (exit 2); the locale, when not given, stays as it was.
int AddUser(UserDirectory* users, const CommandEnv& env) {
  const std::vector<std::string>& args = env.inv->args;
  const User user{args[0], args[1], args.size() > 2 ? args[2] : ""};
  if (user.phone.empty()) {
    return BadUsage(env, "users add", Status::InvalidArgument("PHONE is empty"));
  }
  Status s = users->UpsertAll({user});
  if (s.IsInvalidArgument()) return BadUsage(env, "users add", s);
  if (!s.ok()) return Fail(env, "users add", s);
  User stored;
  s = users->Lookup(user.user_id, &stored);
  if (!s.ok()) return Fail(env, "users add", s);
  fprintf(env.out, "%s\t%s\t%s\n", stored.user_id.c_str(), Dash(stored.phone).c_str(),
          Dash(stored.locale).c_str());
  return 0;
}

}  // namespace

const std::vector<AdminCommand>& AdminCommands() {
  static const std::vector<AdminCommand> kCommands = {
      {Command::kServe, ServeCommand},
      {Command::kUsersAdd, UsersCommand},
      {Command::kUsersRemove, UsersCommand},
      {Command::kUsersList, UsersCommand},
      {Command::kUsersImport, UsersCommand},
      {Command::kUsersExport, UsersCommand},
      {Command::kCheckConfig, CheckConfigCommand},
      {Command::kBackup, BackupCommand},
      {Command::kSmsTest, SmsTestCommand},
      {Command::kAudit, AuditCommand},
      {Command::kRegionsList, RegionsCommand},
      {Command::kRegionsPause, RegionsCommand},
      {Command::kRegionsUnpause, RegionsCommand},
  };
  return kCommands;
}

int RunCommand(const CommandEnv& env) {
  for (const AdminCommand& command : AdminCommands()) {
    if (command.command == env.inv->command) return command.run(env);
  }
  return Fail(env, "otpd", Status::InvalidArgument("no such command"));
}

int ImportUsers(const std::string& path, UserDirectory* users, const CommandEnv& env) {
  std::stringstream text;
  if (path == "-") {
    text << env.in->rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Fail(env, "users import", Status::IOError("cannot read " + path));
    text << in.rdbuf();
  }
  std::vector<User> parsed;
  std::vector<std::string> errors;
  Status s = ParseUsersCsv(text.str(), &parsed, &errors);
  for (const std::string& e : errors) {
    fprintf(env.err, "otpd: users import: %s: %s\n", path.c_str(), e.c_str());
  }
  if (!s.ok()) return Fail(env, "users import", s);
  s = users->UpsertAll(parsed);
  if (!s.ok()) return Fail(env, "users import", s);
  fprintf(env.err, "otpd: users import: %zu users added or updated\n", parsed.size());
  return 0;
}

int RunUsersCommand(UserDirectory* users, const CommandEnv& env) {
  const Invocation& inv = *env.inv;
  std::vector<User> list;
  Status s;
  switch (inv.command) {
    case Command::kUsersImport:
      return ImportUsers(inv.args[0], users, env);
    case Command::kUsersExport:
      if (ListUsers("users export", users, &list, env) != 0) return 1;
      fputs(FormatUsersCsv(list).c_str(), env.out);
      return fflush(env.out) == 0 ? 0 : Fail(env, "users export", Status::IOError("write failed"));
    case Command::kUsersAdd:
      return AddUser(users, env);
    case Command::kUsersRemove:
      s = users->Remove(inv.args[0]);
      return s.ok() ? 0 : Fail(env, "users remove", s);
    default:
      if (ListUsers("users list", users, &list, env) != 0) return 1;
      for (const User& u : list) {
        fprintf(env.out, "%s\t%s\t%s\n", u.user_id.c_str(), Dash(u.phone).c_str(),
                Dash(u.locale).c_str());
      }
      return 0;
  }
}

int RunAuditCommand(AuditLog* audit, const CommandEnv& env) {
  AuditQuery query;
  query.user_id = NormalizeUserId(env.inv->args[0]);
  query.limit = 100000;
  Status s = ParseSince(env.inv->args[1], env.clock->NowMillis(), &query.since_ms);
  if (!s.ok()) return BadUsage(env, "audit", s);
  std::vector<AuditEvent> events;
  s = audit->Query(query, &events);
  if (!s.ok()) return Fail(env, "audit", s);
  for (const AuditEvent& e : events) {
    fprintf(env.out, "%s\t%s\t%s\t%s\t%s\t%s\n", FormatUtc(e.at_ms).c_str(), e.user_id.c_str(),
            e.masked_phone.empty() ? "-" : e.masked_phone.c_str(),
            e.client_ip.empty() ? "-" : e.client_ip.c_str(), e.event.c_str(), e.outcome.c_str());
  }
  return 0;
}

namespace {

std::string OneDecimal(double v) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

int ListRegions(PumpingGuard* guard, const CommandEnv& env) {
  std::vector<RegionCounts> rows;
  Status s = guard->List(&rows);
  if (!s.ok()) return Fail(env, "regions", s);
  const int64_t now = env.clock->NowMillis();
  fprintf(env.out, "key\tsent\tverified\tconversion\tbaseline\tpaused\n");
  for (const RegionCounts& c : rows) {
    const std::string conversion =
        c.window_sent == 0
            ? "-"
            : std::to_string(std::min<int64_t>(100, c.window_verified * 100 / c.window_sent)) + "%";
    const std::string paused =
        c.paused_until_ms > now ? "until " + FormatUtc(c.paused_until_ms) + ": " + c.reason : "-";
    fprintf(env.out, "%s\t%lld\t%lld\t%s\t%s\t%s\n", c.key.c_str(),
            static_cast<long long>(c.window_sent), static_cast<long long>(c.window_verified),
            conversion.c_str(), OneDecimal(ExpectedPerWindow(c, now, guard->options())).c_str(),
            paused.c_str());
  }
  return 0;
}

}  // namespace

int RunRegionsCommand(PumpingGuard* guard, const CommandEnv& env) {
  const Invocation& inv = *env.inv;
  if (inv.command == Command::kRegionsList) return ListRegions(guard, env);
  std::string key;
  Status s = ParsePumpingKey(inv.args[0], guard->options().prefix_digits, &key);
  if (!s.ok()) return BadUsage(env, "regions", s);
  bool changed = false;
  if (inv.command == Command::kRegionsUnpause) {
    s = guard->Unpause(key, &changed);
    if (!s.ok()) return Fail(env, "regions unpause", s);
    fprintf(env.err, "otpd: regions: %s %s\n", key.c_str(),
            changed ? "unpaused" : "was not paused");
    return 0;
  }
  int64_t seconds = guard->options().pause_ms / 1000;
  if (inv.args.size() > 1 && !inv.args[1].empty()) {
    char* end = nullptr;
    seconds = strtoll(inv.args[1].c_str(), &end, 10);
    if (*end != '\0' || seconds < 1 || seconds > 2592000) {
      return BadUsage(env, "regions pause",
                      Status::InvalidArgument("--for must be 1 to 2592000 seconds"));
    }
  }
  s = guard->Pause(key, seconds * 1000, &changed);
  if (!s.ok()) return Fail(env, "regions pause", s);
  fprintf(env.err, "otpd: regions: %s paused for %lld s\n", key.c_str(),
          static_cast<long long>(seconds));
  return 0;
}

int RunSmsTest(const Config& c, const std::string& phone, SmsSender* sms, const CommandEnv& env) {
  return RunSmsTest(c, phone, Channel::kSms, sms, env);
}

int RunSmsTest(const Config& c, const std::string& phone, Channel channel, SmsSender* sms,
               const CommandEnv& env) {
  SmsReceipt receipt;
  CodeMessage message;
  message.channel = channel;
  message.code = "123456";  // a sample, not a live code
  message.minutes = (c.expiry + 59) / 60;
  message.app = c.app_name;
  message.text = "This is a test message from " + c.app_name + " (otpd).";
  if (channel == Channel::kVoice) {
    FillVoiceScript(ServiceOptions(c).channels, "", message.code, message.minutes, message.app,
                    &message);
  }
  Status s = sms->SendCode(phone, message, &receipt);
  const std::string backend = EffectiveSmsBackend(c);
  // Named when it is not the backend itself: a failover list, or --provider.
  const std::string provider = receipt.provider.empty() || receipt.provider == backend
                                   ? ""
                                   : " provider=" + receipt.provider;
  if (!s.ok()) {
    fprintf(env.out, "failed: backend=%s provider_code=%d%s%s %s\n", backend.c_str(),
            receipt.provider_code, provider.c_str(),
            receipt.number_refused ? " number_refused" : "", s.message().c_str());
    return 1;
  }
  fprintf(env.out, "sent: backend=%s id=%s%s\n", backend.c_str(), receipt.provider_id.c_str(),
          provider.c_str());
  return 0;
}

}  // namespace otpd
