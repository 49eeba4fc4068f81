#include "app/daemon.h"

#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <thread>

#include "app/options.h"
#include "app/pumping_parts.h"
#include "app/receipts.h"
#include "app/systemd_service.h"
#include "core/clock.h"
#include "core/code_hash.h"
#include "core/delivery_metrics.h"
#include "core/log.h"
#include "core/metrics.h"
#include "core/periodic.h"
#include "core/phone.h"
#include "core/random.h"
#include "core/service_health.h"
#include "core/systemd_notify.h"
#include "http/http_server.h"
#include "http/rate_limiter.h"
#include "otp/sms.h"
#include "otp/storage.h"

namespace otpd {
namespace {

int Fail(const std::string& what, const Status& s) {
  fprintf(stderr, "otpd: %s: %s\n", what.c_str(), s.message().c_str());
  return 1;
}

void StopSignals(sigset_t* set) {
  sigemptyset(set);
  for (int sig : {SIGTERM, SIGINT, SIGHUP}) sigaddset(set, sig);
}

// Waits for SIGTERM/SIGINT (stop) and SIGHUP (reload) on its own thread.
// The signals are blocked in every thread, so only sigwait sees them.
void HandleSignals(HttpServer* server, const ConfigReader* reread, LiveParts* live) {
  sigset_t set;
  StopSignals(&set);
  for (;;) {
    int sig = 0;
    if (sigwait(&set, &sig) != 0) continue;
    if (sig == SIGHUP) {
      Invocation inv;
      const Status read = (*reread)(&inv);
      const ReloadReport report = Reload(read, inv.config, live);
      if (live->health != nullptr) live->health->Reloaded(report.status);
      continue;
    }
    Log(LogLevel::kInfo, "stopping", {{"signal", sig == SIGTERM ? "TERM" : "INT"}});
    if (live->health != nullptr) live->health->Stopping();
    if (!server->Stop()) {
      // A slow or idle client still holds a worker. Every committed write
      // is already durable (SQLite WAL), so leave without waiting for it.
      Log(LogLevel::kWarn, "shutdown deadline passed with connections open; exiting");
      _exit(0);
    }
    return;
  }
}

// The code store of `serve`: the SQLite file, or Redis with store = redis
// (see ChooseStore). *in_effect: "sqlite" or "redis". 0, or the exit code.
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
    switch (ChooseStore(s, c.redis_fallback)) {
      case StoreChoice::kRedisDown:
        Log(LogLevel::kError,
            "redis unreachable at start; answering 503 until it is back (redis_fallback = false)",
            {{"redis", endpoint.Describe()}, {"error", s.message()}});
        [[fallthrough]];
      case StoreChoice::kRedis:
        *in_effect = "redis";
        return 0;
      case StoreChoice::kFail:
        return Fail("redis", s);
      case StoreChoice::kSqliteFallback:
        Log(LogLevel::kWarn,
            "redis unreachable at start; using the local SQLite store until restarted "
            "(redis_fallback = true)",
            {{"redis", endpoint.Describe()}, {"error", s.message()}});
        break;
    }
  }
#else
  (void)c;  // store = redis is refused by ValidateConfig in this build
#endif
  Status s = NewSqliteStorage(std::move(db), SystemClock(),
                              SqliteStorageOptions{hasher.Fingerprint()}, storage);
  return s.ok() ? 0 : Fail("storage", s);
}

void WarnOversizedTemplates(const OtpService& service) {
  for (const OversizedTemplate& t : service.OversizedTemplates()) {
    Log(LogLevel::kWarn, "SMS template may not fit one segment; long messages cost more",
        {{"template", t.locale.empty() ? "message_template" : "templates." + t.locale},
         {"characters", std::to_string(t.length.units)},
         {"limit", std::to_string(t.length.limit)},
         {"encoding", t.length.gsm7 ? "GSM-7" : "UCS-2"}});
  }
}

