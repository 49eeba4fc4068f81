// Parsing Redis URLs (redis_url.h).
//
// No message quotes the URL: when a user forgets the '@' or mistypes a
// separator, the password lands in what looks like the host, the port or a
// query parameter, and would be echoed into logs and terminals.
#include "core/redis_url.h"

#include <arpa/inet.h>

#include <charconv>
#include <cstddef>
#include <string_view>
#include <system_error>

namespace otpd {
namespace {

constexpr char kForms[] =
    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix://[[USER]:PASSWORD@]/PATH[?db=N]";
constexpr char kRedacted[] = "<redacted>";

// The URL cut at its user info, before anything is decoded.
struct UrlParts {
  bool unix_socket = false;
  bool has_userinfo = false;
  size_t userinfo_begin = 0;  // offset in the URL, just after "://"
  size_t userinfo_end = 0;    // offset of the '@' that ends it
  std::string_view rest;      // after the user info: "host:port/db" or "/path?db=N"
};

Status Refuse(const std::string& what) { return Status::InvalidArgument(what); }

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A redis:// URL's user info ends at its last '@', so a raw '@' in the
// password still works. A unix:// URL has user info only when it does not
// start with the path, and then it ends at the last "@/": a socket path
// rarely has an '@', a generated password may well have one.
Status SplitUrl(std::string_view url, UrlParts* parts) {
  const size_t sep = url.find("://");
  const std::string scheme = Lower(url.substr(0, sep == std::string_view::npos ? 0 : sep));
  if (scheme == "rediss") {
    return Refuse(
        "must not use rediss:// (TLS to Redis is not supported by this build); use a unix "
        "socket (unix:///run/redis/redis.sock) or a local TLS tunnel such as stunnel, reached "
        "as redis://127.0.0.1:PORT");
  }
  if (sep == std::string_view::npos || (scheme != "redis" && scheme != "unix")) {
    return Refuse(std::string("must start with redis:// or unix://: ") + kForms);
  }
  parts->unix_socket = scheme == "unix";
  const size_t begin = sep + 3;
  const std::string_view after = url.substr(begin);
  size_t at = std::string_view::npos;
  if (!parts->unix_socket) {
    at = after.rfind('@');
  } else if (!after.empty() && after[0] != '/') {
    at = after.rfind("@/");
    if (at == std::string_view::npos) {
      return Refuse(
          "must have an absolute socket path after unix:// (unix:///run/redis/redis.sock)");
    }
  }
  parts->has_userinfo = at != std::string_view::npos;
  parts->userinfo_begin = begin;
  parts->userinfo_end = parts->has_userinfo ? begin + at : begin;
  parts->rest = parts->has_userinfo ? after.substr(at + 1) : after;
  return Status::OK();
}

bool PercentDecode(std::string_view text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '%') {
      out->push_back(text[i]);
      continue;
    }
    const int high = i + 1 < text.size() ? HexValue(text[i + 1]) : -1;
    const int low = i + 2 < text.size() ? HexValue(text[i + 2]) : -1;
    if (high < 0 || low < 0) return false;
    out->push_back(static_cast<char>(high * 16 + low));
    i += 2;
  }
  return true;
}

// "user:password", ":password", ":" or "" (both empty: no AUTH).
Status ParseUserInfo(std::string_view userinfo, RedisEndpoint* endpoint) {
  if (userinfo.empty()) return Status::OK();
  const size_t colon = userinfo.find(':');
  if (colon == std::string_view::npos || (colon > 0 && colon + 1 == userinfo.size())) {
    return Refuse(
        "must give a password with a user name (redis://USER:PASSWORD@HOST); the user name "
        "may be left out (redis://:PASSWORD@HOST)");
  }
  if (!PercentDecode(userinfo.substr(0, colon), &endpoint->username) ||
      !PercentDecode(userinfo.substr(colon + 1), &endpoint->password)) {
    return Refuse(
        "must use valid percent-escapes in the user name and password: '%' and two hex "
        "digits, as %40 for '@' and %25 for '%'");
  }
  return Status::OK();
}

// A non-negative int in decimal digits, nothing else.
bool ParseNumber(std::string_view text, int* out) {
  if (text.empty() || text.size() > 10) return false;
  for (char c : text) {
    if (!IsDigit(c)) return false;
  }
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), *out);
  return ec == std::errc() && ptr == text.data() + text.size();
}

Status BadDb() {
  return Refuse(
      "must have a db that is a non-negative integer (redis://HOST/2 or unix:///PATH?db=2)");
}

// "db=N" pairs joined by '&'. `db_given`: the path already set the db.
Status ParseQuery(std::string_view query, bool db_given, RedisEndpoint* endpoint) {
  while (true) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    if (pair.compare(0, 3, "db=") != 0) {
      return Refuse("must not have query parameters other than db (?db=N)");
    }
    if (db_given) return Refuse("must give the db once");
    if (!ParseNumber(pair.substr(3), &endpoint->db)) return BadDb();
    db_given = true;
    if (amp == std::string_view::npos) return Status::OK();
    query.remove_prefix(amp + 1);
  }
}

