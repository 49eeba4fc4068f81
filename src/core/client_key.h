// The client key: what every per-client limit counts under, so one client
// cannot multiply its allowance by changing the part of its address that
// it controls. The in-memory request limiter (http/rate_limiter), the
// stored send_ip_cap (OtpService) and any later per-client cap all use
// ClientKey. Pure functions, thread-safe.
#ifndef OTPD_CLIENT_KEY_H_
#define OTPD_CLIENT_KEY_H_

#include <string>
#include <string_view>

namespace otpd {

// An IPv4 address as itself ("192.0.2.7"); an IPv6 address as the /64 it
// is in ("2001:db8:1:2::/64"): one subscriber is usually given a whole /64,
// and picks any of its 2^64 addresses at will. An IPv4-mapped IPv6
// address counts as its IPv4 address. Anything else (not an IP literal,
// "") comes back unchanged.
std::string ClientKey(std::string_view ip);

}  // namespace otpd

#endif  // OTPD_CLIENT_KEY_H_
