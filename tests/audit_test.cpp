#include "otp/audit.h"

#include <doctest/doctest.h>

#include <cstdio>

#include "otpd_process.h"
#include "store/sqlite_db.h"
#include "test_util.h"

namespace otpd {
namespace {

struct AuditStore {
  TempDir dir;
  FakeClock clock{1764000000000};  // 2025-11-24T16:00:00Z
  std::shared_ptr<SqliteDb> db;
  std::unique_ptr<AuditLog> audit;

  AuditStore() {
    SqliteOptions options;
    options.path = dir.File("otpd.db");
    REQUIRE(OpenSqliteDb(options, &db).ok());
    REQUIRE(NewSqliteAuditLog(db, &clock, &audit).ok());
  }
  void Add(const std::string& user, const std::string& outcome) {
    REQUIRE(audit->Record(AuditEvent{-1, user, "+1*******111", "10.0.0.1", "send", outcome}).ok());
  }
  std::vector<AuditEvent> Query(const std::string& user, int64_t since_ms, int limit = 1000) {
    std::vector<AuditEvent> events;
    REQUIRE(audit->Query(AuditQuery{user, since_ms, limit}, &events).ok());
    return events;
  }
};

}  // namespace

TEST_CASE("AuditLog: records are stamped by the clock and read back oldest first") {
  AuditStore s;
  const int64_t t0 = s.clock.NowMillis();
  s.Add("abc", "sent");
  s.clock.Advance(1000);
  s.Add("def", "rate_limited:cooldown");
  s.clock.Advance(1000);
  s.Add("abc", "sms_failed");
  std::vector<AuditEvent> all = s.Query("", 0);
  REQUIRE(all.size() == 3);
  CHECK(all[0].at_ms == t0);
  CHECK(all[0].user_id == "abc");
  CHECK(all[0].masked_phone == "+1*******111");
  CHECK(all[0].client_ip == "10.0.0.1");
  CHECK(all[0].event == "send");
  CHECK(all[1].outcome == "rate_limited:cooldown");
  CHECK(all[2].at_ms == t0 + 2000);
  // By user (case-insensitive), since a time, and the newest `limit`.
  std::vector<AuditEvent> abc = s.Query("ABC", 0);
  REQUIRE(abc.size() == 2);
  CHECK(abc[1].outcome == "sms_failed");
  CHECK(s.Query("", t0 + 1000).size() == 2);
  CHECK(s.Query("", t0 + 1001).size() == 1);
  std::vector<AuditEvent> newest = s.Query("", 0, 2);
  REQUIRE(newest.size() == 2);
  CHECK(newest[0].user_id == "def");
}

TEST_CASE("AuditLog: a user's newest records among newer ones of others, with no index by user") {
  AuditStore s;
  for (const char* outcome : {"sent", "invalid_code", "ok"}) {
    s.Add("abc", outcome);
    s.clock.Advance(10);
    for (int i = 0; i < 50; i++) s.Add("u" + std::to_string(i), "sent");
    s.clock.Advance(10);
  }
  std::vector<AuditEvent> abc = s.Query("abc", 0, 2);
  REQUIRE(abc.size() == 2);
  CHECK(abc[0].outcome == "invalid_code");
  CHECK(abc[1].outcome == "ok");
  CHECK(s.Query("abc", s.clock.NowMillis() - 30).size() == 1);
  CHECK(s.Query("", 0).size() == 153);
}

TEST_CASE("AuditLog: with an operator's index by user, queries answer the same") {
  AuditStore s;
  {
    SqliteLease lease;
    REQUIRE(s.db->Acquire(&lease).ok());
    REQUIRE(lease.get()->Exec("CREATE INDEX audit_user_at ON audit (user_id, at)").ok());
  }
  s.Add("abc", "sent");
  s.clock.Advance(10);
  s.Add("def", "sent");
  s.Add("ABC", "sms_failed");
  std::vector<AuditEvent> abc = s.Query("abc", 0);
  REQUIRE(abc.size() == 2);
  CHECK(abc[0].outcome == "sent");
  CHECK(abc[1].outcome == "sms_failed");
  CHECK(s.Query("abc", s.clock.NowMillis()).size() == 1);
  CHECK(s.Query("", 0).size() == 3);
}

TEST_CASE("AuditLog: Purge removes events older than the retention") {
  AuditStore s;
  s.Add("abc", "sent");
  s.clock.Advance(5000);
  s.Add("abc", "sent");
  int64_t purged = -1;
  REQUIRE(s.audit->Purge(5000, &purged).ok());
  CHECK(purged == 0);
  s.clock.Advance(1);
  REQUIRE(s.audit->Purge(5000, &purged).ok());
  CHECK(purged == 1);
  CHECK(s.Query("", 0).size() == 1);
}

TEST_CASE("AuditLog: records a full queue refuses are counted (otpd_records_dropped_total)") {
  AuditStore s;
  s.Add("abc", "sent");
  CHECK(s.audit->Dropped() == 0);
  // The file replaced under the log: every write fails, the queue fills up
  // to its 100 000 records, and what comes after is refused.
  const std::string db = s.dir.File("otpd.db");
  WriteFile(db + ".copy", ReadFile(db));
  REQUIRE(rename((db + ".copy").c_str(), db.c_str()) == 0);
  uint64_t refused = 0;
  for (int i = 0; i < 100050; i++) {
    refused += !s.audit->Record(AuditEvent{-1, "u", "", "10.0.0.1", "send", "sent"}).ok();
  }
  CHECK(refused >= 50);
  CHECK(s.audit->Dropped() >= refused);
}

TEST_CASE("ParseSince: UTC times, dates and ages") {
  const int64_t now = 1764000000000;  // 2025-11-24T16:00:00Z
  int64_t t = 0;
  REQUIRE(ParseSince("2025-11-24T16:00:00Z", now, &t).ok());
  CHECK(t == now);
  REQUIRE(ParseSince("2025-11-24", now, &t).ok());
  CHECK(t == now - 16 * 3600000LL);
  REQUIRE(ParseSince("90s", now, &t).ok());
  CHECK(t == now - 90000);
  REQUIRE(ParseSince("30m", now, &t).ok());
  CHECK(t == now - 1800000);
  REQUIRE(ParseSince("12h", now, &t).ok());
  CHECK(t == now - 12 * 3600000LL);
  REQUIRE(ParseSince("7d", now, &t).ok());
  CHECK(t == now - 7 * 86400000LL);
  for (const char* bad : {"", "d", "7w", "-7d", "2025-13-01", "2025-11-24T16:00:00",
                          "2025-11-24 16:00:00Z", "yesterday", "99999999d"}) {
    INFO(bad);
    CHECK(ParseSince(bad, now, &t).IsInvalidArgument());
  }
}

TEST_CASE("FormatUtc: milliseconds as ISO 8601 UTC") {
  CHECK(FormatUtc(1764000000123) == "2025-11-24T16:00:00.123Z");
  CHECK(FormatUtc(0) == "1970-01-01T00:00:00.000Z");
}

}  // namespace otpd
