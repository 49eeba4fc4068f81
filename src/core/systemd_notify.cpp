#include "core/systemd_notify.h"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstddef>
#include <cstdlib>
#include <cstring>
#include <utility>

namespace otpd {

namespace {

// A decimal number that fits int64 and is positive; 0 for anything else.
int64_t PositiveNumber(const char* text) {
  if (text == nullptr || *text == '\0') return 0;
  char* end = nullptr;
  errno = 0;
  const long long n = strtoll(text, &end, 10);
  if (errno != 0 || *end != '\0' || n <= 0) return 0;
  return n;
}

}  // namespace

SystemdNotifier::SystemdNotifier(std::string socket, int64_t watchdog_usec)
    : socket_(std::move(socket)), watchdog_usec_(watchdog_usec > 0 ? watchdog_usec : 0) {}

SystemdNotifier SystemdNotifier::FromEnvironment(pid_t pid) {
  const char* socket = getenv("NOTIFY_SOCKET");
  int64_t usec = PositiveNumber(getenv("WATCHDOG_USEC"));
  const char* watchdog_pid = getenv("WATCHDOG_PID");
  if (watchdog_pid != nullptr && *watchdog_pid != '\0' && PositiveNumber(watchdog_pid) != pid) {
    usec = 0;
  }
  return SystemdNotifier(socket == nullptr ? "" : socket, usec);
}

Status SystemdNotifier::Notify(const std::string& state) const {
  if (!enabled()) return Status::OK();
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  if (socket_.size() >= sizeof(addr.sun_path) || (socket_[0] != '/' && socket_[0] != '@')) {
    return Status::InvalidArgument("NOTIFY_SOCKET is not a socket path");
  }
  memcpy(addr.sun_path, socket_.data(), socket_.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';  // abstract namespace
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_.size());
  const int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::IOError(std::string("notify socket: ") + strerror(errno));
  const ssize_t sent = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL,
                              reinterpret_cast<const sockaddr*>(&addr), len);
  const int err = errno;
  close(fd);
  if (sent < 0) return Status::IOError("notify " + socket_ + ": " + strerror(err));
  return Status::OK();
}

std::string StatusLine(const std::string& text) {
  std::string line = "STATUS=" + text;
  for (char& c : line) {
    if (c == '\n' || c == '\r') c = ' ';
  }
  return line;
}

}  // namespace otpd
