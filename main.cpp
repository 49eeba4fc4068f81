// otpd: wiring only. Parse the command line and config, build the real
// parts, and run the chosen command.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <memory>
#include <string>
#include <thread>

#include "audit.h"
#include "clock.h"
#include "code_hash.h"
#include "config.h"
#include "http_api.h"
#include "http_server.h"
#include "log.h"
#include "otp_service.h"
#include "periodic.h"
#include "phone.h"
#include "random.h"
#include "rate_limiter.h"
#include "sms.h"
#include "sqlite_db.h"
#include "storage.h"
#include "users.h"

namespace otpd {
namespace {

int Fail(const std::string& what, const Status& s) {
  fprintf(stderr, "otpd: %s: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

std::string SecretPath(const Config& c) {
  if (!c.secret_file.empty()) return c.secret_file;
  const size_t slash = c.database.rfind('/');
  const std::string dir = slash == std::string::npos ? "." : c.database.substr(0, slash);
  return (dir.empty() ? "/" : dir + "/") + "otpd.secret";
}

int RunUsersCommand(const Invocation& inv, UserDirectory* users) {
  Status s;
  if (inv.command == Command::kUsersAdd) {
    s = users->Upsert(inv.args[0], inv.args[1]);
    if (!s.ok()) return Fail("users add", s);
    printf("%s\t%s\n", NormalizeUserId(inv.args[0]).c_str(), inv.args[1].c_str());
  } else if (inv.command == Command::kUsersRemove) {
    s = users->Remove(inv.args[0]);
    if (!s.ok()) return Fail("users remove", s);
  } else {
    std::vector<User> list;
    s = users->List(&list);
    if (!s.ok()) return Fail("users list", s);
    for (const User& u : list) printf("%s\t%s\n", u.user_id.c_str(), u.phone.c_str());
  }
  return 0;
}

int RunAuditCommand(const Invocation& inv, AuditLog* audit) {
  AuditQuery query;
  query.user_id = NormalizeUserId(inv.args[0]);
  query.limit = 100000;
  Status s = ParseSince(inv.args[1], SystemClock()->NowMillis(), &query.since_ms);
  if (!s.ok()) return Fail("audit", s);
  std::vector<AuditEvent> events;
  s = audit->Query(query, &events);
  if (!s.ok()) return Fail("audit", s);
  for (const AuditEvent& e : events) {
    printf("%s\t%s\t%s\t%s\t%s\t%s\n", FormatUtc(e.at_ms).c_str(), e.user_id.c_str(),
           e.masked_phone.empty() ? "-" : e.masked_phone.c_str(),
           e.client_ip.empty() ? "-" : e.client_ip.c_str(), e.event.c_str(), e.outcome.c_str());
  }
  return 0;
}

OtpOptions ServiceOptions(const Config& c) {
  OtpOptions o;
  o.code_length = c.code_length;
  o.expiry_ms = int64_t{c.expiry} * 1000;
  o.max_attempts = c.max_attempts;
  o.expired_grace_ms = int64_t{c.expired_grace} * 1000;
  o.app_name = c.app_name;
  o.message_template = c.message_template;
  o.send_limits.cooldown_ms = int64_t{c.send_cooldown} * 1000;
  o.send_limits.per_user = c.send_user_cap;
  o.send_limits.per_phone = c.send_phone_cap;
  o.send_limits.per_ip = c.send_ip_cap;
  o.send_limits.global = c.sms_budget_per_hour;
  // Validated by ParseInvocation, so this cannot fail here.
  if (!c.allowed_country_codes.empty()) {
    ParseCountryCodes(c.allowed_country_codes, &o.allowed_country_codes);
  }
  o.max_failures = c.verify_failure_cap;
  o.failure_window_ms = int64_t{c.verify_failure_window} * 1000;
  o.conceal_unknown_users = c.conceal_unknown_users;
  return o;
}

HttpServerOptions ServerOptions(const Config& c) {
  HttpServerOptions o;
  o.host = c.listen;
  o.port = c.port;
  o.threads = c.threads;
  o.max_body_bytes = static_cast<size_t>(c.max_body_bytes);
  o.read_timeout_s = c.read_timeout;
  o.write_timeout_s = c.write_timeout;
  o.keepalive_timeout_s = c.keepalive_timeout;
  o.keepalive_max = c.keepalive_max;
  o.tls_cert = c.tls_cert;
  o.tls_key = c.tls_key;
  // Validated by ParseInvocation, so this cannot fail here.
  TrustedProxies::Parse(c.trusted_proxies, &o.trusted_proxies);
  return o;
}

// SIGHUP: re-read the config file and re-sync its [users] table. Other
// settings need a restart for now; a bad file keeps the running state.
void Reload(int argc, char** argv, UserDirectory* users) {
  Invocation inv;
  Status s = ParseInvocation(argc, argv, nullptr, &inv);
  if (s.ok() && !inv.config.config_file.empty()) s = users->SyncFromConfig(inv.config.users);
  if (!s.ok()) {
    Log(LogLevel::kError, "reload failed; keeping the running config", {{"error", s.message()}});
    return;
  }
  Log(LogLevel::kInfo, "reloaded", {{"users", std::to_string(inv.config.users.size())}});
}

// Waits for SIGTERM/SIGINT (stop) and SIGHUP (reload) on its own thread.
// The signals are blocked in every thread, so only sigwait sees them.
void HandleSignals(const sigset_t* set, HttpServer* server, int argc, char** argv,
                   UserDirectory* users) {
  for (;;) {
    int sig = 0;
    if (sigwait(set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      Reload(argc, argv, users);
      continue;
    }
    Log(LogLevel::kInfo, "stopping", {{"signal", sig == SIGTERM ? "TERM" : "INT"}});
    if (!server->Stop()) {
      // A slow or idle client still holds a worker. Every committed write
      // is already durable (SQLite WAL), so leave without waiting for it.
      Log(LogLevel::kWarn, "shutdown deadline passed with connections open; exiting");
      _exit(0);
    }
    return;
  }
}

int Serve(const Config& c, int argc, char** argv, std::shared_ptr<SqliteDb> db,
          UserDirectory* users, AuditLog* audit) {
  if (!c.config_file.empty()) {
    Status s = users->SyncFromConfig(c.users);
    if (!s.ok()) return Fail("config [users]", s);
  }
  std::string secret = c.secret;
  if (secret.empty()) {
    Status s = LoadOrCreateSecret(SecretPath(c), OpenSslRandom(), &secret);
    if (!s.ok()) return Fail("secret", s);
  }
  CodeHasher hasher(secret);
  std::unique_ptr<Storage> storage;
  Status s = NewSqliteStorage(db, SystemClock(), &storage);
  if (!s.ok()) return Fail("storage", s);
  std::unique_ptr<SmsSender> sms;
  s = NewConsoleSmsSender(c.sms_log_file, &sms);
  if (!s.ok()) return Fail("sms_log_file", s);
  if (!c.twilio_account_sid.empty()) {
    Log(LogLevel::kWarn, "twilio settings are ignored: sms_backend is console");
  }

  OtpService service(ServiceOptions(c), storage.get(), users, sms.get(), SystemClock(),
                     OpenSslRandom(), &hasher, audit);
  HttpApiOptions api_options;
  api_options.expose_full_phone = c.expose_phone == "full";
  s = ApiKeys::Load(c.api_keys, c.api_keys_file, &api_options.api_keys);
  if (!s.ok()) return Fail("api keys", s);
  std::unique_ptr<RateLimiter> limiter;
  if (c.ip_requests_per_minute > 0) {
    limiter.reset(new RateLimiter(
        RateLimiterOptions{c.ip_requests_per_minute, c.ip_burst, static_cast<size_t>(c.ip_table_size)},
        SystemClock()));
  }
  HttpApi api(&service, storage.get(), api_options, limiter.get());
  HttpServer server(ServerOptions(c), &api);
  s = server.Bind();
  if (!s.ok()) return Fail("listen", s);

  const int64_t retention_ms = int64_t{c.audit_retention_days} * 86400 * 1000;
  PeriodicTask purge(int64_t{c.purge_interval} * 1000, [&service, audit, retention_ms] {
    int64_t n = 0;
    Status ps = service.PurgeExpired(&n);
    if (!ps.ok()) Log(LogLevel::kWarn, "purge failed", {{"error", ps.ToString()}});
    if (n > 0) Log(LogLevel::kDebug, "purged expired codes", {{"count", std::to_string(n)}});
    ps = audit->Purge(retention_ms, &n);
    if (!ps.ok()) Log(LogLevel::kWarn, "audit purge failed", {{"error", ps.ToString()}});
  });
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
  std::thread signals(HandleSignals, &set, &server, argc, argv, users);
  Log(LogLevel::kInfo, "otpd started",
      {{"version", OTPD_VERSION}, {"listen", c.listen}, {"port", std::to_string(server.port())},
       {"database", c.database}, {"sms_backend", c.sms_backend},
       {"scheme", c.tls_cert.empty() ? "http" : "https"}});
  server.Run();
  kill(getpid(), SIGTERM);  // wakes the signal thread if Run ended on its own
  signals.join();
  Log(LogLevel::kInfo, "otpd stopped");
  return 0;
}

int Main(int argc, char** argv) {
  Invocation inv;
  Status s = ParseInvocation(argc, argv, nullptr, &inv);
  if (!s.ok()) {
    fprintf(stderr, "otpd: %s\n", s.message().c_str());
    return 2;
  }
  if (inv.command == Command::kExit) {
    fputs(inv.output.c_str(), inv.exit_code == 0 ? stdout : stderr);
    return inv.exit_code;
  }
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(inv.config.log_level, &level);
  SetLogLevel(level);

  // Block the signals before any thread starts, so every thread inherits
  // the mask and only the signal thread's sigwait receives them.
  sigset_t set;
  sigemptyset(&set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(&set, sig);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);

  SqliteOptions db_options;
  db_options.path = inv.config.database;
  db_options.busy_timeout_ms = inv.config.busy_timeout_ms;
  std::shared_ptr<SqliteDb> db;
  s = OpenSqliteDb(db_options, &db);
  if (!s.ok()) return Fail("database " + inv.config.database, s);
  std::unique_ptr<UserDirectory> users;
  s = NewSqliteUserDirectory(db, &users);
  if (!s.ok()) return Fail("users", s);
  std::unique_ptr<AuditLog> audit;
  s = NewSqliteAuditLog(db, SystemClock(), &audit);
  if (!s.ok()) return Fail("audit", s);
  if (inv.command == Command::kAudit) return RunAuditCommand(inv, audit.get());
  if (inv.command != Command::kServe) return RunUsersCommand(inv, users.get());
  return Serve(inv.config, argc, argv, db, users.get(), audit.get());
}

}  // namespace
}  // namespace otpd

int main(int argc, char** argv) { return otpd::Main(argc, argv); }
