// ConnectionLimit: how many connections one client address may hold open
// at once (max_connections_per_ip, like nginx's limit_conn). A slot is
// taken the moment a connection is accepted, before any byte is read, and
// given back when the connection closes; a connection over the cap is
// closed at once (httplib_server.h) and counted in /metrics as
// otpd_connections_refused_total.
//
// Addresses are counted under LimitKey (client_ip.h): the IPv4 address, or
// the /64 an IPv6 address is in. Peers inside `exempt` (the trusted
// proxies) are not counted: every client behind a proxy arrives from the
// proxy's address, so capping it would cap all of them together; the proxy
// limits per real client itself, and the worker pool (`threads`) still
// bounds the total.
//
// Thread-safe.
#ifndef OTPD_CONNECTION_LIMIT_H_
#define OTPD_CONNECTION_LIMIT_H_

#include <mutex>
#include <string>
#include <unordered_map>

#include "http/client_ip.h"

namespace otpd {

class ConnectionLimit {
 public:
  // `max_per_ip` 0: no cap.
  ConnectionLimit(int max_per_ip, const TrustedProxies& exempt);
  ConnectionLimit(const ConnectionLimit&) = delete;
  ConnectionLimit& operator=(const ConnectionLimit&) = delete;

  // Takes a slot for a connection from `peer_ip` (the socket peer, as text).
  // False when its key already holds max_per_ip connections: the caller
  // closes the connection. On true, *key is what Release takes ("" when no
  // slot was needed: no cap, an exempt peer, or not an IP).
  bool Acquire(const std::string& peer_ip, std::string* key);

  // Gives back the slot Acquire took under `key` ("" does nothing).
  void Release(const std::string& key);

  // Connections held under `peer_ip`'s key now.
  int Held(const std::string& peer_ip) const;

 private:
  const int max_per_ip_;
  const TrustedProxies exempt_;
  mutable std::mutex mu_;
  std::unordered_map<std::string, int> held_;  // keys with at least one
};

}  // namespace otpd

#endif  // OTPD_CONNECTION_LIMIT_H_
