// Fills a database for the benchmarks: N users u0000000.. with phones, each
// with a live code that the wrk scripts can compute: the code of user n is
// (n * 7919 + 13) mod 10^6, zero-padded, hashed with SECRET as otpd does.
// The audit trail holds a week of history, as a database in service does:
// 2 000 000 records of random users, the newest an hour old. users-only:
// no codes, and the users written as `otpd users import` writes them (each
// phone checked, its verdict stored in phone_checks), as a send reads them.
//   seed DB SECRET N [users-only]
//   seed DB SECRET N redis PORT PREFIX   (Redis build: users in DB, codes
//                                        through the Redis store on 127.0.0.1:PORT)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "core/clock.h"
#include "core/code_hash.h"
#include "otp/storage.h"
#include "otp/users.h"
#include "store/sqlite_db.h"

namespace {

int Fail(const char* what, const otpd::Status& s) {
  fprintf(stderr, "seed: %s: %s\n", what, s.ToString().c_str());
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: seed DB SECRET N [users-only]\n");
    return 2;
  }
  const long n = atol(argv[3]);
  const bool with_codes = argc < 5;
  const bool to_redis = argc >= 7 && std::string(argv[4]) == "redis";
  std::unique_ptr<otpd::Storage> redis;
  if (to_redis) {
#ifdef OTPD_REDIS
    otpd::RedisOptions ro;
    ro.endpoint.host = "127.0.0.1";
    ro.endpoint.port = atoi(argv[5]);
    ro.prefix = argv[6];
    otpd::Status rs = otpd::NewRedisStorage(ro, otpd::SystemClock(), &redis);
    if (!rs.ok()) return Fail("redis", rs);
#else
    fprintf(stderr, "seed: built without Redis\n");
    return 2;
#endif
  }
  otpd::SqliteOptions options;
  options.path = argv[1];
  std::shared_ptr<otpd::SqliteDb> db;
  otpd::Status s = otpd::OpenSqliteDb(options, &db);
  if (!s.ok()) return Fail("open", s);
  otpd::SqliteLease lease;
  if (!(s = db->Acquire(&lease)).ok()) return Fail("connection", s);
  otpd::SqliteConnection* conn = lease.get();
  otpd::CodeHasher hasher(argv[2]);
  const int64_t now = otpd::SystemClock()->NowMillis();
  std::vector<otpd::User> imported;
  otpd::SqliteTransaction txn(conn);
  if (!(s = txn.Begin()).ok()) return Fail("begin", s);
  for (long i = 0; i < n && s.ok(); i++) {
    char user[16], phone[20], code[8];
    snprintf(user, sizeof user, "u%07ld", i);
    // Valid numbers (San Francisco, exchanges 200-299): sends refuse a
    // number libphonenumber does not accept.
    snprintf(phone, sizeof phone, "+1415%07ld", 2000000 + i);
    snprintf(code, sizeof code, "%06ld", (i * 7919 + 13) % 1000000);
    if (!with_codes && redis == nullptr) {
      imported.push_back(otpd::User{user, phone});
      continue;
    }
    otpd::SqliteStatement u;
    s = conn->Prepare("INSERT OR REPLACE INTO users (user_id, phone) VALUES (?1, ?2)", &u);
    if (!s.ok()) break;
    u.BindText(1, user);
    u.BindText(2, phone);
    s = u.Run();
    if (s.ok() && redis != nullptr) {
      s = redis->PutCode({user, hasher.Hash(user, code), now, now + 86400000});
      continue;
    }
    if (!s.ok() || !with_codes) continue;
    otpd::SqliteStatement c;
    s = conn->Prepare(
        "INSERT OR REPLACE INTO otps (user_id, code_hash, issued_at, expires_at,"
        " attempts) VALUES (?1, ?2, ?3, ?4, 0)",
        &c);
    if (!s.ok()) break;
    c.BindText(1, user);
    c.BindBlob(2, hasher.Hash(user, code));
    c.BindInt64(3, now);
    c.BindInt64(4, now + 86400000);
    s = c.Run();
  }
  if (s.ok()) {
    otpd::SqliteStatement a;
    s = conn->Prepare(
        "WITH RECURSIVE c(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM c WHERE i < 1999999)"
        " INSERT INTO audit (at, user_id, phone, client_ip, event, outcome)"
        " SELECT ?1 - 3600000 - (1999999 - i) * 302, printf('u%07d', abs(random()) % ?2),"
        " '+1*******111', '203.0.113.5', CASE i % 2 WHEN 0 THEN 'send' ELSE 'verify' END,"
        " CASE i % 2 WHEN 0 THEN 'sent' ELSE 'ok' END FROM c",
        &a);
    if (s.ok()) {
      a.BindInt64(1, now);
      a.BindInt64(2, n);
      s = a.Run();
    }
  }
  if (s.ok()) s = txn.Commit();
  if (!s.ok()) return Fail("insert", s);
  if (imported.empty()) return 0;
  lease.Reset();
  std::unique_ptr<otpd::UserDirectory> users;
  s = otpd::NewSqliteUserDirectory(db, &users);
  if (s.ok()) s = users->UpsertAll(imported);
  if (!s.ok()) return Fail("import", s);
  return 0;
}
