#include "app/pumping_parts.h"

#include <utility>

#include "app/options.h"
#include "core/log.h"
#include "core/redis_url.h"

namespace otpd {

Status OpenPumping(const Config& c, std::shared_ptr<SqliteDb> db, AuditLog* audit,
                   const std::string& store, Clock* clock, bool refresh, PumpingParts* parts) {
  Status s;
#ifdef OTPD_REDIS
  if (store == "redis") {
    RedisEndpoint endpoint;
    s = RedisEndpointOf(c, &endpoint);
    if (s.ok())
      s = NewRedisRegionStore(endpoint, c.redis_prefix, c.redis_timeout_ms, &parts->store);
  } else {
    s = NewSqliteRegionStore(std::move(db), &parts->store);
  }
#else
  (void)store;
  s = NewSqliteRegionStore(std::move(db), &parts->store);
#endif
  if (!s.ok()) return s;
  parts->guard.reset(new PumpingGuard(parts->store.get(), clock, audit, PumpingOptionsOf(c)));
  if (!refresh) return Status::OK();
  PumpingGuard* guard = parts->guard.get();
  parts->refresh.reset(new PeriodicTask(60 * 1000, [guard] {
    Status rs = guard->Refresh();
    if (!rs.ok()) Log(LogLevel::kWarn, "pumping refresh failed", {{"error", rs.ToString()}});
  }));
  return Status::OK();
}

}  // namespace otpd