// A calling code shared by several regions ("1": the US, Canada and the
// Caribbean) admits them all: allowed_regions is what the operator meant.
void WarnWideCountryCodes(const OtpOptions& o) {
  for (const std::string& cc : o.allowed_country_codes) {
    const std::vector<std::string> regions = RegionsOfCountryCode(cc);
    if (regions.size() <= 1) continue;
    std::string names;
    for (const std::string& r : regions) names += (names.empty() ? "" : ",") + r;
    Log(LogLevel::kWarn,
        "allowed_country_codes admits more than one region; name them in allowed_regions",
        {{"country_code", cc}, {"regions", names}, {"count", std::to_string(regions.size())}});
  }
}

std::unique_ptr<RateLimiter> NewIpLimiter(const Config& c) {
  if (c.ip_requests_per_minute <= 0) return nullptr;
  return std::unique_ptr<RateLimiter>(
      new RateLimiter(RateLimiterOptions{c.ip_requests_per_minute, c.ip_burst,
                                         static_cast<size_t>(c.ip_table_size)},
                      SystemClock()));
}

std::function<void()> PurgeTask(OtpService* service, AuditLog* audit, const Config& c) {
  const int64_t retention_ms = int64_t{c.audit_retention_days} * 86400 * 1000;
  return [service, audit, retention_ms] {
    int64_t n = 0;
    Status ps = service->PurgeExpired(&n);
    if (!ps.ok()) Log(LogLevel::kWarn, "purge failed", {{"error", ps.ToString()}});
    if (n > 0) Log(LogLevel::kDebug, "purged expired codes", {{"count", std::to_string(n)}});
    ps = audit->Purge(retention_ms, &n);
    if (!ps.ok()) Log(LogLevel::kWarn, "audit purge failed", {{"error", ps.ToString()}});
  };
}

// The HTTP part of Serve, once the store, the SMS sender and the service
// exist: the API, the server, the purge task and the signal thread.
int ServeHttp(const Config& c, const ConfigReader& reread, OtpService* service,
              UserDirectory* users, AuditLog* audit, const std::string& store,
              DeliveryTracker* deliveries, SmsHealth* sms_health, PumpingGuard* pumping) {
  ApiKeys keys;
  Status s = ApiKeys::Load(c.api_keys, c.api_keys_file, &keys);
  if (!s.ok()) return Fail("api keys", s);
  std::unique_ptr<RateLimiter> limiter = NewIpLimiter(c);
  HttpApi api(service, ApiOptions(c, keys), limiter.get(), deliveries);
  api.SetSmsHealth(sms_health);
  LiveParts live{service, &api, users, c, keys};
  live.pumping = pumping;
  HttpServer server(ServerOptions(c), &api);
  s = server.Bind();
  if (!s.ok()) return Fail("listen", s);

  PeriodicTask purge(int64_t{c.purge_interval} * 1000, PurgeTask(service, audit, c));
  // READY=1 once the port is bound and the store takes writes; watchdog
  // pings while both stay so.
  const SystemdNotifier systemd = SystemdNotifier::FromEnvironment(getpid());
  ServiceHealth health(
      &systemd, [&] { return CheckServing(c.listen, server.port(), *service); },
      "serving on " + c.listen + " port " + std::to_string(server.port()));
  live.health = &health;
  health.Start();
  std::thread signals(HandleSignals, &server, &reread, &live);
  Log(LogLevel::kInfo, "otpd started",
      {{"version", OTPD_VERSION},
       {"listen", c.listen},
       {"port", std::to_string(server.port())},
       {"database", c.database},
       {"store", store},
       {"sms_backend", EffectiveSmsBackend(c)},
       {"scheme", c.tls_cert.empty() ? "http" : "https"}});
  server.Run();
  kill(getpid(), SIGTERM);  // wakes the signal thread if Run ended on its own
  signals.join();
  Log(LogLevel::kInfo, "otpd stopped");
  return 0;
}

}  // namespace

