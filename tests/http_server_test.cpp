#include "http/http_server.h"

#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <httplib.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "otp_stack.h"

namespace otpd {
namespace {

// An OtpStack served in-process on an ephemeral loopback port.
struct ServerFixture {
  explicit ServerFixture(HttpServerOptions options = HttpServerOptions()) {
    options.host = "127.0.0.1";
    options.port = 0;
    options.max_body_bytes = 1024;
    server.reset(new HttpServer(options, stack.api.get()));
    REQUIRE(server->Bind().ok());
    thread = std::thread([this] { server->Run(); });
  }
  ~ServerFixture() {
    server->Stop();
    thread.join();
  }
  httplib::Client Client() { return httplib::Client("127.0.0.1", server->port()); }

  OtpStack stack;
  std::unique_ptr<HttpServer> server;
  std::thread thread;
};

int ConnectLoopback(int port) {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// Everything that arrives on `fd` within `ms`.
std::string ReadFor(int fd, int ms) {
  std::string got;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 20) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    got.append(buf, static_cast<size_t>(n));
  }
  return got;
}

// Sends `raw` on a fresh connection and reads until the server closes it
// or `wait_ms` pass. *closed says whether the server closed it.
std::string RawExchange(int port, const std::string& raw, bool* closed, int wait_ms = 2000) {
  int fd = ConnectLoopback(port);
  REQUIRE(send(fd, raw.data(), raw.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(raw.size()));
  std::string got;
  *closed = false;
  auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  while (std::chrono::steady_clock::now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 50) <= 0) continue;
    char buf[4096];
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) {
      *closed = true;
      break;
    }
    got.append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return got;
}

int CountResponses(const std::string& raw) {
  int n = 0;
  for (size_t i = raw.find("HTTP/1.1 "); i != std::string::npos; i = raw.find("HTTP/1.1 ", i + 1)) n++;
  return n;
}

}  // namespace

TEST_CASE("Server: send and verify over HTTP, JSON content type, keep-alive") {
  ServerFixture f;
  httplib::Client cli = f.Client();
  cli.set_keep_alive(true);
  auto res = cli.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->get_header_value("Content-Type") == "application/json");
  const std::string body = R"({"user_id":"abc","passcode":")" + f.stack.sms.LastCode() + "\"}";
  res = cli.Post("/verify-code", body, "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(res->body == R"({"success":true,"message":"OTP verified successfully","user_id":"abc"})");
}

TEST_CASE("Server: unknown path 404, wrong method 405, as JSON") {
  ServerFixture f;
  httplib::Client cli = f.Client();
  auto res = cli.Get("/nope");
  REQUIRE(res);
  CHECK(res->status == 404);
  CHECK(res->body == R"({"detail":"Not Found"})");
  res = cli.Get("/send-code");
  REQUIRE(res);
  CHECK(res->status == 405);
  CHECK(res->get_header_value("Allow") == "POST");
  res = cli.Delete("/verify-code");
  REQUIRE(res);
  CHECK(res->status == 405);
  CHECK(res->body == R"({"detail":"Method Not Allowed"})");
  res = cli.Post("/nope", "{}", "application/json");
  REQUIRE(res);
  CHECK(res->status == 404);
}

TEST_CASE("Server: the docs pages go out as HTML with their headers; HEAD has none of the body") {
  ServerFixture f;
  httplib::Client cli = f.Client();
  for (const char* page : {"/docs", "/redoc"}) {
    CAPTURE(page);
    auto res = cli.Get(page);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->get_header_value("Content-Type") == "text/html; charset=utf-8");
    CHECK(res->get_header_value("Content-Security-Policy").rfind("default-src 'self'; ", 0) == 0);
    CHECK(res->body.rfind("<!doctype html>", 0) == 0);
    res = cli.Head(page);
    REQUIRE(res);
    CHECK(res->status == 200);
    CHECK(res->body.empty());
  }
  auto res = cli.Get("/openapi.json");
  REQUIRE(res);
  CHECK(res->get_header_value("Content-Type") == "application/json");
  CHECK(res->body.rfind("{\"openapi\":\"3.0.3\"", 0) == 0);
}

