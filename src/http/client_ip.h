// Client IP: which address a request comes from, for limits and logs.
//
// The socket peer is the client unless the peer is one of the configured
// trusted proxies; only then is X-Forwarded-For read, from the right (the
// hop our proxy appended) to the left, and the first address that is not a
// trusted proxy is the client. A client can prepend anything it likes to
// the header, so nothing left of that address is ever believed.
// Addresses are compared as 16-byte IPv6 (IPv4 as ::ffff:a.b.c.d), and
// returned in canonical text (IPv4 dotted, IPv6 as inet_ntop writes it).
// Immutable after parsing, so thread-safe.
#ifndef OTPD_CLIENT_IP_H_
#define OTPD_CLIENT_IP_H_

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace otpd {

class TrustedProxies {
 public:
  // Parses "10.0.0.1, 192.168.0.0/16, ::1, fd00::/8": addresses and CIDR
  // blocks, comma-separated, spaces allowed; "" trusts nobody.
  // InvalidArgument naming the bad entry (bits set past the prefix count as
  // a mistake: "10.0.0.1/8" is refused); *out is then unchanged.
  static Status Parse(std::string_view text, TrustedProxies* out);

  bool empty() const { return blocks_.empty(); }
  // Whether `ip` (text) is inside one of the blocks. False for non-IPs.
  bool Contains(std::string_view ip) const;

 private:
  struct Block {
    std::array<uint8_t, 16> addr;
    int prefix_bits;  // 0..128, in the IPv6 (mapped) space
  };
  bool ContainsBytes(const std::array<uint8_t, 16>& addr) const;
  std::vector<Block> blocks_;
};

// The client address of a request from `peer` carrying the given
// X-Forwarded-For header values (in the order received; a header may hold a
// comma-separated list). An entry that is not an IP address stops the walk:
// the hop to its right, which a trusted proxy vouched for, is returned.
std::string ClientIp(const std::string& peer, const std::vector<std::string>& forwarded_for,
                     const TrustedProxies& trusted);

// `ip` in canonical text, or "" when it is not an IPv4/IPv6 literal.
std::string CanonicalIp(std::string_view ip);

// The key a per-client limit counts under: ClientKey (core/client_key.h),
// the one definition every per-client limit shares.
std::string LimitKey(const std::string& canonical_ip);

}  // namespace otpd

#endif  // OTPD_CLIENT_IP_H_
