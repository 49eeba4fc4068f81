// OtpStack: a whole otpd below the socket, for tests: a real SQLite file in
// a temporary directory, the fake clock, a seeded random source, the
// recording SMS sender behind a fault-injecting wrapper, the service and
// the HTTP API.
#ifndef OTPD_TESTS_OTP_STACK_H_
#define OTPD_TESTS_OTP_STACK_H_

#include <memory>
#include <string>

#include "audit.h"
#include "code_hash.h"
#include "http_api.h"
#include "otp_service.h"
#include "sqlite_db.h"
#include "storage.h"
#include "test_util.h"
#include "users.h"

namespace otpd {

struct OtpStack {
  explicit OtpStack(const OtpOptions& options = OtpOptions(),
                    const HttpApiOptions& api_options = HttpApiOptions());

  // Answers of the API for a POST with `body`.
  HttpAnswer Post(const std::string& path, const std::string& body);
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
  std::unique_ptr<OtpService> service;
  std::unique_ptr<HttpApi> api;
};

}  // namespace otpd

#endif  // OTPD_TESTS_OTP_STACK_H_