void ApplyLiveSettings(const Config& c, LiveParts* live) {
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(c.log_level, &level);
  SetLogLevel(level);
  live->service->SetOptions(ServiceOptions(c));
  if (live->pumping != nullptr) live->pumping->SetOptions(PumpingOptionsOf(c));
  live->api->SetOptions(ApiOptions(c, live->keys));
}

namespace {

std::string Joined(const std::vector<std::string>& keys) {
  std::string out;
  for (const std::string& key : keys) out += (out.empty() ? "" : ",") + key;
  return out;
}

}  // namespace

ReloadReport Reload(const Status& read, const Config& next, LiveParts* live) {
  ReloadReport report;
  report.status = read;
  if (report.status.ok() && !next.config_file.empty()) {
    report.status = live->users->SyncFromConfig(next.users);
  }
  if (!report.status.ok()) {
    Log(LogLevel::kError, "reload failed; keeping the running config",
        {{"error", report.status.message()}});
    return report;
  }
  Config running = live->running;
  for (const KeySpec& key : Keys()) {
    if (ValueText(key, running) == ValueText(key, next)) continue;
    if (key.live) {
      CopyValue(key, next, &running);
      report.applied.push_back(key.name);
    } else {
      report.restart.push_back(key.name);
    }
  }
  running.templates = next.templates;
  running.voice_templates = next.voice_templates;
  running.users = next.users;
  live->running = running;
  if (!running.log_file.empty()) {
    Status ls = OpenLogFile(running.log_file);
    if (!ls.ok()) Log(LogLevel::kError, "cannot reopen the log file", {{"error", ls.message()}});
  }
  ApplyLiveSettings(running, live);
  if (!report.restart.empty()) {
    Log(LogLevel::kWarn, "changed settings take effect at the next restart",
        {{"keys", Joined(report.restart)}});
  }
  report.users = next.users.size();
  Log(LogLevel::kInfo, "reloaded",
      {{"applied", Joined(report.applied)}, {"users", std::to_string(report.users)}});
  return report;
}

StoreChoice ChooseStore(const Status& writable, bool redis_fallback) {
  if (writable.ok()) return StoreChoice::kRedis;
  if (writable.code() != Status::Code::kUnavailable) return StoreChoice::kFail;
  return redis_fallback ? StoreChoice::kSqliteFallback : StoreChoice::kRedisDown;
}

void BlockStopSignals() {
  sigset_t set;
  StopSignals(&set);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
}

int Serve(const Config& c, const ConfigReader& reread, std::shared_ptr<SqliteDb> db,
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

  // The process's one set of metrics: the service and the tracker count
  // there, the HTTP layer counts requests there and renders it on /metrics.
  Metrics metrics(MetricRoutes());
  DeliveryMetrics delivery_metrics(SystemClock());
  OtpService service(ServiceOptions(c), storage.get(), users, sms.get(), SystemClock(),
                     OpenSslRandom(), &hasher, audit, &metrics, &delivery_metrics);
  if (store == "redis") {
    // Users, the audit trail and phone verdicts stay in the SQLite file.
    service.SetLocalFileCheck([db] { return db->ProbeHealth(SystemClock()->NowMillis()); });
  }
  WarnOversizedTemplates(service);
  WarnWideCountryCodes(service.options());
  Receipts receipts;
  s = OpenReceipts(c, db, audit, &delivery_metrics, store, &receipts);
  if (!s.ok()) return Fail("deliveries", s);
  service.SetDeliveries(receipts.tracker.get());
  PumpingParts pumping;
  s = OpenPumping(c, db, audit, store, SystemClock(), /*refresh=*/true, &pumping);
  if (!s.ok()) return Fail("pumping", s);
  service.SetPumpingGuard(pumping.guard.get());
  return ServeHttp(c, reread, &service, users, audit, store, receipts.tracker.get(),
                   dynamic_cast<SmsHealth*>(sms.get()), pumping.guard.get());
}

}  // namespace otpd
