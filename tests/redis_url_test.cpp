// Tests for src/redis_url: the URL forms, the refusals and their messages,
// Describe() and RedactRedisUrl, and that no message shows the password.
#include "core/redis_url.h"

#include <doctest/doctest.h>

#include <string>

namespace otpd {
namespace {

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// Parses `url`, which must be accepted.
RedisEndpoint Parsed(const std::string& url) {
  RedisEndpoint endpoint;
  const Status status = ParseRedisUrl(url, &endpoint);
  INFO(url);
  REQUIRE_MESSAGE(status.ok(), status.ToString());
  return endpoint;
}

// The message of refusing `url`, which must be refused.
std::string Refusal(const std::string& url) {
  RedisEndpoint endpoint;
  const Status status = ParseRedisUrl(url, &endpoint);
  INFO(url);
  REQUIRE(status.IsInvalidArgument());
  CHECK(!status.message().empty());
  CHECK(!Contains(status.message(), "\n"));
  return status.message();
}

TEST_CASE("ParseRedisUrl redis://: host, port and db, each optional part defaulted") {
  RedisEndpoint e = Parsed("redis://127.0.0.1");
  CHECK(e.host == "127.0.0.1");
  CHECK(e.port == 6379);
  CHECK(e.db == 0);
  CHECK(e.unix_path.empty());
  CHECK(e.username.empty());
  CHECK(e.password.empty());

  e = Parsed("redis://redis.internal:6380/3");
  CHECK(e.host == "redis.internal");
  CHECK(e.port == 6380);
  CHECK(e.db == 3);

  e = Parsed("redis://cache-1.example_net/");
  CHECK(e.host == "cache-1.example_net");
  CHECK(e.db == 0);

  CHECK(Parsed("redis://h:1").port == 1);
  CHECK(Parsed("redis://h:65535").port == 65535);
  CHECK(Parsed("redis://h:06379").port == 6379);
  CHECK(Parsed("redis://h/2147483647").db == 2147483647);
  CHECK(Parsed("redis://h?db=5").db == 5);
  CHECK(Parsed("redis://h:7000/?db=6").db == 6);
  CHECK(Parsed("REDIS://h").host == "h");  // the scheme ignores case
}

TEST_CASE("ParseRedisUrl redis://: IPv6 literals go in brackets") {
  RedisEndpoint e = Parsed("redis://[::1]:6380/1");
  CHECK(e.host == "::1");
  CHECK(e.port == 6380);
  CHECK(e.db == 1);
  e = Parsed("redis://[2001:db8::5]");
  CHECK(e.host == "2001:db8::5");
  CHECK(e.port == 6379);
  CHECK(Parsed("redis://:pw@[::1]/4").password == "pw");
}

TEST_CASE("ParseRedisUrl user info: password only, user and password, percent-escapes") {
  RedisEndpoint e = Parsed("redis://:s3cret@10.0.0.5:6379/0");
  CHECK(e.username.empty());
  CHECK(e.password == "s3cret");
  CHECK(e.host == "10.0.0.5");

  e = Parsed("redis://alice:s3cret@10.0.0.5");
  CHECK(e.username == "alice");
  CHECK(e.password == "s3cret");

  e = Parsed("redis://al%69ce:p%40ss%3Aw%2Fo%25rd%2b@h");
  CHECK(e.username == "alice");
  CHECK(e.password == "p@ss:w/o%rd+");

  // Raw '@', '/', '?' and '#' in the password: the last '@' ends it.
  e = Parsed("redis://:p@ss/w?rd#1@h:6380/2");
  CHECK(e.password == "p@ss/w?rd#1");
  CHECK(e.host == "h");
  CHECK(e.port == 6380);
  CHECK(e.db == 2);

  // The first ':' splits user and password; later ones belong to the password.
  CHECK(Parsed("redis://u:a:b@h").password == "a:b");

  // Empty user info, or an empty password without a user: no AUTH.
  for (const char* url : {"redis://@h", "redis://:@h"}) {
    e = Parsed(url);
    CHECK(e.username.empty());
    CHECK(e.password.empty());
    CHECK(e.host == "h");
  }
}

TEST_CASE("ParseRedisUrl unix://: an absolute socket path, ?db=N, optional user info") {
  RedisEndpoint e = Parsed("unix:///run/redis/redis.sock");
  CHECK(e.unix_path == "/run/redis/redis.sock");
  CHECK(e.host.empty());
  CHECK(e.db == 0);

  e = Parsed("unix:///run/redis.sock?db=2");
  CHECK(e.unix_path == "/run/redis.sock");
  CHECK(e.db == 2);

  e = Parsed("unix://:pw@/run/redis.sock?db=3");
  CHECK(e.password == "pw");
  CHECK(e.unix_path == "/run/redis.sock");
  CHECK(e.db == 3);

  e = Parsed("unix://bob:p%40w@/var/run/redis@6379.sock");
  CHECK(e.username == "bob");
  CHECK(e.password == "p@w");
  CHECK(e.unix_path == "/var/run/redis@6379.sock");

  // Without user info the path may hold an '@' anywhere.
  CHECK(Parsed("unix:///tmp/a@/b.sock").unix_path == "/tmp/a@/b.sock");
  // A raw '@' in the password: the last "@/" ends it.
  CHECK(Parsed("unix://:p@ss@/tmp/r.sock").password == "p@ss");
  CHECK(Parsed("UNIX:///tmp/r.sock").unix_path == "/tmp/r.sock");
}

TEST_CASE("RedisEndpoint::Describe names the server and db, never the user or password") {
  CHECK(Parsed("redis://127.0.0.1").Describe() == "127.0.0.1:6379 db 0");
  CHECK(Parsed("redis://alice:hunter2@cache:6380/7").Describe() == "cache:6380 db 7");
  CHECK(Parsed("redis://[::1]:6380/1").Describe() == "[::1]:6380 db 1");
  CHECK(Parsed("unix://:hunter2@/run/redis.sock?db=2").Describe() == "unix:/run/redis.sock db 2");
  RedisEndpoint defaults;
  defaults.host = "127.0.0.1";
  CHECK(defaults.Describe() == "127.0.0.1:6379 db 0");
}

TEST_CASE("ParseRedisUrl refusals: each with a clear message") {
  struct Case {
    const char* url;
    const char* message;
  };
  const Case cases[] = {
      {"rediss://h:6380", "must not use rediss:// (TLS to Redis is not supported by this build)"},
      {"REDISS://h", "or a local TLS tunnel"},
      {"rediss://h", "unix socket"},
      {"http://h", "must start with redis:// or unix://"},
      {"redis:h", "must start with redis:// or unix://"},
      {"127.0.0.1:6379", "must start with redis:// or unix://"},
      {"", "must start with redis:// or unix://"},
      {" redis://h", "must start with redis:// or unix://"},
      {"redis://", "must name a host"},
      {"redis:///0", "must name a host"},
      {"redis://:6379", "must name a host"},
      {"redis://:pw@", "must name a host"},
      {"redis://:pw@:6379/0", "must name a host"},
      {"redis://::1/0", "IPv6 address in brackets"},
      {"redis://fe80::1:6379", "IPv6 address in brackets"},
      {"redis://[::1", "must name a host"},
      {"redis://[not-v6]:6379", "must name a host"},
      {"redis://[::1]x", "must not have text between the host and the port"},
      {"redis://ho st", "must name a host"},
      {"redis://h\n", "must name a host"},
      {"redis://h:0", "must have a port between 1 and 65535"},
      {"redis://h:65536", "must have a port between 1 and 65535"},
      {"redis://h:99999999999", "must have a port between 1 and 65535"},
      {"redis://h:", "must have a port between 1 and 65535"},
      {"redis://h:-1", "must have a port between 1 and 65535"},
      {"redis://h:+80", "must have a port between 1 and 65535"},
      {"redis://h:80 ", "must have a port between 1 and 65535"},
      {"redis://h:6379:1", "IPv6 address in brackets"},
      {"redis://h/x", "must have a db that is a non-negative integer"},
      {"redis://h/-1", "must have a db that is a non-negative integer"},
      {"redis://h/+1", "must have a db that is a non-negative integer"},
      {"redis://h/1.5", "must have a db that is a non-negative integer"},
      {"redis://h/2147483648", "must have a db that is a non-negative integer"},
      {"redis://h/1 ", "must have a db that is a non-negative integer"},
      {"redis://h?db=", "must have a db that is a non-negative integer"},
      {"unix:///tmp/r.sock?db=x", "must have a db that is a non-negative integer"},
      {"redis://h/0/extra", "must not have text after the db number"},
      {"redis://h/0#frag", "must not have a #fragment"},
      {"unix:///tmp/r.sock#x", "must not have a #fragment"},
      {"redis://h/1?db=2", "must give the db once"},
      {"unix:///tmp/r.sock?db=1&db=1", "must give the db once"},
      {"redis://h?timeout=5", "must not have query parameters other than db"},
      {"unix:///tmp/r.sock?db=1&password=x", "must not have query parameters other than db"},
      {"unix:///tmp/r.sock?", "must not have query parameters other than db"},
      {"unix:///tmp/r.sock?DB=1", "must not have query parameters other than db"},
      {"unix://", "must have an absolute socket path"},
      {"unix:///", "must have an absolute socket path"},
      {"unix:///run/redis/", "must have an absolute socket path"},
      {"unix://run/redis.sock", "must have an absolute socket path"},
      {"unix://:pw@run/redis.sock", "must have an absolute socket path"},
      {"unix://?db=1", "must have an absolute socket path"},
      {"redis://alice@h", "must give a password with a user name"},
      {"redis://alice:@h", "must give a password with a user name"},
      {"unix://alice@/tmp/r.sock", "must give a password with a user name"},
      {"redis://:abc%4@h", "must use valid percent-escapes"},
      {"redis://:abc%zz@h", "must use valid percent-escapes"},
      {"redis://u%g1:pw@h", "must use valid percent-escapes"},
  };
  for (const Case& c : cases) {
    const std::string message = Refusal(c.url);
    CHECK_MESSAGE(Contains(message, c.message), c.url, " -> ", message);
  }
}

// Passwords where they belong and where typos put them: none may be echoed.
TEST_CASE("ParseRedisUrl: no refusal quotes the password, or any part of the URL") {
  const char* const kPassword = "Zq9-pw-Xy7";
  const std::string urls[] = {
      std::string("redis://:") + kPassword + "@h:0",
      std::string("redis://:") + kPassword + "@h/x",
      std::string("redis://alice:") + kPassword + "@",
      std::string("redis://:") + kPassword + "%zz@h",
      std::string("redis://:") + kPassword + "@h?bad=" + kPassword,
      std::string("rediss://:") + kPassword + "@h",
      std::string("http://:") + kPassword + "@h",
      std::string("unix://:") + kPassword + "@relative/path",
      std::string("unix://:") + kPassword + "@/tmp/r.sock?db=no",
      std::string("unix://:") + kPassword + "@/tmp/r.sock#frag",
      // The '@' forgotten: the password looks like a port, a host or a path.
      std::string("redis://alice:") + kPassword,
      std::string("redis://") + kPassword + ":" + kPassword + "/0",
      std::string("redis://:") + kPassword + "h:6379",
      std::string("redis://alice:") + kPassword + "/h/0",
      std::string("unix://alice:") + kPassword + "/tmp/r.sock",
      std::string("redis://h/0?") + kPassword,
      std::string(kPassword) + "@h",
      std::string(kPassword) + "://h",
  };
  for (const std::string& url : urls) {
    RedisEndpoint endpoint;
    const Status status = ParseRedisUrl(url, &endpoint);
    CHECK_MESSAGE(status.IsInvalidArgument(), url);
    CHECK_MESSAGE(!Contains(status.message(), kPassword), status.message());
    CHECK_MESSAGE(!Contains(status.message(), "Zq9"), status.message());
  }
}

TEST_CASE("RedactRedisUrl hides the password as written, keeps the rest") {
  CHECK(RedactRedisUrl("redis://:s3cret@10.0.0.5:6379/0") == "redis://:<redacted>@10.0.0.5:6379/0");
  CHECK(RedactRedisUrl("redis://alice:s3cret@h") == "redis://alice:<redacted>@h");
  CHECK(RedactRedisUrl("redis://:p%40ss@h/1") == "redis://:<redacted>@h/1");
  CHECK(RedactRedisUrl("redis://:p@ss:w/o#rd@[::1]:6380/2") == "redis://:<redacted>@[::1]:6380/2");
  CHECK(RedactRedisUrl("unix://u:pw@/run/redis.sock?db=2") ==
        "unix://u:<redacted>@/run/redis.sock?db=2");
  // Nothing to hide.
  CHECK(RedactRedisUrl("redis://10.0.0.5:6379/0") == "redis://10.0.0.5:6379/0");
  CHECK(RedactRedisUrl("redis://:@h") == "redis://:@h");
  CHECK(RedactRedisUrl("unix:///run/redis.sock") == "unix:///run/redis.sock");
  CHECK(RedactRedisUrl("") == "");
  // Refused URLs may hold a password anywhere.
  CHECK(RedactRedisUrl("redis://alice:s3cret") == "<redacted>");
  CHECK(RedactRedisUrl("rediss://:s3cret@h") == "<redacted>");
}

TEST_CASE("IsRedisHost: names, IPv4 and bare IPv6 literals") {
  for (const char* good :
       {"127.0.0.1", "::1", "2001:db8::5", "localhost", "redis-1.internal", "cache_2", "A.B"}) {
    CHECK_MESSAGE(IsRedisHost(good), good);
  }
  for (const char* bad : {"", "[::1]", "h:6379", "ho st", "h/0", "h@x", "h\n", ":::"}) {
    CHECK_MESSAGE(!IsRedisHost(bad), bad);
  }
  CHECK(IsRedisHost(std::string(253, 'a')));
  CHECK(!IsRedisHost(std::string(254, 'a')));
  CHECK(!IsRedisHost(std::string("::1\0x", 5)));
}

}  // namespace
}  // namespace otpd
