// SystemdNotifier: systemd's service notification protocol (sd_notify(3))
// without libsystemd: each message is one datagram of "KEY=value" lines
// sent to the AF_UNIX socket named by $NOTIFY_SOCKET (a file system path,
// or "@name" for the abstract namespace). Type=notify units hear READY=1
// from it; WatchdogSec= units expect WATCHDOG=1 at least every
// $WATCHDOG_USEC microseconds.
//
// Thread-safe: Notify opens, sends on and closes a socket of its own.
#ifndef OTPD_CORE_SYSTEMD_NOTIFY_H_
#define OTPD_CORE_SYSTEMD_NOTIFY_H_

#include <sys/types.h>

#include <cstdint>
#include <string>

#include "core/status.h"

namespace otpd {

class SystemdNotifier {
 public:
  // `socket` as $NOTIFY_SOCKET spells it ("" disables every message);
  // `watchdog_usec` as $WATCHDOG_USEC (0: no watchdog).
  SystemdNotifier(std::string socket, int64_t watchdog_usec);

  // From NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID: the watchdog is on
  // when WATCHDOG_USEC is a positive number and WATCHDOG_PID is unset or
  // `pid` (systemd names the main process; a child must not ping).
  static SystemdNotifier FromEnvironment(pid_t pid);

  bool enabled() const { return !socket_.empty(); }
  // 0 when systemd expects no watchdog pings.
  int64_t watchdog_usec() const { return watchdog_usec_; }

  // Sends `state` ("READY=1", "STATUS=serving", "WATCHDOG=1"; several
  // joined by '\n') in one datagram. OK without doing anything when not
  // enabled. IOError when the socket cannot be reached; InvalidArgument
  // when the socket name is too long for sockaddr_un.
  Status Notify(const std::string& state) const;

 private:
  std::string socket_;
  int64_t watchdog_usec_;
};

// One STATUS= line: `text` with newlines replaced by spaces, so a message
// cannot add a second assignment.
std::string StatusLine(const std::string& text);

}  // namespace otpd

#endif  // OTPD_CORE_SYSTEMD_NOTIFY_H_
