#include "notify_socket.h"

#include <doctest/doctest.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <sstream>

namespace otpd {

NotifySocket::NotifySocket(const std::string& path) : path_(path) {
  sockaddr_un addr;
  memset(&addr, 0, sizeof(addr));
  addr.sun_family = AF_UNIX;
  REQUIRE(path.size() < sizeof(addr.sun_path));
  memcpy(addr.sun_path, path.data(), path.size());
  if (addr.sun_path[0] == '@') addr.sun_path[0] = '\0';
  fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  REQUIRE(fd_ >= 0);
  const socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  REQUIRE(bind(fd_, reinterpret_cast<const sockaddr*>(&addr), len) == 0);
}

NotifySocket::~NotifySocket() {
  if (fd_ >= 0) close(fd_);
  if (!path_.empty() && path_[0] == '/') unlink(path_.c_str());
}

std::string NotifySocket::Read(int timeout_ms) {
  pollfd p = {fd_, POLLIN, 0};
  if (poll(&p, 1, timeout_ms) != 1) return "";
  char buf[4096];
  const ssize_t n = recv(fd_, buf, sizeof(buf), 0);
  return n > 0 ? std::string(buf, static_cast<size_t>(n)) : "";
}

std::string NotifySocket::Receive() { return Read(60000); }

std::string NotifySocket::Poll() { return Read(0); }

std::string NotifySocket::ReceiveUntil(const std::string& line) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    const std::string m = Read(static_cast<int>(left.count()) + 1);
    if (HasLine(m, line)) return m;
  }
  return "";
}

bool HasLine(const std::string& message, const std::string& line) {
  std::istringstream lines(message);
  for (std::string l; std::getline(lines, l);) {
    if (l == line) return true;
  }
  return false;
}

}  // namespace otpd
