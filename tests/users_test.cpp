// UserDirectory on SQLite: lookups, edits, validation, config sync, and
// edits made behind its back with plain SQL.
#include "otp/users.h"

#include <doctest/doctest.h>
#include <sqlite3.h>

#include <cstdio>
#include <string>
#include <vector>

#include "core/phone.h"
#include "otp/storage.h"
#include "store/sqlite_db.h"
#include "test_util.h"

namespace otpd {
namespace {

constexpr char kPhoneA[] = "+12105550001";
constexpr char kPhoneB[] = "+12125550002";
constexpr char kPhoneC[] = "+447400900123";

struct Directory {
  TempDir dir;
  std::shared_ptr<SqliteDb> db;
  std::unique_ptr<UserDirectory> users;

  Directory() {
    SqliteOptions options;
    options.path = dir.File("otpd.db");
    Status s = OpenSqliteDb(options, &db);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    REQUIRE(NewSqliteUserDirectory(db, &users).ok());
  }

  // "id=phone,..." in list order; a user without a phone shows as "id=".
  std::string Listing() {
    std::vector<User> all;
    Status s = users->List(&all);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    std::string out;
    for (const User& u : all) out += (out.empty() ? "" : ",") + u.user_id + "=" + u.phone;
    return out;
  }

  // Runs `sql` on a separate plain sqlite3 connection; the result code.
  int RawExec(const std::string& sql) {
    sqlite3* raw = nullptr;
    REQUIRE(sqlite3_open_v2(dir.File("otpd.db").c_str(), &raw, SQLITE_OPEN_READWRITE, nullptr) ==
            SQLITE_OK);
    sqlite3_busy_timeout(raw, 5000);
    int rc = sqlite3_exec(raw, sql.c_str(), nullptr, nullptr, nullptr);
    sqlite3_close(raw);
    return rc;
  }
};

// The rows `sql` returns on a separate plain connection: columns joined
// by '|', rows by ',' (NULL reads as "NULL").
std::string RawQuery(Directory& d, const std::string& sql) {
  sqlite3* raw = nullptr;
  REQUIRE(sqlite3_open_v2(d.dir.File("otpd.db").c_str(), &raw, SQLITE_OPEN_READONLY, nullptr) ==
          SQLITE_OK);
  sqlite3_busy_timeout(raw, 5000);
  std::string out;
  auto row = [](void* arg, int n, char** values, char**) {
    std::string* text = static_cast<std::string*>(arg);
    if (!text->empty()) *text += ",";
    for (int i = 0; i < n; i++)
      *text += std::string(i ? "|" : "") + (values[i] ? values[i] : "NULL");
    return 0;
  };
  REQUIRE(sqlite3_exec(raw, sql.c_str(), row, &out, nullptr) == SQLITE_OK);
  sqlite3_close(raw);
  return out;
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

TEST_CASE("Users: upsert and lookup ignore case; IDs are stored lower-case") {
  Directory d;
  REQUIRE(d.users->Upsert("Alice", kPhoneA).ok());
  User user;
  REQUIRE(d.users->Lookup("ALICE", &user).ok());
  CHECK(user.user_id == "alice");
  CHECK(user.phone == kPhoneA);
  REQUIRE(d.users->Upsert("aLiCe", kPhoneB).ok());  // changes the phone, no second row
  CHECK(d.Listing() == std::string("alice=") + kPhoneB);
}

TEST_CASE("Users: looking up an unknown user is NotFound") {
  Directory d;
  User user{"untouched", "untouched", "untouched"};
  Status s = d.users->Lookup("nobody", &user);
  CHECK(s.IsNotFound());
  CHECK(Contains(s.message(), "nobody"));
  CHECK(user.user_id == "untouched");
}

TEST_CASE("Users: bad input is refused with a message naming it, and nothing is written") {
  Directory d;
  REQUIRE(d.users->Upsert("bob", kPhoneA).ok());
  const std::string before = d.Listing();

  Status s = d.users->Upsert("bob", "5551110002");
  CHECK(s.IsInvalidArgument());
  CHECK(Contains(s.message(), "5551110002"));
  CHECK(Contains(s.message(), "bob"));
  for (const char* phone : {"", "+0551110002", "+1", "+1555111000212345", "+1555-111"}) {
    INFO("phone: '", phone, "'");
    CHECK(d.users->Upsert("carol", phone).IsInvalidArgument());
  }
  s = d.users->Upsert("", kPhoneA);
  CHECK(s.IsInvalidArgument());
  CHECK(Contains(s.message(), "empty"));
  s = d.users->Upsert(std::string(129, 'x'), kPhoneA);
  CHECK(s.IsInvalidArgument());
  CHECK(Contains(s.message(), "xxxxxxxx"));
  CHECK(Contains(s.message(), "128"));
  CHECK(d.Listing() == before);

  CHECK(d.users->Upsert(std::string(128, 'x'), kPhoneA).ok());  // the limit itself is fine
}

TEST_CASE("Users: remove deletes the user and their live code only") {
  Directory d;
  FakeClock clock;
  std::unique_ptr<Storage> storage;
  REQUIRE(NewSqliteStorage(d.db, &clock, &storage).ok());
  REQUIRE(d.users->Upsert("dave", kPhoneA).ok());
  REQUIRE(d.users->Upsert("erin", kPhoneB).ok());
  const int64_t now = clock.NowMillis();
  REQUIRE(storage->PutCode(StoredCode{"dave", "hash-d", now, now + 60000}).ok());
  REQUIRE(storage->PutCode(StoredCode{"erin", "hash-e", now, now + 60000}).ok());

  REQUIRE(d.users->Remove("DAVE").ok());
  User user;
  CHECK(d.users->Lookup("dave", &user).IsNotFound());
  VerifyResult r;
  REQUIRE(storage->VerifyCode("dave", "hash-d", VerifyLimits(), &r).ok());
  CHECK(r.outcome == VerifyOutcome::kNotFound);
  REQUIRE(storage->VerifyCode("erin", "hash-e", VerifyLimits(), &r).ok());
  CHECK(r.outcome == VerifyOutcome::kOk);
  CHECK(d.Listing() == std::string("erin=") + kPhoneB);

  Status s = d.users->Remove("dave");
  CHECK(s.IsNotFound());
  CHECK(Contains(s.message(), "dave"));
}

TEST_CASE("Users: List is ordered by ID") {
  Directory d;
  CHECK(d.Listing().empty());
  REQUIRE(d.users->Upsert("carol", kPhoneC).ok());
  REQUIRE(d.users->Upsert("Alice", kPhoneA).ok());
  REQUIRE(d.users->Upsert("bob", kPhoneB).ok());
  CHECK(d.Listing() == std::string("alice=") + kPhoneA + ",bob=" + kPhoneB + ",carol=" + kPhoneC);
}

TEST_CASE("Users: config sync adds, updates and removes config users only") {
  Directory d;
  REQUIRE(d.users->Upsert("cli", kPhoneC).ok());
  REQUIRE(d.users->SyncFromConfig({{"Ann", kPhoneA}, {"ben", kPhoneB}}).ok());
  CHECK(d.Listing() == std::string("ann=") + kPhoneA + ",ben=" + kPhoneB + ",cli=" + kPhoneC);

  REQUIRE(d.users->SyncFromConfig({{"ben", kPhoneC}, {"cat", kPhoneA}}).ok());
  CHECK(d.Listing() == std::string("ben=") + kPhoneC + ",cat=" + kPhoneA + ",cli=" + kPhoneC);

  REQUIRE(d.users->SyncFromConfig({}).ok());
  CHECK(d.Listing() == std::string("cli=") + kPhoneC);
}

TEST_CASE("Users: a sync never removes a user added with the CLI or SQL") {
  Directory d;
  REQUIRE(d.users->Upsert("cli", kPhoneA).ok());
  REQUIRE(d.RawExec("INSERT INTO users (user_id, phone) VALUES ('sql', NULL)") == SQLITE_OK);
  // Listed by the config too: the config sets the phone...
  REQUIRE(d.users->SyncFromConfig({{"cli", kPhoneB}, {"sql", kPhoneC}}).ok());
  CHECK(d.Listing() == std::string("cli=") + kPhoneB + ",sql=" + kPhoneC);
  // ...but dropping them from the config does not remove them.
  REQUIRE(d.users->SyncFromConfig({}).ok());
  CHECK(d.Listing() == std::string("cli=") + kPhoneB + ",sql=" + kPhoneC);

  // A config user the CLI edits becomes the CLI's.
  REQUIRE(d.users->SyncFromConfig({{"conf", kPhoneA}}).ok());
  REQUIRE(d.users->Upsert("conf", kPhoneB).ok());
  REQUIRE(d.users->SyncFromConfig({}).ok());
  CHECK(Contains(d.Listing(), std::string("conf=") + kPhoneB));
}

TEST_CASE("Users: a sync removes the codes of the users it removes") {
  Directory d;
  FakeClock clock;
  std::unique_ptr<Storage> storage;
  REQUIRE(NewSqliteStorage(d.db, &clock, &storage).ok());
  REQUIRE(d.users->SyncFromConfig({{"gone", kPhoneA}}).ok());
  const int64_t now = clock.NowMillis();
  REQUIRE(storage->PutCode(StoredCode{"gone", "hash", now, now + 60000}).ok());
  REQUIRE(d.users->SyncFromConfig({}).ok());
  VerifyResult r;
  REQUIRE(storage->VerifyCode("gone", "hash", VerifyLimits(), &r).ok());
  CHECK(r.outcome == VerifyOutcome::kNotFound);
}

TEST_CASE("Users: a sync with a bad entry changes nothing") {
  Directory d;
  REQUIRE(d.users->SyncFromConfig({{"old", kPhoneA}}).ok());
  const std::string before = d.Listing();

  Status s = d.users->SyncFromConfig({{"new", kPhoneB}, {"zed", "+0123"}});
  CHECK(s.IsInvalidArgument());
  CHECK(Contains(s.message(), "zed"));
  CHECK(Contains(s.message(), "+0123"));
  CHECK(d.Listing() == before);

  s = d.users->SyncFromConfig({{"new", kPhoneB}, {"", kPhoneC}});
  CHECK(s.IsInvalidArgument());
  CHECK(d.Listing() == before);

  s = d.users->SyncFromConfig({{"Twin", kPhoneB}, {"twin", kPhoneC}});
  CHECK(s.IsInvalidArgument());
  CHECK(Contains(s.message(), "Twin"));
  CHECK(d.Listing() == before);
}

TEST_CASE("Users: a sync that fails half-way inside the database changes nothing") {
  Directory d;
  REQUIRE(d.users->SyncFromConfig({{"old", kPhoneA}}).ok());
  // Valid input, refused by the database at the last user.
  REQUIRE(d.RawExec("CREATE TRIGGER refuse_zed BEFORE INSERT ON users WHEN NEW.user_id = 'zed'"
                    " BEGIN SELECT RAISE(ABORT, 'zed refused'); END;") == SQLITE_OK);
  Status s = d.users->SyncFromConfig({{"new", kPhoneB}, {"zed", kPhoneC}});
  CHECK_FALSE(s.ok());
  CHECK(Contains(s.message(), "zed refused"));
  CHECK(d.Listing() == std::string("old=") + kPhoneA);
}

TEST_CASE("Users: edits made with plain SQL are seen by the next call") {
  Directory d;
  REQUIRE(d.users->Upsert("sam", kPhoneA).ok());
  User user;
  REQUIRE(d.users->Lookup("sam", &user).ok());  // prepares and caches the lookup
  REQUIRE(user.phone == kPhoneA);

  REQUIRE(d.RawExec(std::string("UPDATE users SET phone = '") + kPhoneB + "'") == SQLITE_OK);
  REQUIRE(d.users->Lookup("sam", &user).ok());
  CHECK(user.phone == kPhoneB);

  REQUIRE(d.RawExec("INSERT INTO users (user_id, phone) VALUES ('Tia', NULL)") == SQLITE_OK);
  REQUIRE(d.users->Lookup("tia", &user).ok());
  CHECK(user.user_id == "Tia");
  CHECK(user.phone.empty());

  REQUIRE(d.RawExec("DELETE FROM users WHERE user_id = 'sam'") == SQLITE_OK);
  CHECK(d.users->Lookup("sam", &user).IsNotFound());
}

TEST_CASE("Users: the locale column is read by Lookup and List, kept by Upsert, checked") {
  Directory d;
  REQUIRE(d.users->Upsert("maria", kPhoneA).ok());
  User user;
  REQUIRE(d.users->Lookup("maria", &user).ok());
  CHECK(user.locale.empty());  // NULL: the default template
  REQUIRE(d.RawExec("UPDATE users SET locale = 'es-MX' WHERE user_id = 'maria'") == SQLITE_OK);
  REQUIRE(d.users->Lookup("MARIA", &user).ok());
  CHECK(user.locale == "es-MX");
  REQUIRE(d.users->Upsert("maria", kPhoneB).ok());  // a phone change keeps the locale
  std::vector<User> all;
  REQUIRE(d.users->List(&all).ok());
  REQUIRE(all.size() == 1);
  CHECK(all[0].phone == kPhoneB);
  CHECK(all[0].locale == "es-MX");
  CHECK(d.RawExec("UPDATE users SET locale = 'es MX' WHERE user_id = 'maria'") ==
        SQLITE_CONSTRAINT);
  CHECK(d.RawExec("UPDATE users SET locale = '' WHERE user_id = 'maria'") == SQLITE_CONSTRAINT);
}

}  // namespace
}  // namespace otpd

namespace otpd {
namespace {

constexpr char kChecksSql[] = "SELECT phone, plans = '%s', e164, region, type FROM phone_checks";

std::string Checks(Directory& d) {
  char sql[256];
  snprintf(sql, sizeof sql, kChecksSql, PhonePlansId().c_str());
  return RawQuery(d, std::string(sql) + " ORDER BY phone");
}

TEST_CASE("Users: each phone's verdict is stored beside it and dropped with the number") {
  Directory d;
  REQUIRE(d.users->Upsert("ann", kPhoneA).ok());
  // Written with the user, under this process's plans; e164 NULL: the phone.
  CHECK(Checks(d) == std::string(kPhoneA) + "|1|NULL|US|fixed_line_or_mobile");
  // Plain SQL changing the number drops the old verdict at once.
  REQUIRE(d.RawExec(std::string("UPDATE users SET phone = '") + kPhoneC + "'") == SQLITE_OK);
  CHECK(Checks(d).empty());
  // The next lookup parses the new number and stores its verdict behind
  // the answer (the directory writes what is queued when it goes).
  User user;
  REQUIRE(d.users->Lookup("ann", &user).ok());
  CHECK(user.phone == kPhoneC);
  REQUIRE(NewSqliteUserDirectory(d.db, &d.users).ok());
  CHECK(Checks(d) == std::string(kPhoneC) + "|1|NULL|GB|mobile");
  // Removing the user removes the number from phone_checks too.
  REQUIRE(d.users->Remove("ann").ok());
  CHECK(Checks(d).empty());
  REQUIRE(d.users->Upsert("bob", kPhoneB).ok());
  REQUIRE(d.RawExec("DELETE FROM users") == SQLITE_OK);
  CHECK(Checks(d).empty());
}

TEST_CASE("Users: a stored verdict answers the lookup; one under other plans is parsed again") {
  Directory d;
  // The verdict says something a parse never would (another E.164), so the
  // answer shows which was used. The number is this test's alone: the
  // verdict is remembered process-wide.
  REQUIRE(d.RawExec("INSERT INTO users (user_id, phone) VALUES ('vic', '+12145550177')") ==
          SQLITE_OK);
  REQUIRE(d.RawExec("INSERT INTO phone_checks VALUES ('+12145550177', '" + PhonePlansId() +
                    "', '+12145550178', 'US', 'mobile')") == SQLITE_OK);
  User user;
  REQUIRE(d.users->Lookup("vic", &user).ok());
  CHECK(user.phone == "+12145550178");
  // A verdict of other plans (another libphonenumber) is not used: the
  // number is parsed and the verdict replaced.
  REQUIRE(d.RawExec(std::string("INSERT INTO users (user_id, phone) VALUES ('wes', '") + kPhoneB +
                    "')") == SQLITE_OK);
  REQUIRE(d.RawExec(std::string("INSERT INTO phone_checks VALUES ('") + kPhoneB +
                    "', '0:old', '+12125550003', 'US', 'mobile')") == SQLITE_OK);
  REQUIRE(d.users->Lookup("wes", &user).ok());
  CHECK(user.phone == kPhoneB);
  REQUIRE(NewSqliteUserDirectory(d.db, &d.users).ok());
  CHECK(Contains(Checks(d), std::string(kPhoneB) + "|1|NULL|US|fixed_line_or_mobile"));
  // A number written with SQL in a form the CLI would have normalised is
  // stored with its E.164 beside it.
  REQUIRE(d.RawExec("INSERT INTO users (user_id, phone) VALUES ('gus', '+4402079460018')") ==
          SQLITE_OK);
  REQUIRE(d.users->Lookup("gus", &user).ok());
  CHECK(user.phone == "+442079460018");
  REQUIRE(NewSqliteUserDirectory(d.db, &d.users).ok());
  CHECK(Contains(Checks(d), "+4402079460018|1|+442079460018|GB|fixed_line"));
}

}  // namespace
}  // namespace otpd
