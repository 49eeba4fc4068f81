// The daemon's decisions without a process: what a reload changes and
// reports, and which code store a start with Redis down ends up using.
#include "app/daemon.h"

#include <doctest/doctest.h>

#include <algorithm>

#include "core/log.h"
#include "otp_stack.h"

namespace otpd {
namespace {

TEST_CASE("ChooseStore: Redis when it answers, the fallback only when it is unreachable") {
  CHECK(ChooseStore(Status::OK(), true) == StoreChoice::kRedis);
  CHECK(ChooseStore(Status::OK(), false) == StoreChoice::kRedis);
  CHECK(ChooseStore(Status::Unavailable("connection refused"), true) ==
        StoreChoice::kSqliteFallback);
  CHECK(ChooseStore(Status::Unavailable("connection refused"), false) == StoreChoice::kRedisDown);
  // A refused password is not a Redis that is down: the start stops.
  CHECK(ChooseStore(Status::IOError("WRONGPASS invalid password"), true) == StoreChoice::kFail);
  CHECK(ChooseStore(Status::Internal("bad reply"), false) == StoreChoice::kFail);
}

// An OtpStack with the parts a reload touches.
struct Live {
  Live() : parts{stack.service.get(), stack.api.get(), stack.users.get(), Config(), ApiKeys()} {}
  ~Live() { SetLogLevel(LogLevel::kInfo); }
  OtpStack stack;
  LiveParts parts;
};

TEST_CASE("a reload applies the live keys and names the changed restart keys") {
  Live live;
  Config next = live.parts.started;
  next.code_length = 8;
  next.expiry = 120;
  next.port = 9000;
  next.database = "/tmp/other.db";
  const ReloadReport report = Reload(Status::OK(), next, &live.parts);
  REQUIRE(report.status.ok());
  CHECK(live.stack.service->options().code_length == 8);
  CHECK(live.stack.service->options().expiry_ms == 120000);
  CHECK(report.restart == std::vector<std::string>{"port", "database"});
  // The new length is what the next send uses.
  live.stack.Post("/send-code", R"({"user_id":"abc"})");
  CHECK(live.stack.sms.LastCode().size() == 8);
}

TEST_CASE("a reload that failed to read keeps the running config") {
  Live live;
  Config next = live.parts.started;
  next.code_length = 8;
  const ReloadReport report =
      Reload(Status::InvalidArgument("code_length = 11: must be between 4 and 10"), next,
             &live.parts);
  CHECK(report.status.code() == Status::Code::kInvalidArgument);
  CHECK(report.restart.empty());
  CHECK(live.stack.service->options().code_length == OtpOptions().code_length);
}

TEST_CASE("a reload re-syncs the file's [users], and a bad one keeps everything") {
  Live live;
  Config next = live.parts.started;
  next.config_file = "/etc/otpd/otpd.conf";
  next.users = {{"zed", "+15551230009"}};
  next.code_length = 7;
  ReloadReport report = Reload(Status::OK(), next, &live.parts);
  REQUIRE(report.status.ok());
  CHECK(report.users == 1);
  User user;
  REQUIRE(live.stack.users->Lookup("ZED", &user).ok());
  CHECK(user.phone == "+15551230009");

  next.users = {{"zed", "not a phone"}};
  next.code_length = 9;
  report = Reload(Status::OK(), next, &live.parts);
  CHECK_FALSE(report.status.ok());
  CHECK(live.stack.service->options().code_length == 7);
  REQUIRE(live.stack.users->Lookup("zed", &user).ok());
  CHECK(user.phone == "+15551230009");
}

TEST_CASE("IsLiveKey: the service and log keys are live, the listener is not") {
  for (const char* key : {"log_level", "code_length", "expiry", "message_template"}) {
    CHECK(IsLiveKey(key));
  }
  for (const char* key : {"port", "listen", "database", "store", "api_keys"}) {
    CHECK_FALSE(IsLiveKey(key));
  }
}

}  // namespace
}  // namespace otpd
