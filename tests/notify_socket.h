// NotifySocket: the service manager's end of sd_notify(3) in tests, an
// AF_UNIX datagram socket bound in a test's directory that receives what
// otpd tells systemd. Not thread-safe.
#ifndef OTPD_TESTS_NOTIFY_SOCKET_H_
#define OTPD_TESTS_NOTIFY_SOCKET_H_

#include <string>

namespace otpd {

class NotifySocket {
 public:
  // Binds `path` (REQUIRE fails the test when it cannot).
  explicit NotifySocket(const std::string& path);
  ~NotifySocket();
  NotifySocket(const NotifySocket&) = delete;
  NotifySocket& operator=(const NotifySocket&) = delete;

  const std::string& path() const { return path_; }
  // The next datagram, waiting up to 60 s (a hang guard) for it ("" when none came).
  std::string Receive();
  // The next datagram if one is queued now, else "".
  std::string Poll();
  // Datagrams until one contains `line` (a whole line such as
  // "WATCHDOG=1"); that one, or "" after 60 s without it.
  std::string ReceiveUntil(const std::string& line);

 private:
  std::string Read(int timeout_ms);

  std::string path_;
  int fd_ = -1;
};

// True when `message` has `line` as one of its '\n'-separated lines.
bool HasLine(const std::string& message, const std::string& line);

}  // namespace otpd

#endif  // OTPD_TESTS_NOTIFY_SOCKET_H_
