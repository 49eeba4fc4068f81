#include "app/systemd_service.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace otpd {

Status DisableCoreDumps() {
  const rlimit none = {0, 0};
  if (setrlimit(RLIMIT_CORE, &none) != 0) {
    return Status::IOError(std::string("setrlimit(RLIMIT_CORE): ") + strerror(errno));
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) != 0) {
    return Status::IOError(std::string("prctl(PR_SET_DUMPABLE): ") + strerror(errno));
  }
  return Status::OK();
}

namespace {

// The address to connect to for `host`; false when it is no IP literal.
bool ProbeAddress(const std::string& host, int port, sockaddr_storage* addr, socklen_t* len) {
  memset(addr, 0, sizeof(*addr));
  auto* v4 = reinterpret_cast<sockaddr_in*>(addr);
  auto* v6 = reinterpret_cast<sockaddr_in6*>(addr);
  if (inet_pton(AF_INET, host.c_str(), &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons(static_cast<uint16_t>(port));
    if (v4->sin_addr.s_addr == htonl(INADDR_ANY)) v4->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *len = sizeof(sockaddr_in);
    return true;
  }
  if (inet_pton(AF_INET6, host.c_str(), &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(static_cast<uint16_t>(port));
    if (IN6_IS_ADDR_UNSPECIFIED(&v6->sin6_addr)) v6->sin6_addr = in6addr_loopback;
    *len = sizeof(sockaddr_in6);
    return true;
  }
  return false;
}

// 0 when a non-blocking connect finished within `timeout_ms`, else the
// errno of the failure (ETIMEDOUT when it took longer).
int Connect(int fd, const sockaddr_storage& addr, socklen_t len, int timeout_ms) {
  if (connect(fd, reinterpret_cast<const sockaddr*>(&addr), len) == 0) return 0;
  if (errno != EINPROGRESS) return errno;
  pollfd p = {fd, POLLOUT, 0};
  const int ready = poll(&p, 1, timeout_ms);
  if (ready < 0) return errno;
  if (ready == 0) return ETIMEDOUT;
  int err = 0;
  socklen_t err_len = sizeof(err);
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &err_len) != 0) return errno;
  return err;
}

}  // namespace

Status ProbeListener(const std::string& host, int port) {
  const std::string where = host + " port " + std::to_string(port);
  sockaddr_storage addr;
  socklen_t len = 0;
  if (!ProbeAddress(host, port, &addr, &len)) {
    return Status::Unavailable("listener " + where + ": not an IP address");
  }
  const int fd = socket(addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::Unavailable("listener " + where + ": " + strerror(errno));
  const int err = Connect(fd, addr, len, 2000);
  if (err == 0) shutdown(fd, SHUT_RDWR);  // the worker sees end of file at once
  close(fd);
  if (err != 0)
    return Status::Unavailable("listener " + where + " refuses connections: " + strerror(err));
  return Status::OK();
}

Status CheckServing(const std::string& host, int port, const OtpService& service) {
  Status s = ProbeListener(host, port);
  if (s.ok()) s = service.CheckReady();
  return s;
}

}  // namespace otpd
