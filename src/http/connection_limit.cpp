#include "http/connection_limit.h"

namespace otpd {

ConnectionLimit::ConnectionLimit(int max_per_ip, const TrustedProxies& exempt)
    : max_per_ip_(max_per_ip), exempt_(exempt) {}

bool ConnectionLimit::Acquire(const std::string& peer_ip, std::string* key) {
  key->clear();
  if (max_per_ip_ <= 0) return true;
  const std::string ip = CanonicalIp(peer_ip);
  if (ip.empty() || exempt_.Contains(ip)) return true;
  std::string k = LimitKey(ip);
  std::lock_guard<std::mutex> lock(mu_);
  int& n = held_[k];
  if (n >= max_per_ip_) return false;  // n > 0 here: the entry existed
  n++;
  *key = std::move(k);
  return true;
}

void ConnectionLimit::Release(const std::string& key) {
  if (key.empty()) return;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(key);
  if (it == held_.end()) return;
  if (--it->second <= 0) held_.erase(it);
}

int ConnectionLimit::Held(const std::string& peer_ip) const {
  const std::string ip = CanonicalIp(peer_ip);
  if (ip.empty()) return 0;
  std::lock_guard<std::mutex> lock(mu_);
  auto it = held_.find(LimitKey(ip));
  return it == held_.end() ? 0 : it->second;
}

}  // namespace otpd
