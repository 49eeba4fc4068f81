// What the daemon does for systemd beyond the notification protocol
// (core/systemd_notify.h): core dumps off, and the liveness probe the
// watchdog runs.
#ifndef OTPD_APP_SYSTEMD_SERVICE_H_
#define OTPD_APP_SYSTEMD_SERVICE_H_

#include <string>

#include "core/status.h"
#include "otp/otp_service.h"

namespace otpd {

// prctl(PR_SET_DUMPABLE, 0) and RLIMIT_CORE 0: a core of otpd would hold
// the Twilio token, the API keys and the HMAC secret in clear. Also keeps
// processes of the same user from ptrace-attaching. IOError naming the call
// that failed; the process is then as dumpable as before.
Status DisableCoreDumps();

// Connects to the listener at `host`:`port` over TCP and closes again
// without sending anything (a wildcard address, 0.0.0.0 or ::, is probed
// on loopback). OK when the connection is accepted within 2 s;
// Unavailable naming the address otherwise.
Status ProbeListener(const std::string& host, int port);

// The daemon's health for the systemd watchdog (core/service_health.h):
// the listener accepts (ProbeListener) and the code store takes writes
// (OtpService::CheckReady, as /readyz). The first failure, or OK.
Status CheckServing(const std::string& host, int port, const OtpService& service);

}  // namespace otpd

#endif  // OTPD_APP_SYSTEMD_SERVICE_H_
