// SMS-pumping detection on the fake clock: the keys of a number, the spike
// rule, and the guard on the real store (SQLite, or the shared test Redis
// when TestStoreIsRedis()): a burst to one region pauses it and no other,
// a steady region never pauses, unpause and expiry work, and the pause is
// seen by a second store on the same file and after a reopen.
#include "otp/pumping.h"

#include <doctest/doctest.h>

#include <regex>
#include <string>
#include <vector>

#include "core/region_metrics.h"
#include "otp/audit.h"
#include "store/sqlite_db.h"
#include "test_util.h"
#ifdef OTPD_REDIS
#include "core/redis_url.h"
#include "redis_server.h"
#endif

namespace otpd {
namespace {

// A region store as the daemon would open it; a second one on the same
// database (or Redis prefix) is another process's.
struct Stores {
  Stores() {
    if (TestStoreIsRedis()) redis_prefix = UniquePrefix();
  }
  static std::string UniquePrefix() {
#ifdef OTPD_REDIS
    return UniqueRedisPrefix();
#else
    return "";
#endif
  }
  std::unique_ptr<RegionStore> Open() {
    std::unique_ptr<RegionStore> store;
#ifdef OTPD_REDIS
    if (TestStoreIsRedis()) {
      RedisEndpoint endpoint;
      REQUIRE(ParseRedisUrl(SharedTestRedis().url(), &endpoint).ok());
      REQUIRE(NewRedisRegionStore(endpoint, redis_prefix, 1000, &store).ok());
      return store;
    }
#endif
    std::shared_ptr<SqliteDb> db;
    SqliteOptions o;
    o.path = dir.File("otpd.db");
    REQUIRE(OpenSqliteDb(o, &db).ok());
    REQUIRE(NewSqliteRegionStore(db, &store).ok());
    return store;
  }
  TempDir dir;
  std::string redis_prefix;
};

PumpingOptions TestOptions() {
  PumpingOptions o;
  o.window_ms = 3600 * 1000;
  o.baseline_ms = 24 * 3600 * 1000;
  o.multiple = 5;
  o.min_sends = 20;
  o.conversion_below = 30;
  o.pause_ms = 3600 * 1000;
  o.prefix_digits = 3;
  return o;
}

struct Fixture {
  Fixture() : store(stores.Open()), guard(store.get(), &clock, audit.get(), TestOptions()) {}
  // A send to `phone`; whether it went.
  bool Send(const std::string& phone) {
    if (!guard.Check(phone).allowed) return false;
    return guard.CountSend(phone, "user", "192.0.2.1").allowed;
  }
  Stores stores;
  FakeClock clock;
  std::unique_ptr<AuditLog> audit;
  std::unique_ptr<RegionStore> store;
  PumpingGuard guard;
};

// A US number in area code `area` (a real one), line `n`.
std::string Us(const std::string& area, int n) {
  std::string line = std::to_string(1000 + n % 9000);
  return "+1" + area + "555" + line;
}

std::string Jamaica(int n) { return "+1876210" + std::to_string(1000 + n % 9000); }

double PausesOfScope(PumpingGuard* guard, const std::string& scope) {
  const std::string text = guard->metrics()->Render();
  std::smatch m;
  const std::regex re("otpd_pumping_pauses_total\\{scope=\"" + scope + "\"\\} ([0-9]+)");
  return std::regex_search(text, m, re) ? std::stod(m[1].str()) : -1;
}

}  // namespace

TEST_CASE("PumpingKeys: the region from libphonenumber, then calling code and national digits") {
  CHECK(PumpingKeys("+18762101234", 3) == std::vector<std::string>{"JM", "+1-876"});
  CHECK(PumpingKeys("+14155550123", 3) == std::vector<std::string>{"US", "+1-415"});
  CHECK(PumpingKeys("+442079460018", 4) == std::vector<std::string>{"GB", "+44-2079"});
  CHECK(PumpingKeys("+14155550123", 0) == std::vector<std::string>{"US"});
  CHECK(PumpingKeys("+11111111111", 3).empty());  // not a valid number
  CHECK(IsPrefixKey("+1-876"));
  CHECK_FALSE(IsPrefixKey("JM"));
}

TEST_CASE("ParsePumpingKey: a region or a prefix, anything else a clear error") {
  std::string key;
  REQUIRE(ParsePumpingKey("jm", 3, &key).ok());
  CHECK(key == "JM");
  REQUIRE(ParsePumpingKey("+1-876", 3, &key).ok());
  CHECK(key == "+1-876");
  CHECK(ParsePumpingKey("+1-8765", 3, &key).message().find("3 national digits") !=
        std::string::npos);
  CHECK(ParsePumpingKey("+1876", 3, &key).IsInvalidArgument());
  CHECK(ParsePumpingKey("ZZ", 3, &key).IsInvalidArgument());
  CHECK(ParsePumpingKey("+999-12", 3, &key).IsInvalidArgument());  // no such calling code
  CHECK(ParsePumpingKey("", 3, &key).IsInvalidArgument());
}

TEST_CASE("IsSpike: min sends, the multiple of the key's own baseline, low conversion") {
  const PumpingOptions o = TestOptions();
  const int64_t now = 1700000000000;
  RegionCounts c;
  c.key = "JM";
  c.first_seen_ms = now - 25 * 3600 * 1000;  // a full baseline of history
  c.baseline_sent = 23 * 4;                  // 4 an hour
  std::string why;
  CHECK(ExpectedPerWindow(c, now, o) == doctest::Approx(4.0));
  c.window_sent = 20;
  CHECK_FALSE(IsSpike(c, now, o, &why));  // 20 is not above 5 x 4
  c.window_sent = 21;
  CHECK(IsSpike(c, now, o, &why));
  CHECK(why == "21 sends in 3600 s, baseline 4.0, conversion 0%");
  c.window_verified = 7;  // 33%: real users typing their codes in
  CHECK_FALSE(IsSpike(c, now, o, &why));
  c.window_verified = 6;  // 28%
  CHECK(IsSpike(c, now, o, &why));
  PumpingOptions any = o;
  any.conversion_below = 100;
  c.window_verified = 21;
  CHECK(IsSpike(c, now, any, &why));

  // A quiet key: below min_sends nothing pauses, however far above zero.
  RegionCounts quiet;
  quiet.first_seen_ms = now - 60 * 1000;
  quiet.window_sent = 19;
  CHECK_FALSE(IsSpike(quiet, now, o, &why));
  quiet.window_sent = 20;
  CHECK(IsSpike(quiet, now, o, &why));

  // A young key's baseline is divided over the history it has (3 h, not
  // 23 h): 12 sends in 3 h is 4 a window.
  RegionCounts young;
  young.first_seen_ms = now - 4 * 3600 * 1000;
  young.baseline_sent = 12;
  CHECK(ExpectedPerWindow(young, now, o) == doctest::Approx(4.0));
}

TEST_CASE("pumping: a burst to one region pauses it, not the others; a steady region never") {
  Fixture f;
  const double region_pauses = PausesOfScope(&f.guard, "region");
  // Two days of steady US traffic, 30 sends an hour, most verified, and a
  // trickle to Jamaica: nothing pauses.
  for (int hour = 0; hour < 48; hour++) {
    for (int i = 0; i < 30; i++) {
      REQUIRE(f.Send(Us(i % 2 ? "415" : "212", hour * 30 + i)));
      if (i % 5 != 0) f.guard.CountVerified(Us("415", 0));
      f.clock.Advance(120 * 1000);
    }
    if (hour % 8 == 0) REQUIRE(f.Send(Jamaica(hour)));
  }
  // Bought traffic to Jamaica: 20 sends in 20 minutes, none verified.
  int sent = 0;
  for (int i = 0; i < 30; i++) {
    if (f.Send(Jamaica(100 + i))) sent++;
    f.clock.Advance(40 * 1000);
  }
  CHECK(sent == 19);  // the 20th made the spike and was refused itself
  const PumpingVerdict v = f.guard.Check(Jamaica(1));
  CHECK_FALSE(v.allowed);
  CHECK(v.key == "JM");
  CHECK(v.retry_after_ms > 3000 * 1000);
  CHECK(v.retry_after_ms <= 3600 * 1000);
  CHECK(f.Send(Us("415", 1)));  // the US goes on
  CHECK(PausesOfScope(&f.guard, "region") == region_pauses + 1);

  std::vector<RegionCounts> rows;
  REQUIRE(f.guard.List(&rows).ok());
  bool jm = false, us = false;
  for (const RegionCounts& c : rows) {
    if (c.key == "JM") {
      jm = true;
      CHECK(c.paused_until_ms > f.clock.NowMillis());
      CHECK(c.reason.find("20 sends in 3600 s") == 0);
      CHECK(c.window_sent == 0);  // the spike's buckets were dropped with the pause
    }
    if (c.key == "US") {
      us = true;
      CHECK(c.paused_until_ms == 0);
      CHECK(c.window_sent >= 15);  // the last 40 minutes of steady sends
    }
  }
  CHECK(jm);
  CHECK(us);

  // The pause ends by itself; counting starts over, so sends go again.
  f.clock.Advance(3601 * 1000);
  CHECK(f.guard.Check(Jamaica(1)).allowed);
  CHECK(f.Send(Jamaica(2)));
}

TEST_CASE("pumping: a burst on one prefix pauses that prefix only") {
  Fixture f;
  const double prefix_pauses = PausesOfScope(&f.guard, "prefix");
  // Steady US traffic over many area codes: 60 an hour, for a day.
  const std::vector<std::string> areas = {"212", "213", "305", "312", "404", "512"};
  for (int i = 0; i < 24 * 60; i++) {
    REQUIRE(f.Send(Us(areas[static_cast<size_t>(i) % areas.size()], i)));
    f.guard.CountVerified(Us("212", 0));
    f.clock.Advance(60 * 1000);
  }
  // 25 sends to area code 415 in 5 minutes: the region barely moves (85
  // against 60 an hour), the prefix never had any.
  int refused = 0;
  for (int i = 0; i < 25; i++) {
    if (!f.Send(Us("415", i))) refused++;
    f.clock.Advance(12 * 1000);
  }
  CHECK(refused == 6);  // the 20th and every one after
  const PumpingVerdict v = f.guard.Check(Us("415", 99));
  CHECK_FALSE(v.allowed);
  CHECK(v.key == "+1-415");
  CHECK(f.guard.Check(Us("212", 99)).allowed);
  CHECK(PausesOfScope(&f.guard, "prefix") == prefix_pauses + 1);
}

TEST_CASE("pumping: unpause lifts it at once and counting starts over; pause by hand") {
  Fixture f;
  for (int i = 0; i < 20; i++) f.Send(Jamaica(i));
  REQUIRE_FALSE(f.guard.Check(Jamaica(0)).allowed);
  bool was = false;
  REQUIRE(f.guard.Unpause("JM", &was).ok());
  CHECK(was);
  REQUIRE(f.guard.Unpause("JM", &was).ok());
  CHECK_FALSE(was);
  // Not paused again by the spike it was paused for.
  for (int i = 0; i < 19; i++) CHECK(f.Send(Jamaica(100 + i)));
  CHECK_FALSE(f.Send(Jamaica(200)));  // a fresh spike is

  bool started = false;
  REQUIRE(f.guard.Pause("GB", 600 * 1000, &started).ok());
  CHECK(started);
  CHECK_FALSE(f.guard.Check("+447400123456").allowed);
  CHECK(f.guard.Check("+447400123456").retry_after_ms == 600 * 1000);
  REQUIRE(f.guard.Pause("GB", 60 * 1000, &started).ok());
  CHECK_FALSE(started);  // already paused, and not shortened
  CHECK(f.guard.Check("+447400123456").retry_after_ms == 600 * 1000);
}

TEST_CASE("pumping: the pause is seen by a second process on the store and after a restart") {
  Stores stores;
  FakeClock clock;
  std::unique_ptr<RegionStore> first = stores.Open();
  std::unique_ptr<RegionStore> second = stores.Open();
  PumpingGuard a(first.get(), &clock, nullptr, TestOptions());
  PumpingGuard b(second.get(), &clock, nullptr, TestOptions());
  // Both processes count into the same window: ten sends each.
  for (int i = 0; i < 10; i++) {
    CHECK(a.CountSend(Jamaica(i), "u", "").allowed);
    CHECK(b.CountSend(Jamaica(50 + i), "u", "").allowed == (i < 9));
  }
  CHECK_FALSE(a.Check(Jamaica(0)).allowed);  // b paused it; a sees it
  first.reset();
  second.reset();
  std::unique_ptr<RegionStore> reopened = stores.Open();
  PumpingGuard c(reopened.get(), &clock, nullptr, TestOptions());
  CHECK_FALSE(c.Check(Jamaica(0)).allowed);
  CHECK(c.Check(Us("415", 0)).allowed);
}

TEST_CASE("pumping: off means no counting and no pause; a new pause is audited once") {
  Stores stores;
  FakeClock clock;
  std::shared_ptr<SqliteDb> db;
  SqliteOptions o;
  o.path = stores.dir.File("audit.db");
  REQUIRE(OpenSqliteDb(o, &db).ok());
  std::unique_ptr<AuditLog> audit;
  REQUIRE(NewSqliteAuditLog(db, &clock, &audit).ok());
  std::unique_ptr<RegionStore> store = stores.Open();
  PumpingOptions off = TestOptions();
  off.enabled = false;
  PumpingGuard guard(store.get(), &clock, audit.get(), off);
  for (int i = 0; i < 40; i++) CHECK(guard.CountSend(Jamaica(i), "u", "").allowed);
  std::vector<RegionCounts> rows;
  REQUIRE(guard.List(&rows).ok());
  CHECK(rows.empty());

  guard.SetOptions(TestOptions());
  for (int i = 0; i < 25; i++) guard.CountSend(Jamaica(i), "mallory", "203.0.113.9");
  std::vector<AuditEvent> events;
  REQUIRE(audit->Query(AuditQuery{}, &events).ok());
  int pauses = 0;
  for (const AuditEvent& e : events) {
    if (e.event != "pumping") continue;
    pauses++;
    CHECK(e.outcome == "paused:JM");
    CHECK(e.user_id == "mallory");
    CHECK(e.client_ip == "203.0.113.9");
  }
  CHECK(pauses == 1);
}

}  // namespace otpd

