// otpd: wiring only. Parse the command line and config, build the real
// parts, and run the chosen command.
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>
#include <memory>
#include <string>
#include <thread>

#include "otp/audit.h"
#include "core/clock.h"
#include "core/code_hash.h"
#include "config/config.h"
#include "http/http_api.h"
#include "http/http_server.h"
#include "core/log.h"
#include "otp/otp_service.h"
#include "core/periodic.h"
#include "core/phone.h"
#include "core/random.h"
#include "http/rate_limiter.h"
#include "otp/sms.h"
#include "store/sqlite_db.h"
#include "otp/storage.h"
#include "otp/users.h"
#include "app/receipts.h"
#include "app/users_csv.h"

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

// otpd users import FILE: every bad line is reported, and then nothing is
// written; otherwise all users are upserted in one transaction.
int ImportUsers(const std::string& path, UserDirectory* users) {
  std::stringstream text;
  if (path == "-") {
    text << std::cin.rdbuf();
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Fail("users import", Status::IOError("cannot read " + path));
    text << in.rdbuf();
  }
  std::vector<User> parsed;
  std::vector<std::string> errors;
  Status s = ParseUsersCsv(text.str(), &parsed, &errors);
  for (const std::string& e : errors) fprintf(stderr, "otpd: users import: %s: %s\n", path.c_str(), e.c_str());
  if (!s.ok()) return Fail("users import", s);
  s = users->UpsertAll(parsed);
  if (!s.ok()) return Fail("users import", s);
  fprintf(stderr, "otpd: users import: %zu users added or updated\n", parsed.size());
  return 0;
}

