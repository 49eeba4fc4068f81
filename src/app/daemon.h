// The daemon (`otpd serve`): assembles the real parts from the config,
// serves until SIGTERM/SIGINT, and re-reads the config on SIGHUP.
//
// The decisions it makes (what a reload changes, which code store to use
// when Redis is down at start) are plain functions here, so tests check
// them without a process or a signal.
#ifndef OTPD_APP_DAEMON_H_
#define OTPD_APP_DAEMON_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/keys.h"
#include "core/service_health.h"
#include "core/status.h"
#include "http/api_keys.h"
#include "http/http_api.h"
#include "otp/audit.h"
#include "otp/otp_service.h"
#include "otp/users.h"
#include "store/sqlite_db.h"

namespace otpd {

// Re-reads the configuration (flags, environment, file) into *inv, as the
// process did at start. Called on SIGHUP.
using ConfigReader = std::function<Status(Invocation* inv)>;

// The parts a reload changes while serving.
struct LiveParts {
  OtpService* service;
  HttpApi* api;
  UserDirectory* users;
  // The config in effect: the start's, with the live keys (KeySpec::live)
  // of every reload since. Restart keys keep their start values here.
  Config running;
  ApiKeys keys;                     // loaded at start; not reloaded
  ServiceHealth* health = nullptr;  // what systemd hears; null in tests
  PumpingGuard* pumping = nullptr;  // takes the pumping_* keys; may be null
};

// What one reload did.
struct ReloadReport {
  Status status;                     // not OK: nothing was changed
  std::vector<std::string> applied;  // changed live keys, now in effect
  std::vector<std::string> restart;  // changed keys that wait for a restart
  size_t users = 0;                  // users in the new config's [users]
};

// Applies a re-read config: `read` is how reading it went. A bad config
// (or a [users] table the database refuses) keeps the running state.
// Otherwise re-syncs [users] (when there is a file), takes the changed
// live keys and [templates] into live->running, reopens log_file, applies
// live->running to the log level, the service and the API, and logs the
// report: "reloaded" with applied=KEYS, and the restart keys in a warning.
// The keys are found, applied and logged from the one key table.
ReloadReport Reload(const Status& read, const Config& next, LiveParts* live);

// Sets the log level and the service's and the API's options from `c`.
void ApplyLiveSettings(const Config& c, LiveParts* live);

// With store = redis, what to do after the start's write check of Redis.
enum class StoreChoice {
  kRedis,           // Redis answered: use it
  kRedisDown,       // unreachable, redis_fallback off: serve 503 until it is back
  kSqliteFallback,  // unreachable, redis_fallback on: the local SQLite file
  kFail,            // anything else (a refused password): stop the start
};
StoreChoice ChooseStore(const Status& writable, bool redis_fallback);

// Blocks SIGTERM, SIGINT and SIGHUP in the calling thread (so in every
// thread it starts later; only the daemon's signal thread takes them) and
// ignores SIGPIPE. Call before any thread starts.
void BlockStopSignals();

// Serves until SIGTERM or SIGINT; SIGHUP re-reads the config with
// `reread`. 0, or the exit code of a failed start (the error printed).
int Serve(const Config& c, const ConfigReader& reread, std::shared_ptr<SqliteDb> db,
          UserDirectory* users, AuditLog* audit);

}  // namespace otpd

#endif  // OTPD_APP_DAEMON_H_