namespace otpd {
namespace {

int64_t VerifiedOf(PumpingGuard* guard, const std::string& key) {
  std::vector<RegionCounts> rows;
  REQUIRE(guard->List(&rows).ok());
  for (const RegionCounts& c : rows) {
    if (c.key == key) return c.window_verified;
  }
  return -1;
}

TEST_CASE("pumping: a verified code counts for the number its send went to") {
  Fixture f;
  REQUIRE(f.guard.CountSend(Jamaica(1), "amy", "192.0.2.1").allowed);
  REQUIRE(f.guard.CountSend(Us("212", 2), "carl", "192.0.2.1").allowed);  // US is listed
  int lookups = 0;
  auto phone_of = [&] {
    lookups++;
    return Us("212", 1);
  };
  // Amy's send is remembered: no directory read, the send's region counts.
  f.guard.CountVerifiedUser("amy", phone_of);
  CHECK(lookups == 0);
  CHECK(VerifiedOf(&f.guard, "JM") == 1);
  CHECK(VerifiedOf(&f.guard, "US") == 0);
  // A second verify (no send of its own here, e.g. sent by another
  // process) and a user never seen read the directory.
  f.guard.CountVerifiedUser("amy", phone_of);
  f.guard.CountVerifiedUser("bob", phone_of);
  CHECK(lookups == 2);
  CHECK(VerifiedOf(&f.guard, "US") == 2);
  CHECK(VerifiedOf(&f.guard, "JM") == 1);
  // Detection off: nothing is read or counted.
  PumpingOptions off = TestOptions();
  off.enabled = false;
  f.guard.SetOptions(off);
  f.guard.CountVerifiedUser("bob", phone_of);
  CHECK(lookups == 2);
}

}  // namespace
}  // namespace otpd