TEST_CASE("Server: a Content-Length over the limit is refused before the body is read") {
  ServerFixture f;
  bool closed = false;
  // The body never comes: the answer must not wait for it.
  std::string got = RawExchange(f.server->port(),
                                "POST /send-code HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n",
                                &closed);
  CHECK(got.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(got.find(R"({"detail":"Request body too large"})") != std::string::npos);
  CHECK(closed);
}

TEST_CASE("Server: a smuggled request in an unread body is never served") {
  ServerFixture f;
  const std::string inner = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string pad(2000, ' ');
  std::string raw = "POST /send-code HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                    std::to_string(pad.size() + inner.size()) + "\r\n\r\n" + pad + inner;
  bool closed = false;
  std::string got = RawExchange(f.server->port(), raw, &closed);
  CHECK(CountResponses(got) == 1);
  CHECK(got.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(closed);
}

TEST_CASE("Server: chunked bodies are read up to the limit, then 413 and close") {
  ServerFixture f;
  bool closed = false;
  std::string small = R"({"user_id":"abc"})";
  char size_hex[16];
  snprintf(size_hex, sizeof size_hex, "%zx", small.size());
  std::string got = RawExchange(f.server->port(),
                                "POST /send-code HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
                                "Connection: close\r\n\r\n" + std::string(size_hex) + "\r\n" + small +
                                    "\r\n0\r\n\r\n",
                                &closed);
  CHECK(got.rfind("HTTP/1.1 200", 0) == 0);
  std::string big;
  for (int i = 0; i < 8; i++) big += "200\r\n" + std::string(512, 'x') + "\r\n";
  got = RawExchange(f.server->port(),
                    "POST /send-code HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + big,
                    &closed);
  CHECK(got.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(closed);
}

TEST_CASE("Server: bad framing is refused and the connection closed") {
  ServerFixture f;
  struct Case {
    const char* headers;
    const char* status;
  };
  const Case cases[] = {
      {"POST /send-code HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 411"},
      {"POST /send-code HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n", "HTTP/1.1 400"},
      {"POST /send-code HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 2\r\n\r\n{}",
       "HTTP/1.1 400"},
      {"POST /send-code HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n",
       "HTTP/1.1 400"},
      {"POST /send-code HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n", "HTTP/1.1 400"},
      {"POST /send-code HTTP/1.1\r\nHost: x\r\nContent-Encoding: gzip\r\nContent-Length: 2\r\n\r\n{}",
       "HTTP/1.1 415"},
      {"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello", "HTTP/1.1 400"},
      {"PUT /send-code HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}", "HTTP/1.1 405"},
      {"TRACE / HTTP/1.1\r\nHost: x\r\n\r\n", "HTTP/1.1 404"},
  };
  for (const Case& c : cases) {
    bool closed = false;
    std::string got = RawExchange(f.server->port(), c.headers, &closed);
    CAPTURE(c.headers);
    CHECK(got.rfind(c.status, 0) == 0);
    CHECK(got.find("Content-Type: application/json") != std::string::npos);
    CHECK(closed);
  }
}

TEST_CASE("Server: a malformed request line gets a JSON 400") {
  ServerFixture f;
  bool closed = false;
  std::string got = RawExchange(f.server->port(), "NONSENSE\r\n\r\n", &closed, 500);
  CHECK(got.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(got.find(R"({"detail":"Bad Request"})") != std::string::npos);
}

TEST_CASE("Server: Expect: 100-continue over the limit is refused") {
  ServerFixture f;
  bool closed = false;
  std::string got = RawExchange(
      f.server->port(),
      "POST /send-code HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n",
      &closed);
  CHECK(got.find("HTTP/1.1 100") == std::string::npos);
  CHECK(got.find("413") != std::string::npos);
}

TEST_CASE("Server: keep-alive serves several requests on one connection") {
  ServerFixture f;
  int fd = ConnectLoopback(f.server->port());
  const std::string one = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  for (int i = 0; i < 3; i++) {
    REQUIRE(send(fd, one.data(), one.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(one.size()));
    std::string got = ReadFor(fd, 300);
    CHECK(got.rfind("HTTP/1.1 200", 0) == 0);
    CHECK(got.find(R"({"status":"ok"})") != std::string::npos);
  }
  close(fd);
}

TEST_CASE("Server: Stop is bounded by the deadline even with a connection held open") {
  HttpServerOptions o;
  o.keepalive_timeout_s = 30;  // this library waits this long on an idle connection
  o.read_timeout_s = 30;
  o.shutdown_deadline_ms = 500;
  ServerFixture f(o);
  int fd = ConnectLoopback(f.server->port());
  usleep(100000);  // the server has taken the connection
  auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(f.server->Stop());  // deadline passed: requests still in flight
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start).count();
  CHECK(ms >= 450);
  CHECK(ms < 2000);
  close(fd);  // lets the worker go, so the fixture can join
}

TEST_CASE("Server: Stop returns true at once when nothing is in flight") {
  ServerFixture f;
  auto start = std::chrono::steady_clock::now();
  CHECK(f.server->Stop());
  auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                                  start).count();
  CHECK(ms < 1000);
}

namespace {

// `n` loopback connections that each send a request's first line and then
// one more header byte every `interval_ms`, never finishing: each holds a
// server worker for as long as it trickles (slowloris).
class Slowloris {
 public:
  Slowloris(int port, int n, int interval_ms) {
    for (int i = 0; i < n; i++) {
      int fd = ConnectLoopback(port);
      const std::string start = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ";
      send(fd, start.data(), start.size(), MSG_NOSIGNAL);
      fds_.push_back(fd);
    }
    thread_ = std::thread([this, interval_ms] {
      while (!stop_.load()) {
        for (int fd : fds_) {
          if (send(fd, "a", 1, MSG_NOSIGNAL) != 1) broken_++;
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
      }
    });
  }
  ~Slowloris() {
    stop_ = true;
    thread_.join();
    for (int fd : fds_) close(fd);
  }
  // Connections the server has closed on us so far.
  int broken() const { return broken_.load(); }

 private:
  std::vector<int> fds_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> broken_{0};
};

// Milliseconds one GET /healthz on a fresh connection takes (-1: failed).
int64_t TimedHealthz(int port) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_connection_timeout(3);
  cli.set_read_timeout(3);
  const auto start = std::chrono::steady_clock::now();
  auto res = cli.Get("/healthz");
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  return res && res->status == 200 ? ms : -1;
}

}  // namespace

TEST_CASE("Server: 200 slowloris connections do not keep a normal client waiting"
          * doctest::test_suite("tsan")) {
  ServerFixture f;  // the default pool
  Slowloris attack(f.server->port(), 200, 100);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));  // all are held by workers
  // Each normal request is answered (within the client's timeout), however
  // long the machine takes: no threshold on how long.
  int64_t worst = 0, answered = 0;
  for (int i = 0; i < 5; i++) {
    const int64_t ms = TimedHealthz(f.server->port());
    answered += ms >= 0;
    worst = std::max(worst, ms);
  }
  MESSAGE("slowloris x200: slowest of 5 normal requests took ", worst, " ms");
  CHECK(answered == 5);
  CHECK(attack.broken() == 0);  // the attack really was holding its connections
}

TEST_CASE("Server: idle connections are dropped after the keep-alive timeout") {
  HttpServerOptions o;
  o.keepalive_timeout_s = 1;
  ServerFixture f(o);
  bool closed = false;
  const auto start = std::chrono::steady_clock::now();
  RawExchange(f.server->port(), "", &closed, 4000);
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start)
                      .count();
  CHECK(closed);
  CHECK(ms < 3000);
}

