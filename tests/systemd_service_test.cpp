#include "app/systemd_service.h"

#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>

namespace otpd {
namespace {

TEST_CASE("DisableCoreDumps: not dumpable, core limit 0") {
  // In a child, so the test process stays as it was.
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) != 1) _exit(3);  // the check can fail
    if (!DisableCoreDumps().ok()) _exit(4);
    rlimit core;
    if (getrlimit(RLIMIT_CORE, &core) != 0 || core.rlim_cur != 0 || core.rlim_max != 0) _exit(5);
    _exit(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0) == 0 ? 0 : 6);
  }
  int status = 0;
  REQUIRE(waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
}

// A listening TCP socket on `family`'s wildcard or loopback address.
int Listen(int family, bool wildcard, int* port) {
  const int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd >= 0);
  sockaddr_storage addr;
  memset(&addr, 0, sizeof(addr));
  socklen_t len = 0;
  if (family == AF_INET) {
    auto* v4 = reinterpret_cast<sockaddr_in*>(&addr);
    v4->sin_family = AF_INET;
    v4->sin_addr.s_addr = htonl(wildcard ? INADDR_ANY : INADDR_LOOPBACK);
    len = sizeof(*v4);
  } else {
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&addr);
    v6->sin6_family = AF_INET6;
    v6->sin6_addr = wildcard ? in6addr_any : in6addr_loopback;
    len = sizeof(*v6);
  }
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0);
  REQUIRE(listen(fd, 8) == 0);
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  *port = ntohs(family == AF_INET ? reinterpret_cast<sockaddr_in*>(&addr)->sin_port
                                  : reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return fd;
}

TEST_CASE("ProbeListener: OK while the listener is there, Unavailable once it is gone") {
  int port = 0;
  int fd = Listen(AF_INET, false, &port);
  CHECK(ProbeListener("127.0.0.1", port).ok());
  close(fd);
  const Status gone = ProbeListener("127.0.0.1", port);
  CHECK(gone.code() == Status::Code::kUnavailable);
  CHECK(gone.message().find("127.0.0.1 port " + std::to_string(port)) != std::string::npos);

  fd = Listen(AF_INET, true, &port);
  CHECK(ProbeListener("0.0.0.0", port).ok());  // probed on loopback
  close(fd);
  fd = Listen(AF_INET6, true, &port);
  CHECK(ProbeListener("::", port).ok());
  close(fd);
  fd = Listen(AF_INET6, false, &port);
  CHECK(ProbeListener("::1", port).ok());
  close(fd);
  CHECK(ProbeListener("localhost", port).code() == Status::Code::kUnavailable);
}

}  // namespace
}  // namespace otpd