int RunUsersCommand(const Invocation& inv, UserDirectory* users) {
  Status s;
  if (inv.command == Command::kUsersImport) return ImportUsers(inv.args[0], users);
  if (inv.command == Command::kUsersExport) {
    std::vector<User> list;
    s = users->List(&list);
    if (!s.ok()) return Fail("users export", s);
    fputs(FormatUsersCsv(list).c_str(), stdout);
    return fflush(stdout) == 0 ? 0 : Fail("users export", Status::IOError("write failed"));
  }
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
  o.templates = c.templates;
  o.webotp_domain = c.webotp_domain;
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

// `keys` are loaded once at start (a reload keeps them: they need a restart).
HttpApiOptions ApiOptions(const Config& c, const ApiKeys& keys) {
  HttpApiOptions o;
  o.expose_full_phone = c.expose_phone == "full";
  o.base_path = c.base_path;
  o.api_keys = keys;
  o.twilio_status_url = ReceiptUrl(c);
  if (!o.twilio_status_url.empty()) o.twilio_auth_token = ReceiptSigningToken(c);
  return o;
}

// What SIGHUP may change while serving. Every other key needs a restart.
bool IsLiveKey(const std::string& key) {
  for (const char* live : {"log_level", "log_file", "code_length", "expiry", "max_attempts",
                           "expired_grace", "expose_phone", "app_name", "message_template",
                           "webotp_domain"}) {
    if (key == live) return true;
  }
  return false;
}

// systemd's LoadCredential= puts the token in $CREDENTIALS_DIRECTORY; it is
// used when no other source set twilio_auth_token.
void ReadCredentials(Config* c) {
  const char* dir = getenv("CREDENTIALS_DIRECTORY");
  if (!c->twilio_auth_token.empty() || dir == nullptr || *dir == '\0') return;
  std::ifstream in(std::string(dir) + "/twilio_auth_token");
  std::string token;
  if (in && std::getline(in, token)) c->twilio_auth_token = token;
}

struct LiveParts {
  OtpService* service;
  HttpApi* api;
  UserDirectory* users;
  Config started;  // the config the process started with
  ApiKeys keys;    // loaded at start; not reloaded
};

void ApplyLiveSettings(const Config& c, LiveParts* live) {
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(c.log_level, &level);
  SetLogLevel(level);
  live->service->SetOptions(ServiceOptions(c));
  live->api->SetOptions(ApiOptions(c, live->keys));
}

TwilioOptions TwilioSettings(const Config& c) {
  TwilioOptions o;
  o.account_sid = c.twilio_account_sid;
  o.auth_token = c.twilio_auth_token;
  o.api_key_sid = c.twilio_api_key_sid;
  o.api_key_secret = c.twilio_api_key_secret;
  o.from = c.twilio_phone_number;
  o.messaging_service_sid = c.twilio_messaging_service_sid;
  o.status_callback = c.public_url.empty() ? c.twilio_status_callback : ReceiptUrl(c);
  o.api_base = c.twilio_api_base;
  o.ca_file = c.twilio_ca_file;
  o.connect_timeout_ms = c.twilio_connect_timeout_ms;
  o.timeout_ms = c.twilio_timeout_ms;
  return o;
}

// The sender sms_backend asks for ("auto" resolved by the config).
Status NewSmsSender(const Config& c, std::unique_ptr<SmsSender>* sms) {
  if (EffectiveSmsBackend(c) == "console") {
    if (!c.twilio_account_sid.empty()) {
      Log(LogLevel::kWarn, "twilio settings are ignored: sms_backend is console");
    }
    return NewConsoleSmsSender(c.sms_log_file, sms);
  }
  TwilioOptions o = TwilioSettings(c);
  if (!c.twilio_auth_token_file.empty()) {
    Status s = ReadTwilioAuthTokenFile(c.twilio_auth_token_file, &o.auth_token);
    if (!s.ok()) return s;
  }
  return NewTwilioSmsSender(o, sms);
}

// otpd sms test PHONE: one message through the configured backend, so an
// operator can check the credentials before going live.
int RunSmsTest(const Config& c, const std::string& phone) {
  if (!IsE164(phone)) {
    fprintf(stderr, "otpd: sms test: '%s' is not E.164, like +15551234567\n", phone.c_str());
    return 2;
  }
  std::unique_ptr<SmsSender> sms;
  Status s = NewSmsSender(c, &sms);
  if (!s.ok()) return Fail("sms", s);
  SmsReceipt receipt;
  s = sms->Send(phone, "This is a test message from " + c.app_name + " (otpd).", &receipt);
  if (!s.ok()) {
    printf("failed: backend=%s provider_code=%d %s\n", EffectiveSmsBackend(c).c_str(),
           receipt.provider_code, s.message().c_str());
    return 1;
  }
  printf("sent: backend=%s id=%s\n", EffectiveSmsBackend(c).c_str(),
         receipt.provider_id.c_str());
  return 0;
}

// SIGHUP: re-read the config file; re-sync its [users] table, apply the
// live settings and reopen the log file. A bad file keeps the running state.
void Reload(int argc, char** argv, LiveParts* live) {
  Invocation inv;
  Status s = ParseInvocation(argc, argv, nullptr, &inv);
  ReadCredentials(&inv.config);
  if (s.ok() && !inv.config.config_file.empty()) s = live->users->SyncFromConfig(inv.config.users);
  if (!s.ok()) {
    Log(LogLevel::kError, "reload failed; keeping the running config", {{"error", s.message()}});
    return;
  }
  if (!inv.config.log_file.empty()) {
    Status ls = OpenLogFile(inv.config.log_file);
    if (!ls.ok()) Log(LogLevel::kError, "cannot reopen the log file", {{"error", ls.message()}});
  }
  ApplyLiveSettings(inv.config, live);
  std::string restart;
  for (const std::string& key : ChangedKeys(live->started, inv.config)) {
    if (!IsLiveKey(key)) restart += (restart.empty() ? "" : ",") + key;
  }
  if (!restart.empty()) {
    Log(LogLevel::kWarn, "changed settings take effect at the next restart", {{"keys", restart}});
  }
  Log(LogLevel::kInfo, "reloaded", {{"users", std::to_string(inv.config.users.size())}});
}

// Waits for SIGTERM/SIGINT (stop) and SIGHUP (reload) on its own thread.
// The signals are blocked in every thread, so only sigwait sees them.
void HandleSignals(const sigset_t* set, HttpServer* server, int argc, char** argv,
                   LiveParts* live) {
  for (;;) {
    int sig = 0;
    if (sigwait(set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      Reload(argc, argv, live);
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

#ifdef OTPD_REDIS
RedisOptions RedisStoreOptions(const Config& c, const RedisEndpoint& endpoint,
                               const CodeHasher& hasher) {
  RedisOptions o;
  o.secret_fingerprint = hasher.Fingerprint();
  o.key_hasher = &hasher;
  o.endpoint = endpoint;
  o.prefix = c.redis_prefix;
  o.timeout_ms = c.redis_timeout_ms;
  o.connections = c.redis_connections;
  o.expired_grace_ms = int64_t{c.expired_grace} * 1000;
  return o;
}
#endif

// The code store of `serve`: the SQLite file, or Redis with store = redis.
// Redis unreachable at start is replaced by the SQLite file when
// redis_fallback is on (one host); otherwise otpd serves, answering 503,
// until Redis is back. Anything else wrong with Redis (a refused password)
// stops the start. *in_effect: "sqlite" or "redis". 0, or the exit code.
int OpenStore(const Config& c, const CodeHasher& hasher, std::shared_ptr<SqliteDb> db,
              std::unique_ptr<Storage>* storage, std::string* in_effect) {
  *in_effect = "sqlite";
#ifdef OTPD_REDIS
  if (c.store == "redis") {
    RedisEndpoint endpoint;
    Status s = RedisEndpointOf(c, &endpoint);
    if (s.ok()) s = NewRedisStorage(RedisStoreOptions(c, endpoint, hasher), SystemClock(), storage);
    if (!s.ok()) return Fail("redis", s);
    s = (*storage)->CheckWritable();
    if (s.ok() || (s.code() == Status::Code::kUnavailable && !c.redis_fallback)) {
      if (!s.ok()) {
        Log(LogLevel::kError,
            "redis unreachable at start; answering 503 until it is back (redis_fallback = false)",
            {{"redis", endpoint.Describe()}, {"error", s.message()}});
      }
      *in_effect = "redis";
      return 0;
    }
    if (s.code() != Status::Code::kUnavailable) return Fail("redis", s);
    Log(LogLevel::kWarn,
        "redis unreachable at start; using the local SQLite store until restarted "
        "(redis_fallback = true)",
        {{"redis", endpoint.Describe()}, {"error", s.message()}});
  }
#else
  (void)c;  // store = redis is refused by ValidateConfig in this build
  (void)hasher;
#endif
  Status s = NewSqliteStorage(std::move(db), SystemClock(), storage);
  return s.ok() ? 0 : Fail("storage", s);
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
  std::string store;
  const int failed = OpenStore(c, hasher, db, &storage, &store);
  if (failed != 0) return failed;
  std::unique_ptr<SmsSender> sms;
  Status s = NewSmsSender(c, &sms);
  if (!s.ok()) return Fail("sms", s);

  OtpService service(ServiceOptions(c), storage.get(), users, sms.get(), SystemClock(),
                     OpenSslRandom(), &hasher, audit);
  Receipts receipts;
  s = OpenReceipts(c, db, audit, store, &receipts);
  if (!s.ok()) return Fail("deliveries", s);
  service.SetDeliveries(receipts.tracker.get());
  for (const OversizedTemplate& t : service.OversizedTemplates()) {
    Log(LogLevel::kWarn, "SMS template may not fit one segment; long messages cost more",
        {{"template", t.locale.empty() ? "message_template" : "templates." + t.locale},
         {"characters", std::to_string(t.length.units)},
         {"limit", std::to_string(t.length.limit)},
         {"encoding", t.length.gsm7 ? "GSM-7" : "UCS-2"}});
  }
  ApiKeys keys;
  s = ApiKeys::Load(c.api_keys, c.api_keys_file, &keys);
  if (!s.ok()) return Fail("api keys", s);
  std::unique_ptr<RateLimiter> limiter;
  if (c.ip_requests_per_minute > 0) {
    limiter.reset(new RateLimiter(
        RateLimiterOptions{c.ip_requests_per_minute, c.ip_burst, static_cast<size_t>(c.ip_table_size)},
        SystemClock()));
  }
  HttpApi api(&service, storage.get(), ApiOptions(c, keys), limiter.get(),
              receipts.tracker.get());
  LiveParts live{&service, &api, users, c, keys};
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
  std::thread signals(HandleSignals, &set, &server, argc, argv, &live);
  Log(LogLevel::kInfo, "otpd started",
      {{"version", OTPD_VERSION}, {"listen", c.listen}, {"port", std::to_string(server.port())},
       {"database", c.database}, {"store", store}, {"sms_backend", EffectiveSmsBackend(c)},
       {"scheme", c.tls_cert.empty() ? "http" : "https"}});
  server.Run();
  kill(getpid(), SIGTERM);  // wakes the signal thread if Run ended on its own
  signals.join();
  Log(LogLevel::kInfo, "otpd stopped");
  return 0;
}

// The commands that open the database: serve, users, backup.
int RunWithDatabase(const Invocation& inv, int argc, char** argv) {
  struct stat st;
  if (inv.command == Command::kBackup && stat(inv.config.database.c_str(), &st) != 0) {
    return Fail("backup", Status::NotFound("no database at " + inv.config.database));
  }
  SqliteOptions db_options;
  db_options.path = inv.config.database;
  db_options.busy_timeout_ms = inv.config.busy_timeout_ms;
  // The server checkpoints in the background; the CLI commands, short-lived,
  // keep SQLite's automatic checkpoints.
  if (inv.command == Command::kServe) db_options.checkpoint_interval_ms = 100;
  std::shared_ptr<SqliteDb> db;
  Status s = OpenSqliteDb(db_options, &db);
  if (!s.ok()) return Fail("database " + inv.config.database, s);
  std::unique_ptr<UserDirectory> users;
  s = NewSqliteUserDirectory(db, &users);
  if (!s.ok()) return Fail("users", s);
  if (inv.command == Command::kBackup) {
    s = db->Backup(inv.args[0]);
    if (!s.ok()) return Fail("backup", s);
    fprintf(stderr, "otpd: backup: %s written\n", inv.args[0].c_str());
    return 0;
  }
  std::unique_ptr<AuditLog> audit;
  s = NewSqliteAuditLog(db, SystemClock(), &audit);
  if (!s.ok()) return Fail("audit", s);
  if (inv.command == Command::kAudit) return RunAuditCommand(inv, audit.get());
  if (inv.command != Command::kServe) return RunUsersCommand(inv, users.get());
  return Serve(inv.config, argc, argv, db, users.get(), audit.get());
}

int Main(int argc, char** argv) {
  Invocation inv;
  Status s = ParseInvocation(argc, argv, nullptr, &inv);
  if (!s.ok()) {
    fprintf(stderr, "otpd: %s\n", s.message().c_str());
    return inv.command == Command::kCheckConfig ? 1 : 2;
  }
  if (inv.command == Command::kExit) {
    fputs(inv.output.c_str(), inv.exit_code == 0 ? stdout : stderr);
    return inv.exit_code;
  }
  ReadCredentials(&inv.config);
  if (inv.command == Command::kCheckConfig) {
    fputs(DescribeConfig(inv.config).c_str(), stdout);
    return 0;
  }
  if (inv.command == Command::kServe && !inv.config.log_file.empty()) {
    s = OpenLogFile(inv.config.log_file);
    if (!s.ok()) return Fail("log_file", s);
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

  if (inv.command == Command::kSmsTest) return RunSmsTest(inv.config, inv.args[0]);
  return RunWithDatabase(inv, argc, argv);
}

}  // namespace
}  // namespace otpd

int main(int argc, char** argv) { return otpd::Main(argc, argv); }
