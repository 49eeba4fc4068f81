#include "core/client_key.h"

#include <arpa/inet.h>

#include <cstring>

namespace otpd {

std::string ClientKey(std::string_view ip) {
  if (ip.empty() || ip.size() > 45) return std::string(ip);
  const std::string text(ip);  // NUL-terminated for inet_pton
  in_addr a4;
  if (inet_pton(AF_INET, text.c_str(), &a4) == 1) return text;
  in6_addr a6;
  if (inet_pton(AF_INET6, text.c_str(), &a6) != 1) return text;
  char buf[INET6_ADDRSTRLEN];
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  if (std::memcmp(a6.s6_addr, kMapped, 12) == 0) {
    std::memcpy(&a4, a6.s6_addr + 12, 4);
    return inet_ntop(AF_INET, &a4, buf, sizeof(buf)) != nullptr ? buf : text;
  }
  std::memset(a6.s6_addr + 8, 0, 8);
  if (inet_ntop(AF_INET6, &a6, buf, sizeof(buf)) == nullptr) return text;
  return std::string(buf) + "/64";
}

}  // namespace otpd
