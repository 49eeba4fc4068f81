#include "core/client_key.h"

#include <doctest/doctest.h>

namespace otpd {

TEST_CASE("ClientKey: IPv4 as itself, IPv6 by its /64, anything else unchanged") {
  CHECK(ClientKey("192.0.2.7") == "192.0.2.7");
  CHECK(ClientKey("2001:db8:1:2::1") == "2001:db8:1:2::/64");
  CHECK(ClientKey("2001:db8:1:2:ffff:ffff:ffff:ffff") == "2001:db8:1:2::/64");
  CHECK(ClientKey("2001:db8:1:3::1") == "2001:db8:1:3::/64");
  CHECK(ClientKey("::ffff:192.0.2.7") == "192.0.2.7");
  CHECK(ClientKey("") == "");
  CHECK(ClientKey("not an ip") == "not an ip");
}

}  // namespace otpd
