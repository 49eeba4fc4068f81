// Storage micro-benchmark, no HTTP: issue (PutCode), verify (VerifyCode,
// half right, half wrong) and send (ReserveSend, the per-phone cap on)
// operations per second on a SQLite file, with 1
// 2 and 32 threads (as many as the HTTP benchmark's connections, where group
// commit shares one transaction between them), to see how much of a
// request the store costs.
//   storage_bench DIR [USERS]
#include <chrono>
#include <functional>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "core/clock.h"
#include "core/code_hash.h"
#include "store/sqlite_db.h"
#include "otp/storage.h"

namespace {

using otpd::Status;

double Run(int threads, long ops_per_thread, const std::function<void(int, long)>& op) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; t++) {
    pool.emplace_back([&, t] {
      for (long i = 0; i < ops_per_thread; i++) op(t, i);
    });
  }
  for (auto& th : pool) th.join();
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return static_cast<double>(threads * ops_per_thread) / s;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: storage_bench DIR [USERS]\n");
    return 2;
  }
  const long users = argc > 2 ? atol(argv[2]) : 20000;
  otpd::SqliteOptions options;
  options.path = std::string(argv[1]) + "/storage_bench.db";
  std::shared_ptr<otpd::SqliteDb> db;
  std::unique_ptr<otpd::Storage> storage;
  Status s = otpd::OpenSqliteDb(options, &db);
  if (s.ok()) s = otpd::NewSqliteStorage(db, otpd::SystemClock(), &storage);
  if (!s.ok()) {
    fprintf(stderr, "storage_bench: %s\n", s.ToString().c_str());
    return 1;
  }
  otpd::CodeHasher hasher("storage-bench-secret-0123456789");
  auto user = [](int t, long i) { return "t" + std::to_string(t) + "u" + std::to_string(i); };
  for (int threads : {1, 2, 32}) {
    const long per = users / threads;
    double put = Run(threads, per, [&](int t, long i) {
      otpd::StoredCode c;
      c.user_id = user(t, i);
      c.code_hash = hasher.Hash(c.user_id, "123456");
      c.issued_at_ms = otpd::SystemClock()->NowMillis();
      c.expires_at_ms = c.issued_at_ms + 3600000;
      storage->PutCode(c);
    });
    double verify = Run(threads, per, [&](int t, long i) {
      otpd::VerifyResult r;
      const std::string u = user(t, i);
      storage->VerifyCode(u, hasher.Hash(u, i % 2 ? "123456" : "654321"), otpd::VerifyLimits(), &r);
    });
    otpd::SendLimits limits;  // the defaults: every cap on, as in production
    limits.cooldown_ms = 0;   // one user sends many times
    limits.per_user = 0;
    limits.global = 0;
    limits.per_ip = 0;        // one client IP per thread
    double send = Run(threads, per, [&](int t, long i) {
      otpd::SendDecision d;
      otpd::SendRequest r{user(t, i), "+1555" + std::to_string(i), "10.0." + std::to_string(t)};
      storage->ReserveSend(r, limits, &d);
    });
    printf("threads=%d issue_per_s=%.0f verify_per_s=%.0f send_per_s=%.0f\n", threads, put,
           verify, send);
  }
  return 0;
}
