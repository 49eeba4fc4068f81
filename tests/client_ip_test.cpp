#include "http/client_ip.h"

#include <doctest/doctest.h>

namespace otpd {
namespace {

TrustedProxies Proxies(const char* text) {
  TrustedProxies p;
  Status s = TrustedProxies::Parse(text, &p);
  REQUIRE_MESSAGE(s.ok(), s.ToString());
  return p;
}

}  // namespace

TEST_CASE("TrustedProxies: addresses and CIDR blocks, IPv4 and IPv6") {
  const TrustedProxies p = Proxies(" 127.0.0.1, 10.0.0.0/8,192.168.1.0/24 , fd00::/8, ::1");
  CHECK(p.Contains("127.0.0.1"));
  CHECK_FALSE(p.Contains("127.0.0.2"));
  CHECK(p.Contains("10.255.1.2"));
  CHECK_FALSE(p.Contains("11.0.0.1"));
  CHECK(p.Contains("192.168.1.77"));
  CHECK_FALSE(p.Contains("192.168.2.1"));
  CHECK(p.Contains("fd12:3456::1"));
  CHECK_FALSE(p.Contains("fe80::1"));
  CHECK(p.Contains("::1"));
  CHECK(p.Contains("::ffff:10.1.2.3"));  // IPv4-mapped, as dual-stack sockets give it
  CHECK_FALSE(p.Contains("not-an-ip"));
  CHECK_FALSE(p.Contains(""));
  CHECK(Proxies("0.0.0.0/0").Contains("203.0.113.9"));
  CHECK_FALSE(Proxies("0.0.0.0/0").Contains("2001:db8::1"));  // IPv4 only
  CHECK(Proxies("").empty());
}

TEST_CASE("TrustedProxies: bad entries are refused, naming them") {
  for (const char* bad : {"10.0.0.0/33", "10.0.0.1/8", "::/129", "10.0.0.0/", "10.0.0.0/08",
                          "example.com", "10.0.0.1,", "1.2.3", "10.0.0.0/-1", "fd00::1/8"}) {
    INFO(bad);
    TrustedProxies p = Proxies("127.0.0.1");
    Status s = TrustedProxies::Parse(bad, &p);
    CHECK(s.IsInvalidArgument());
    CHECK(p.Contains("127.0.0.1"));  // unchanged
  }
}

TEST_CASE("ClientIp: X-Forwarded-For only from a trusted peer, right-most untrusted hop") {
  const TrustedProxies p = Proxies("127.0.0.1, 10.0.0.0/8");
  // An untrusted peer: the header is ignored, whatever it says.
  CHECK(ClientIp("203.0.113.5", {"198.51.100.1"}, p) == "203.0.113.5");
  CHECK(ClientIp("127.0.0.1", {}, p) == "127.0.0.1");
  CHECK(ClientIp("127.0.0.1", {"198.51.100.1"}, p) == "198.51.100.1");
  // The client prepended a fake; our proxies appended the truth.
  CHECK(ClientIp("127.0.0.1", {"1.1.1.1, 198.51.100.1, 10.0.0.7"}, p) == "198.51.100.1");
  // Several headers are one list, in order.
  CHECK(ClientIp("127.0.0.1", {"1.1.1.1", "198.51.100.1,10.0.0.7"}, p) == "198.51.100.1");
  // Garbage stops the walk at the last hop a trusted proxy vouched for.
  CHECK(ClientIp("127.0.0.1", {"198.51.100.1, junk, 10.0.0.7"}, p) == "10.0.0.7");
  CHECK(ClientIp("127.0.0.1", {"junk"}, p) == "127.0.0.1");
  CHECK(ClientIp("127.0.0.1", {""}, p) == "127.0.0.1");
  // Only proxies: the left-most.
  CHECK(ClientIp("127.0.0.1", {"10.0.0.1, 10.0.0.2"}, p) == "10.0.0.1");
  // Canonical text.
  CHECK(ClientIp("127.0.0.1", {"2001:DB8:0:0::1"}, p) == "2001:db8::1");
  CHECK(ClientIp("::ffff:127.0.0.1", {"198.51.100.1"}, p) == "198.51.100.1");
  CHECK(ClientIp("::ffff:203.0.113.5", {"198.51.100.1"}, p) == "203.0.113.5");
  // Nobody trusted: never read.
  CHECK(ClientIp("127.0.0.1", {"198.51.100.1"}, TrustedProxies()) == "127.0.0.1");
}

TEST_CASE("LimitKey: IPv4 as is, IPv6 per /64") {
  CHECK(LimitKey("203.0.113.5") == "203.0.113.5");
  CHECK(LimitKey("2001:db8:1:2:3:4:5:6") == "2001:db8:1:2::/64");
  CHECK(LimitKey("2001:db8:1:2::9") == LimitKey("2001:db8:1:2:ffff::1"));
  CHECK(LimitKey("2001:db8:1:3::9") != LimitKey("2001:db8:1:2::9"));
  CHECK(LimitKey("") == "");
}

}  // namespace otpd
