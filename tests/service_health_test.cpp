// SystemdNotifier and ServiceHealth against a real AF_UNIX datagram
// socket, as systemd's NOTIFY_SOCKET is.
#include "core/service_health.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>

#include "core/systemd_notify.h"
#include "notify_socket.h"
#include "test_util.h"

namespace otpd {
namespace {

TEST_CASE("SystemdNotifier: one datagram per message, to a path or an abstract name") {
  TempDir dir;
  NotifySocket manager(dir.File("notify"));
  SystemdNotifier notifier(manager.path(), 0);
  CHECK(notifier.enabled());
  REQUIRE(notifier.Notify("READY=1\nSTATUS=serving").ok());
  CHECK(manager.Receive() == "READY=1\nSTATUS=serving");
  REQUIRE(notifier.Notify("WATCHDOG=1").ok());
  CHECK(manager.Receive() == "WATCHDOG=1");
  CHECK(manager.Poll() == "");

  const std::string abstract = "@otpd-test-" + std::to_string(getpid());
  NotifySocket hidden(abstract);
  REQUIRE(SystemdNotifier(abstract, 0).Notify("READY=1").ok());
  CHECK(hidden.Receive() == "READY=1");
}

TEST_CASE("SystemdNotifier: no socket sends nothing; a bad one is an error") {
  CHECK(SystemdNotifier("", 0).Notify("READY=1").ok());
  CHECK_FALSE(SystemdNotifier("", 0).enabled());
  TempDir dir;
  CHECK(SystemdNotifier(dir.File("nobody-listens"), 0).Notify("READY=1").code() ==
        Status::Code::kIOError);
  CHECK(SystemdNotifier("relative", 0).Notify("READY=1").IsInvalidArgument());
  CHECK(SystemdNotifier("/" + std::string(200, 'x'), 0).Notify("READY=1").IsInvalidArgument());
}

TEST_CASE("SystemdNotifier::FromEnvironment: the watchdog only for the process systemd named") {
  setenv("NOTIFY_SOCKET", "/run/x", 1);
  setenv("WATCHDOG_USEC", "30000000", 1);
  unsetenv("WATCHDOG_PID");
  CHECK(SystemdNotifier::FromEnvironment(42).watchdog_usec() == 30000000);
  setenv("WATCHDOG_PID", "42", 1);
  CHECK(SystemdNotifier::FromEnvironment(42).watchdog_usec() == 30000000);
  CHECK(SystemdNotifier::FromEnvironment(43).watchdog_usec() == 0);
  setenv("WATCHDOG_USEC", "soon", 1);
  CHECK(SystemdNotifier::FromEnvironment(42).watchdog_usec() == 0);
  CHECK(SystemdNotifier::FromEnvironment(42).enabled());
  unsetenv("NOTIFY_SOCKET");
  unsetenv("WATCHDOG_USEC");
  unsetenv("WATCHDOG_PID");
  CHECK_FALSE(SystemdNotifier::FromEnvironment(42).enabled());
}

TEST_CASE("StatusLine: a message cannot add a second assignment") {
  CHECK(StatusLine("redis down\nREADY=1") == "STATUS=redis down READY=1");
}

// The check the tests flip.
struct Health {
  Status status;
  Status operator()() const { return status; }
};

TEST_CASE("ServiceHealth: READY=1 on the first passing check, pings only while healthy") {
  TempDir dir;
  NotifySocket manager(dir.File("notify"));
  // An hour's watchdog: the thread's rounds never come during the test,
  // which drives every round itself.
  SystemdNotifier notifier(manager.path(), 3600LL * 1000000);
  Health health{Status::Unavailable("redis: connection refused")};
  ServiceHealth service(
      &notifier, [&health] { return health(); }, "serving on 127.0.0.1 port 1");
  service.Start();
  CHECK(manager.Receive() == "STATUS=starting: redis: connection refused");
  CHECK(manager.Poll() == "");  // neither READY=1 nor a ping
  CHECK_FALSE(service.ready());

  health.status = Status::OK();
  CHECK(service.Tick().ok());
  CHECK(manager.Receive() == "READY=1\nSTATUS=serving on 127.0.0.1 port 1");
  CHECK(manager.Receive() == "WATCHDOG=1");
  CHECK(service.ready());
  CHECK(service.Tick().ok());
  CHECK(manager.Receive() == "WATCHDOG=1");

  health.status = Status::IOError("disk full");
  CHECK_FALSE(service.Tick().ok());
  CHECK(manager.Receive() == "STATUS=unhealthy: disk full");
  CHECK(manager.Poll() == "");  // no ping: systemd restarts otpd if it stays so

  health.status = Status::OK();
  service.Tick();
  CHECK(manager.Receive() == "STATUS=serving on 127.0.0.1 port 1");
  CHECK(manager.Receive() == "WATCHDOG=1");

  service.Reloaded(Status::OK());
  CHECK(manager.Receive() == "STATUS=serving on 127.0.0.1 port 1; reloaded");
  service.Reloaded(Status::InvalidArgument("code_length = 99: must be between 4 and 10"));
  CHECK(manager.Receive() ==
        "STATUS=serving on 127.0.0.1 port 1; reload failed: code_length = 99: must be between 4 "
        "and 10");

  service.Stopping();
  CHECK(manager.Receive() == "STOPPING=1\nSTATUS=stopping");
  health.status = Status::Unavailable("listener closed");
  service.Tick();
  CHECK(manager.Poll() == "");
}

TEST_CASE("ServiceHealth: without a watchdog, READY=1 once and nothing more") {
  TempDir dir;
  NotifySocket manager(dir.File("notify"));
  SystemdNotifier notifier(manager.path(), 0);
  int checks = 0;
  ServiceHealth service(
      &notifier,
      [&checks] {
        ++checks;
        return Status::OK();
      },
      "serving");
  service.Start();
  CHECK(manager.Receive() == "READY=1\nSTATUS=serving");
  service.Tick();
  CHECK(manager.Poll() == "");
  CHECK(checks == 1);
}

TEST_CASE("ServiceHealth: without NOTIFY_SOCKET it checks nothing") {
  SystemdNotifier notifier("", 0);
  int checks = 0;
  ServiceHealth service(
      &notifier,
      [&checks] {
        ++checks;
        return Status::OK();
      },
      "serving");
  service.Start();
  CHECK(checks == 0);
  CHECK_FALSE(service.ready());
}

}  // namespace
}  // namespace otpd