TEST_CASE("Server: a request line or header line over 8 KiB is refused, not served") {
  ServerFixture f;
  bool closed = false;
  std::string got = RawExchange(
      f.server->port(), "GET /" + std::string(9000, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n", &closed);
  CHECK(got.rfind("HTTP/1.1 200", 0) != 0);
  CHECK(got.find("HTTP/1.1 4") != std::string::npos);
  got = RawExchange(f.server->port(),
                    "GET /healthz HTTP/1.1\r\nX-Big: " + std::string(9000, 'a') + "\r\n\r\n",
                    &closed);
  CHECK(got.rfind("HTTP/1.1 200", 0) != 0);
  CHECK(TimedHealthz(f.server->port()) >= 0);  // and the server is still fine
}

TEST_CASE("Server: HTTPS with tls_cert and tls_key; plain HTTP is not served on it") {
  TempDir dir;
  const std::string cert = dir.File("cert.pem"), key = dir.File("key.pem");
  const std::string cmd = "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes"
                          " -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 -days 1"
                          " -keyout " + key + " -out " + cert + " >/dev/null 2>&1";
  REQUIRE(system(cmd.c_str()) == 0);
  HttpServerOptions o;
  o.tls_cert = cert;
  o.tls_key = key;
  ServerFixture f(o);
  httplib::SSLClient tls("127.0.0.1", f.server->port());
  tls.set_ca_cert_path(cert.c_str());
  tls.enable_server_certificate_verification(true);
  tls.set_connection_timeout(3);
  auto res = tls.Post("/send-code", R"({"user_id":"abc"})", "application/json");
  REQUIRE(res);
  CHECK(res->status == 200);
  CHECK(f.stack.sms.count() == 1);
  httplib::Client plain("127.0.0.1", f.server->port());
  plain.set_read_timeout(2);
  auto res2 = plain.Get("/healthz");
  CHECK((!res2 || res2->status != 200));
}

TEST_CASE("Server: Bind fails clearly when the TLS files cannot be loaded") {
  TempDir dir;
  HttpServerOptions o;
  o.host = "127.0.0.1";
  o.port = 0;
  o.tls_cert = dir.File("missing-cert.pem");
  o.tls_key = dir.File("missing-key.pem");
  OtpStack stack;
  HttpServer server(o, stack.api.get());
  Status s = server.Bind();
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("missing-cert.pem") != std::string::npos);
}

}  // namespace otpd