// The part after the host and port: "", "/", "/N", each with "?query".
Status ParseDbAndQuery(std::string_view tail, RedisEndpoint* endpoint) {
  const size_t question = tail.find('?');
  std::string_view path = tail.substr(0, question);
  bool db_given = false;
  if (!path.empty()) {
    path.remove_prefix(1);  // '/'
    if (path.find('/') != std::string_view::npos) {
      return Refuse("must not have text after the db number (redis://HOST:PORT/DB)");
    }
    if (!path.empty() && !ParseNumber(path, &endpoint->db)) return BadDb();
    db_given = !path.empty();
  }
  if (question == std::string_view::npos) return Status::OK();
  return ParseQuery(tail.substr(question + 1), db_given, endpoint);
}

Status BadHost() {
  return Refuse(
      "must name a host: a host name, an IPv4 address or an IPv6 address in brackets "
      "(redis://[::1]:6379)");
}

// "host", "host:port", "[v6]" or "[v6]:port".
Status ParseHostPort(std::string_view authority, RedisEndpoint* endpoint) {
  std::string_view port;
  bool has_port = false;
  if (!authority.empty() && authority[0] == '[') {
    const size_t close = authority.find(']');
    if (close == std::string_view::npos) return BadHost();
    endpoint->host = std::string(authority.substr(1, close - 1));
    unsigned char addr[sizeof(struct in6_addr)];
    if (inet_pton(AF_INET6, endpoint->host.c_str(), addr) != 1) return BadHost();
    const std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after[0] != ':') {
      return Refuse("must not have text between the host and the port, or after the port");
    }
    has_port = !after.empty();
    if (has_port) port = after.substr(1);
  } else {
    const size_t colon = authority.find(':');
    endpoint->host = std::string(authority.substr(0, colon));
    // An IPv6 literal without brackets has a second ':'.
    const bool second_colon =
        colon != std::string_view::npos && authority.find(':', colon + 1) != std::string_view::npos;
    if (second_colon) return BadHost();
    if (endpoint->host.empty()) return Refuse("must name a host: redis://HOST[:PORT][/DB]");
    if (!IsRedisHost(endpoint->host)) return BadHost();
    has_port = colon != std::string_view::npos;
    if (has_port) port = authority.substr(colon + 1);
  }
  if (has_port &&
      (!ParseNumber(port, &endpoint->port) || endpoint->port < 1 || endpoint->port > 65535)) {
    return Refuse("must have a port between 1 and 65535");
  }
  return Status::OK();
}

Status ParseTcp(std::string_view rest, RedisEndpoint* endpoint) {
  const size_t end = rest.find_first_of("/?");
  Status status = ParseHostPort(rest.substr(0, end), endpoint);
  if (!status.ok() || end == std::string_view::npos) return status;
  return ParseDbAndQuery(rest.substr(end), endpoint);
}

Status ParseUnix(std::string_view rest, RedisEndpoint* endpoint) {
  const size_t question = rest.find('?');
  const std::string_view path = rest.substr(0, question);
  if (path.size() < 2 || path[0] != '/' || path.back() == '/') {
    return Refuse("must have an absolute socket path after unix:// (unix:///run/redis/redis.sock)");
  }
  endpoint->unix_path = std::string(path);
  if (question == std::string_view::npos) return Status::OK();
  return ParseQuery(rest.substr(question + 1), false, endpoint);
}

}  // namespace

std::string RedisEndpoint::Describe() const {
  const std::string db_text = " db " + std::to_string(db);
  if (!unix_path.empty()) return "unix:" + unix_path + db_text;
  const std::string shown_host = host.find(':') != std::string::npos ? "[" + host + "]" : host;
  return shown_host + ":" + std::to_string(port) + db_text;
}

Status ParseRedisUrl(const std::string& url, RedisEndpoint* endpoint) {
  *endpoint = RedisEndpoint();
  UrlParts parts;
  Status status = SplitUrl(url, &parts);
  if (!status.ok()) return status;
  if (parts.rest.find('#') != std::string_view::npos) {
    return Refuse("must not have a #fragment");
  }
  const std::string_view userinfo =
      std::string_view(url).substr(parts.userinfo_begin, parts.userinfo_end - parts.userinfo_begin);
  status = ParseUserInfo(userinfo, endpoint);
  if (!status.ok()) return status;
  return parts.unix_socket ? ParseUnix(parts.rest, endpoint) : ParseTcp(parts.rest, endpoint);
}

std::string RedactRedisUrl(const std::string& url) {
  if (url.empty()) return url;
  RedisEndpoint endpoint;
  UrlParts parts;
  if (!ParseRedisUrl(url, &endpoint).ok() || !SplitUrl(url, &parts).ok()) return kRedacted;
  if (endpoint.password.empty()) return url;
  const size_t colon = url.find(':', parts.userinfo_begin);  // in the user info: it has one
  return url.substr(0, colon + 1) + kRedacted + url.substr(parts.userinfo_end);
}

bool IsRedisHost(const std::string& host) {
  unsigned char addr[sizeof(struct in6_addr)];
  if (host.find('\0') == std::string::npos && inet_pton(AF_INET6, host.c_str(), addr) == 1) {
    return true;
  }
  if (host.empty() || host.size() > 253) return false;
  for (char c : host) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || IsDigit(c) || c == '.' ||
                    c == '-' || c == '_';
    if (!ok) return false;
  }
  return true;
}

}  // namespace otpd
