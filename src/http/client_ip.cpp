#include "http/client_ip.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstring>

#include "core/client_key.h"

namespace otpd {
namespace {

using Bytes = std::array<uint8_t, 16>;

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// Parses an IPv4 or IPv6 literal into 16 bytes (IPv4 mapped). *v4 tells
// which it was.
bool ParseIp(std::string_view text, Bytes* out, bool* v4) {
  if (text.empty() || text.size() > 45) return false;
  const std::string s(text);  // NUL-terminated for inet_pton
  in_addr a4;
  if (inet_pton(AF_INET, s.c_str(), &a4) == 1) {
    out->fill(0);
    (*out)[10] = (*out)[11] = 0xff;
    std::memcpy(out->data() + 12, &a4, 4);
    *v4 = true;
    return true;
  }
  in6_addr a6;
  if (inet_pton(AF_INET6, s.c_str(), &a6) != 1) return false;
  std::memcpy(out->data(), &a6, 16);
  static const uint8_t kMapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
  *v4 = std::memcmp(out->data(), kMapped, 12) == 0;
  return true;
}

std::string Format(const Bytes& b, bool v4) {
  char buf[INET6_ADDRSTRLEN];
  if (v4) {
    inet_ntop(AF_INET, b.data() + 12, buf, sizeof(buf));
  } else {
    inet_ntop(AF_INET6, b.data(), buf, sizeof(buf));
  }
  return buf;
}

bool ParsePrefix(std::string_view text, int max, int* bits) {
  if (text.empty() || text.size() > 3 || (text.size() > 1 && text[0] == '0')) return false;
  int v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
    v = v * 10 + (c - '0');
  }
  if (v > max) return false;
  *bits = v;
  return true;
}

bool MatchesPrefix(const Bytes& a, const Bytes& block, int bits) {
  for (int i = 0; i < 16 && bits > 0; i++, bits -= 8) {
    const uint8_t mask = bits >= 8 ? 0xff : static_cast<uint8_t>(0xff << (8 - bits));
    if ((a[i] & mask) != (block[i] & mask)) return false;
  }
  return true;
}

}  // namespace

Status TrustedProxies::Parse(std::string_view text, TrustedProxies* out) {
  TrustedProxies parsed;
  if (Trim(text).empty()) {
    *out = parsed;
    return Status::OK();
  }
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    const std::string_view item = Trim(text.substr(start, comma - start));
    const size_t slash = item.find('/');
    Block block;
    bool v4 = false;
    bool ok = ParseIp(item.substr(0, slash), &block.addr, &v4);
    block.prefix_bits = 128;
    if (ok && slash != std::string_view::npos) {
      int bits = 0;
      ok = ParsePrefix(item.substr(slash + 1), v4 ? 32 : 128, &bits);
      block.prefix_bits = v4 ? 96 + bits : bits;
      // Host bits set past the prefix are a typo more often than not.
      for (int i = 0; ok && i < 16; i++) {
        const int keep = std::max(0, std::min(8, block.prefix_bits - 8 * i));
        const uint8_t mask = keep == 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
        ok = (block.addr[i] & ~mask & 0xff) == 0;
      }
    }
    if (!ok) {
      return Status::InvalidArgument("'" + std::string(item) +
                                     "' is not an IP address or CIDR block such as 10.0.0.0/8");
    }
    parsed.blocks_.push_back(block);
    start = comma + 1;
  }
  *out = parsed;
  return Status::OK();
}

bool TrustedProxies::ContainsBytes(const Bytes& addr) const {
  for (const Block& b : blocks_) {
    if (MatchesPrefix(addr, b.addr, b.prefix_bits)) return true;
  }
  return false;
}

bool TrustedProxies::Contains(std::string_view ip) const {
  Bytes b;
  bool v4 = false;
  return ParseIp(Trim(ip), &b, &v4) && ContainsBytes(b);
}

std::string CanonicalIp(std::string_view ip) {
  Bytes b;
  bool v4 = false;
  return ParseIp(Trim(ip), &b, &v4) ? Format(b, v4) : "";
}

std::string ClientIp(const std::string& peer, const std::vector<std::string>& forwarded_for,
                     const TrustedProxies& trusted) {
  std::string client = CanonicalIp(peer);
  if (client.empty()) client = peer;
  if (forwarded_for.empty() || !trusted.Contains(client)) return client;
  std::vector<std::string_view> hops;
  for (const std::string& header : forwarded_for) {
    size_t start = 0;
    while (start <= header.size()) {
      size_t comma = header.find(',', start);
      if (comma == std::string::npos) comma = header.size();
      hops.push_back(std::string_view(header).substr(start, comma - start));
      start = comma + 1;
    }
  }
  // Right to left: each hop was reported by the (trusted) one to its right.
  for (auto it = hops.rbegin(); it != hops.rend(); ++it) {
    const std::string hop = CanonicalIp(*it);
    if (hop.empty()) return client;  // garbage: believe the last trusted hop
    client = hop;
    if (!trusted.Contains(hop)) return client;
  }
  return client;  // every hop is a proxy: the left-most one
}

std::string LimitKey(const std::string& canonical_ip) { return ClientKey(canonical_ip); }

}  // namespace otpd
