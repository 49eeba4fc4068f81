// Redis URLs: where a Redis server is and how to log in to it.
//
// Plain values and pure functions, no hiredis: compiled into every build,
// so the configuration can be checked by an otpd built without Redis.
// Thread-safe as any value type.
#ifndef OTPD_REDIS_URL_H_
#define OTPD_REDIS_URL_H_

#include <string>

#include "core/status.h"

namespace otpd {

// Where a Redis server is and how to log in.
struct RedisEndpoint {
  std::string host;  // TCP host (IPv4/IPv6 literal or name); empty when unix_path is set
  int port = 6379;
  std::string unix_path;  // unix socket path; empty for TCP
  int db = 0;             // SELECT index, >= 0
  std::string username;   // ACL user (Redis 6+); empty: AUTH with the password only
  std::string password;   // empty: no AUTH

  // "127.0.0.1:6379 db 0", "[::1]:6380 db 1" or "unix:/run/redis.sock db 2":
  // for logs, so never the user name or the password.
  std::string Describe() const;
};

// Parses a Redis URL into *endpoint:
//
//   redis://[[username]:password@]host[:port][/db]   (IPv6 in brackets: redis://[::1]:6380/1)
//   unix://[[username]:password@]/path/to/redis.sock[?db=N]
//
// The scheme is case-insensitive; the port defaults to 6379 and the db to 0.
// redis:// also takes ?db=N (as redis-py does), but not together with /db.
// Percent-escapes (%40 for '@', %3A for ':') are decoded in the user name
// and the password; a raw '@' in the password also works, as the last '@'
// ends the user info. A user name needs a password ("redis://user@host" is
// refused as ambiguous); ":@" or an empty password means no AUTH.
//
// Refuses rediss:// (this otpd has no TLS for Redis), other schemes, an
// empty host, a port outside 1..65535, a db that is not a non-negative
// integer, a unix path that is not absolute, query parameters other than
// db, and anything after the URL's last part (a second path segment, a
// #fragment). InvalidArgument then, with a one-line phrase meant to follow
// the setting's name ("redis_url: must name a host ..."); it never quotes
// any part of the URL, so never the password, wherever a typo put it.
// On error *endpoint is unspecified.
Status ParseRedisUrl(const std::string& url, RedisEndpoint* endpoint);

// `url` with the password (as written, escaped or not) replaced by
// "<redacted>": "redis://:<redacted>@10.0.0.5:6379/0". The user name stays.
// A URL without a password comes back unchanged; one ParseRedisUrl refuses
// comes back as "<redacted>", as it might hold a password anywhere; ""
// stays "".
std::string RedactRedisUrl(const std::string& url);

// True for what may follow redis:// as a host, without brackets: a name of
// letters, digits, '.', '-' and '_' (at most 253 characters), an IPv4
// literal or an IPv6 literal ("::1").
bool IsRedisHost(const std::string& host);

}  // namespace otpd

#endif  // OTPD_REDIS_URL_H_
