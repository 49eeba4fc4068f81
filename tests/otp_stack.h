// OtpStack: a whole otpd below the socket, for tests: a real SQLite file in
// a temporary directory, the fake clock, a seeded random source, the
// recording SMS sender behind a fault-injecting wrapper, the service and
// the HTTP API. Codes are in the SQLite file too, or, when
// TestStoreIsRedis(), in the shared test Redis under a prefix of their own
// (users and the audit trail stay in SQLite).
#ifndef OTPD_TESTS_OTP_STACK_H_
#define OTPD_TESTS_OTP_STACK_H_

#include <memory>
#include <string>
#include <thread>

#include "core/code_hash.h"
#include "core/delivery_metrics.h"
#include "core/metrics.h"
#include "http/http_api.h"
#include "http/http_server.h"
#include "otp/audit.h"
#include "otp/otp_service.h"
#include "otp/storage.h"
#include "otp/users.h"
#include "store/sqlite_db.h"
#include "test_util.h"

namespace otpd {

// How requests reach the API: straight to HttpApi::Handle, or over a real
// loopback socket to an in-process HttpServer on an ephemeral port.
enum class Transport { kDirect, kHttp };

// Forwards to a real store until told to fail (leveldb's ErrorEnv): set
// `fail` to a non-OK Status and every call returns it.
class FailingStorage : public Storage {
 public:
  explicit FailingStorage(Storage* target) : target_(target) {}
  Status fail;
  Status PutCode(const StoredCode& c) override { return fail.ok() ? target_->PutCode(c) : fail; }
  Status DeleteCode(const std::string& u, const std::string& h) override {
    return fail.ok() ? target_->DeleteCode(u, h) : fail;
  }
  Status VerifyCode(const std::string& u, const std::string& h, const VerifyLimits& l,
                    VerifyResult* r) override {
    return fail.ok() ? target_->VerifyCode(u, h, l, r) : fail;
  }
  Status ReserveSend(const SendRequest& q, const SendLimits& l, SendDecision* d) override {
    return fail.ok() ? target_->ReserveSend(q, l, d) : fail;
  }
  Status PurgeExpired(int64_t g, int64_t h, int64_t* n) override {
    return fail.ok() ? target_->PurgeExpired(g, h, n) : fail;
  }
  Status CheckWritable() override { return fail.ok() ? target_->CheckWritable() : fail; }

 private:
  Storage* target_;
};

// The value of the first header called `name` in `a` ("" when none).
std::string HeaderValue(const HttpAnswer& a, const std::string& name);

struct OtpStack {
  explicit OtpStack(const OtpOptions& options = OtpOptions(),
                    const HttpApiOptions& api_options = HttpApiOptions(),
                    Transport transport = Transport::kDirect);
  ~OtpStack();

  // The answer to a POST of `body` / a GET, through the stack's transport.
  // Over HTTP, every response header is in HttpAnswer::headers.
  HttpAnswer Post(const std::string& path, const std::string& body);
  HttpAnswer Get(const std::string& path);
  HttpAnswer Request(const std::string& method, const std::string& path,
                     const std::string& body = "");
  // Sends a code to `user` through the API and returns it from the fake SMS.
  std::string SendAndRead(const std::string& user);

  TempDir dir;
  FakeClock clock;
  SeededRandom random{42};
  FakeSmsSender sms;
  FailingSmsSender failing{&sms};
  CodeHasher hasher{"test-secret-0123456789abcdef"};
  std::shared_ptr<SqliteDb> db;
  std::unique_ptr<Storage> storage;
  std::unique_ptr<UserDirectory> users;
  std::unique_ptr<AuditLog> audit;
  // What the service and the server count, read back by tests as exact
  // counts (nothing here is shared with another stack).
  Metrics metrics{MetricRoutes()};
  DeliveryMetrics delivery_metrics{&clock};
  std::unique_ptr<OtpService> service;
  std::unique_ptr<HttpApi> api;
  std::unique_ptr<HttpServer> server;  // kHttp only
  std::thread server_thread;
};

}  // namespace otpd

#endif  // OTPD_TESTS_OTP_STACK_H_
