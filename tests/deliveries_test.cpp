// The delivery log (SQLite) and the tracker on top: receipts recorded once,
// replays and late receipts harmless, the unknown sweep, and what reaches
// the audit trail and the metrics.
#include "otp/deliveries.h"

#include <doctest/doctest.h>

#include <chrono>
#include <thread>

#include "core/delivery_metrics.h"
#include "store/sqlite_db.h"
#include "test_util.h"
#ifdef OTPD_REDIS
#include "core/redis_url.h"
#include "redis_server.h"
#endif

namespace otpd {
namespace {

struct LogFixture {
  LogFixture() {
    SqliteOptions o;
    o.path = dir.File("otpd.db");
    REQUIRE(OpenSqliteDb(o, &db).ok());
    if (TestStoreIsRedis()) {
#ifdef OTPD_REDIS
      RedisEndpoint endpoint;
      REQUIRE(ParseRedisUrl(SharedTestRedis().url(), &endpoint).ok());
      REQUIRE(NewRedisDeliveryLog(endpoint, UniqueRedisPrefix(), 1000, 86400000, &log).ok());
#endif
    } else {
      REQUIRE(NewSqliteDeliveryLog(db, &log).ok());
    }
    REQUIRE(NewSqliteAuditLog(db, &clock, &audit).ok());
  }
  std::vector<AuditEvent> Deliveries() {
    std::vector<AuditEvent> events, out;
    REQUIRE(audit->Query(AuditQuery{}, &events).ok());
    for (const AuditEvent& e : events) {
      if (e.event == "delivery") out.push_back(e);
    }
    return out;
  }
  TempDir dir;
  FakeClock clock;
  std::shared_ptr<SqliteDb> db;
  std::unique_ptr<DeliveryLog> log;
  std::unique_ptr<AuditLog> audit;
};

Delivery Row(const std::string& id, const std::string& user, int64_t at) {
  Delivery d;
  d.message_id = id;
  d.provider = "twilio";
  d.user_id = user;
  d.masked_phone = "+1*******111";
  d.sent_at_ms = at;
  d.code_expires_at_ms = at + 300000;
  return d;
}

TEST_CASE("delivery log: statuses only move forward; a replay changes nothing") {
  LogFixture f;
  REQUIRE(f.log->RecordSend(Row("SM1", "abc", 1000)).ok());
  REQUIRE(f.log->RecordSend(Row("SM1", "other", 2000)).ok());  // same ID: ignored
  bool found = false, changed = false;
  Delivery row;
  REQUIRE(f.log->Apply("SM1", "sent", 0, 1500, &found, &changed, &row).ok());
  CHECK(found);
  CHECK(changed);
  CHECK(row.status == "sent");
  CHECK(row.user_id == "abc");
  REQUIRE(f.log->Apply("SM1", "sent", 0, 1600, &found, &changed, &row).ok());
  CHECK_FALSE(changed);
  REQUIRE(f.log->Apply("SM1", "undelivered", 30003, 1700, &found, &changed, &row).ok());
  CHECK(changed);
  CHECK(row.error_code == 30003);
  // Late and replayed receipts after a final status: nothing moves.
  for (const char* late : {"queued", "sent", "delivered", "undelivered"}) {
    REQUIRE(f.log->Apply("SM1", late, 0, 1800, &found, &changed, &row).ok());
    CHECK_FALSE(changed);
  }
  REQUIRE(f.log->LastForUser("abc", &row).ok());
  CHECK(row.status == "undelivered");
  CHECK(row.error_code == 30003);
  CHECK(row.updated_at_ms == 1700);
  REQUIRE(f.log->Apply("SM-unknown", "delivered", 0, 1800, &found, &changed, &row).ok());
  CHECK_FALSE(found);
  CHECK(f.log->LastForUser("nobody", &row).IsNotFound());
}

TEST_CASE("delivery log: the newest send is the user's last; the sweep marks once") {
  LogFixture f;
  REQUIRE(f.log->RecordSend(Row("SM1", "abc", 1000)).ok());
  REQUIRE(f.log->RecordSend(Row("SM2", "abc", 2000)).ok());
  REQUIRE(f.log->RecordSend(Row("SM3", "xyz", 3000)).ok());
  Delivery row;
  REQUIRE(f.log->LastForUser("abc", &row).ok());
  CHECK(row.message_id == "SM2");
  bool found = false, changed = false;
  REQUIRE(f.log->Apply("SM1", "delivered", 0, 2500, &found, &changed, &row).ok());
  std::vector<Delivery> rows;
  REQUIRE(f.log->MarkUnknown(2500, 2600, &rows).ok());
  REQUIRE(rows.size() == 1);  // SM1 is final; SM3 is newer than the cutoff
  CHECK(rows[0].message_id == "SM2");
  CHECK(rows[0].status == "unknown");
  REQUIRE(f.log->MarkUnknown(2500, 2700, &rows).ok());
  CHECK(rows.empty());
  // A final receipt after the sweep still lands; an earlier one does not.
  REQUIRE(f.log->Apply("SM2", "sent", 0, 2800, &found, &changed, &row).ok());
  CHECK_FALSE(changed);
  REQUIRE(f.log->Apply("SM2", "delivered", 0, 2900, &found, &changed, &row).ok());
  CHECK(changed);
  int64_t purged = 0;
  REQUIRE(f.log->Purge(2500, &purged).ok());
  if (!TestStoreIsRedis()) {  // Redis rows leave by their TTL instead
    CHECK(purged == 2);
    CHECK(f.log->LastForUser("abc", &row).IsNotFound());
  }
}

#ifdef OTPD_REDIS
// Rows are written behind the send: the node that sent always finds them
// (each read flushes first), another node once they are flushed (at most
// 20 ms later, or when the sending node stops), and a batch of them goes
// out in one pipelined round trip, in order.
TEST_CASE("redis delivery log: another node finds each send once it is flushed") {
  RedisEndpoint endpoint;
  REQUIRE(ParseRedisUrl(SharedTestRedis().url(), &endpoint).ok());
  const std::string prefix = UniqueRedisPrefix();
  std::unique_ptr<DeliveryLog> a, b;
  REQUIRE(NewRedisDeliveryLog(endpoint, prefix, 1000, 86400000, &a).ok());
  REQUIRE(NewRedisDeliveryLog(endpoint, prefix, 1000, 86400000, &b).ok());
  Delivery row;
  // 600 rows: more than one batch of 256.
  for (int i = 0; i < 600; i++) {
    REQUIRE(
        a->RecordSend(Row("SM" + std::to_string(i), "u" + std::to_string(i % 7), 1000 + i)).ok());
  }
  REQUIRE(a->RecordSend(Row("SM5", "other", 5000)).ok());   // same ID again: ignored
  REQUIRE(a->RecordSend(Row("SM-end", "end", 6000)).ok());  // written last, in order
  bool seen = false;
  for (int tries = 0; tries < 500 && !seen; tries++) {  // flushed within 20 ms
    seen = b->LastForUser("end", &row).ok();
    if (!seen) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  REQUIRE(seen);
  for (int u = 0; u < 7; u++) {
    REQUIRE(b->LastForUser("u" + std::to_string(u), &row).ok());
    const int last = 599 - (599 - u) % 7;  // the user's newest of the 600
    CHECK(row.message_id == "SM" + std::to_string(last));
    CHECK(row.sent_at_ms == 1000 + last);
  }
  CHECK(b->LastForUser("other", &row).IsNotFound());
  // The sending node's own read needs no wait.
  REQUIRE(a->RecordSend(Row("SM-new", "fresh", 9000)).ok());
  REQUIRE(a->LastForUser("fresh", &row).ok());
  CHECK(row.message_id == "SM-new");
  // A node that stops writes what it had queued.
  REQUIRE(a->RecordSend(Row("SM-last", "late", 9100)).ok());
  a.reset();
  REQUIRE(b->LastForUser("late", &row).ok());
  CHECK(row.message_id == "SM-last");
}
#endif

TEST_CASE("delivery tracker: a change is audited and counted once, replays are not") {
  LogFixture f;
  DeliveryOptions options;
  options.unknown_after_ms = 60000;
  DeliveryMetrics m(&f.clock);
  DeliveryTracker tracker(f.log.get(), &f.clock, f.audit.get(), options, &m);
  tracker.OnSent("twilio", "SM1", "abc", "+11111111111", f.clock.NowMillis() + 300000);
  tracker.OnSent("twilio", "SM2", "abc", "+11111111111", f.clock.NowMillis() + 300000);
  tracker.OnSent("twilio", "SM3", "xyz", "+12222222222", f.clock.NowMillis() + 300000);
  tracker.OnSent("twilio", "", "xyz", "+12222222222", 0);  // no ID: nothing to record
  f.clock.AdvanceSeconds(4);
  bool known = false;
  for (int i = 0; i < 3; ++i) REQUIRE(tracker.OnReceipt("SM1", "delivered", 0, &known).ok());
  CHECK(known);
  REQUIRE(tracker.OnReceipt("SM2", "failed", 30008, &known).ok());
  REQUIRE(tracker.OnReceipt("SM2", "failed", 30008, &known).ok());
  REQUIRE(tracker.OnReceipt("SM9", "delivered", 0, &known).ok());
  CHECK_FALSE(known);
  CHECK(m.StatusCount("delivered") == 1);
  CHECK(m.StatusCount("failed") == 1);
  f.clock.AdvanceSeconds(60);
  REQUIRE(tracker.Sweep().ok());
  REQUIRE(tracker.Sweep().ok());
  CHECK(m.StatusCount("unknown") == 1);
  const std::vector<AuditEvent> events = f.Deliveries();
  REQUIRE(events.size() == 3);
  CHECK(events[0].user_id == "abc");
  CHECK(events[0].outcome == "delivered via twilio");
  CHECK(events[0].masked_phone == "+1*******111");
  CHECK(events[1].outcome == "failed:30008 via twilio");
  CHECK(events[2].user_id == "xyz");
  CHECK(events[2].outcome == "unknown via twilio");
  Delivery row;
  REQUIRE(tracker.LastSend("abc", &row).ok());
  CHECK(row.message_id == "SM2");
  CHECK(row.status == "failed");
}

TEST_CASE("delivery metrics: the send-to-delivered histogram and conversion by hour") {
  FakeClock clock;
  DeliveryMetrics m(&clock);
  m.RecordDelivered(1500);
  m.RecordDelivered(45000);
  for (int i = 0; i < 4; ++i) m.RecordCodeSent();
  m.RecordCodeVerified();
  std::string text = m.Render();
  CHECK(text.find("otpd_sms_delivery_seconds_bucket{le=\"1\"} 0\n") != std::string::npos);
  CHECK(text.find("otpd_sms_delivery_seconds_bucket{le=\"2\"} 1\n") != std::string::npos);
  CHECK(text.find("otpd_sms_delivery_seconds_bucket{le=\"30\"} 1\n") != std::string::npos);
  CHECK(text.find("otpd_sms_delivery_seconds_bucket{le=\"60\"} 2\n") != std::string::npos);
  CHECK(text.find("otpd_sms_delivery_seconds_count 2\n") != std::string::npos);
  CHECK(text.find("otpd_sms_delivery_seconds_sum 46.5\n") != std::string::npos);
  CHECK(text.find("otpd_conversion_sent_last_hour 4\n") != std::string::npos);
  CHECK(text.find("otpd_conversion_ratio_last_hour 0.25\n") != std::string::npos);
  clock.AdvanceSeconds(30 * 60);
  m.RecordCodeSent();
  m.RecordCodeVerified();
  text = m.Render();
  CHECK(text.find("otpd_conversion_sent_last_hour 5\n") != std::string::npos);
  CHECK(text.find("otpd_conversion_verified_last_hour 2\n") != std::string::npos);
  clock.AdvanceSeconds(31 * 60);  // the first four sends have left the hour
  text = m.Render();
  CHECK(text.find("otpd_conversion_sent_last_hour 1\n") != std::string::npos);
  CHECK(text.find("otpd_conversion_ratio_last_hour 1\n") != std::string::npos);
  clock.AdvanceSeconds(3 * 3600);
  text = m.Render();
  CHECK(text.find("otpd_conversion_sent_last_hour 0\n") != std::string::npos);
  CHECK(text.find("# TYPE otpd_conversion_ratio_last_hour gauge\n") != std::string::npos);
  CHECK(text.find("\notpd_conversion_ratio_last_hour ") == std::string::npos);  // no sends
}

}  // namespace
}  // namespace otpd
