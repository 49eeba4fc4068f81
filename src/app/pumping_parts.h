// The daemon's SMS-pumping parts, built from the config: the region store
// (in the SQLite file, or in Redis when the code store is Redis, so every
// node shares counts and pauses), the guard, and a task that refreshes the
// region gauges and purges old buckets every minute.
#ifndef OTPD_APP_PUMPING_PARTS_H_
#define OTPD_APP_PUMPING_PARTS_H_

#include <memory>
#include <string>

#include "config/config.h"
#include "core/clock.h"
#include "core/periodic.h"
#include "otp/audit.h"
#include "otp/pumping.h"
#include "store/sqlite_db.h"

namespace otpd {

struct PumpingParts {
  std::unique_ptr<RegionStore> store;
  std::unique_ptr<PumpingGuard> guard;
  std::unique_ptr<PeriodicTask> refresh;  // only with `refresh` below
};

// Builds the parts on `store` ("redis": Redis, else the SQLite `db`), the
// guard with `clock` and `audit` (may be null); with `refresh`, starts the
// minute task too.
Status OpenPumping(const Config& c, std::shared_ptr<SqliteDb> db, AuditLog* audit,
                   const std::string& store, Clock* clock, bool refresh, PumpingParts* parts);

}  // namespace otpd

#endif  // OTPD_APP_PUMPING_PARTS_H_
