#include "http/connection_limit.h"

#include <doctest/doctest.h>

namespace otpd {

TEST_CASE("ConnectionLimit: an address holds at most max_per_ip, and gets slots back") {
  ConnectionLimit limit(2, TrustedProxies());
  std::string a, b, c;
  CHECK(limit.Acquire("192.0.2.1", &a));
  CHECK(limit.Acquire("192.0.2.1", &b));
  CHECK_FALSE(limit.Acquire("192.0.2.1", &c));
  CHECK(limit.Held("192.0.2.1") == 2);
  std::string other;
  CHECK(limit.Acquire("192.0.2.2", &other));  // another address has its own
  limit.Release(a);
  CHECK(limit.Held("192.0.2.1") == 1);
  CHECK(limit.Acquire("192.0.2.1", &c));
  limit.Release(b);
  limit.Release(c);
  CHECK(limit.Held("192.0.2.1") == 0);
}

TEST_CASE("ConnectionLimit: IPv6 counts per /64, IPv4-mapped as IPv4") {
  ConnectionLimit limit(1, TrustedProxies());
  std::string a, b;
  CHECK(limit.Acquire("2001:db8:1:2::1", &a));
  CHECK_FALSE(limit.Acquire("2001:db8:1:2:ffff::9", &b));  // same /64
  CHECK(limit.Acquire("2001:db8:1:3::1", &b));             // next /64
  std::string v4, mapped;
  CHECK(limit.Acquire("198.51.100.7", &v4));
  CHECK_FALSE(limit.Acquire("::ffff:198.51.100.7", &mapped));
}

TEST_CASE("ConnectionLimit: trusted proxies are exempt; 0 means no cap") {
  TrustedProxies proxies;
  REQUIRE(TrustedProxies::Parse("10.0.0.0/8", &proxies).ok());
  ConnectionLimit limit(1, proxies);
  std::string key;
  for (int i = 0; i < 5; i++) {
    CHECK(limit.Acquire("10.1.2.3", &key));
    CHECK(key.empty());  // nothing to give back
  }
  CHECK(limit.Held("10.1.2.3") == 0);
  ConnectionLimit none(0, TrustedProxies());
  for (int i = 0; i < 5; i++) CHECK(none.Acquire("192.0.2.1", &key));
  std::string junk;
  CHECK(limit.Acquire("not an ip", &junk));  // not counted (never a socket peer)
}

}  // namespace otpd
