// HttpServer: serves an HttpApi over cpp-httplib (vendored, v0.53.1), over
// HTTPS when a certificate is given: TCP_NODELAY, a worker pool that grows
// with the open connections up to `threads` and shrinks back to
// `min_threads` when they go (worker_pool.h: the idle ones are joined and
// their memory returned), a cap
// on the connections one client address holds (connection_limit.h), a bound
// on each request's whole read (header_timeout), short read/write/keep-alive
// timeouts, JSON error bodies, an exception handler, and a framing guard that
// refuses unsafe requests before their body is read, closing the connection
// so an unread body can never be taken for the next request. A request with
// `Expect: 100-continue` is either refused (and not run) or continued.
// The library's compile-time limits: third_party/cpp-httplib/otpd_httplib.h.
//
// Every request gets an ID (the client's X-Request-Id when it is
// [A-Za-z0-9._-]{1,64}, else a generated one), echoed in the X-Request-Id
// response header; after the answer is written it is counted in the API's
// Metrics (HttpApi::metrics, as are refused connections) and logged as one
// access line (method, path, status, latency, client, request_id, user_id).
//
// Thread-safety: Bind, then Run on one thread; Stop and port() from any.
#ifndef OTPD_HTTP_SERVER_H_
#define OTPD_HTTP_SERVER_H_

#include <atomic>
#include <memory>
#include <string>

#include "core/clock.h"
#include "core/status.h"
#include "http/client_ip.h"
#include "http/http_api.h"

namespace otpd {

class WorkerPool;

struct HttpServerOptions {
  std::string host = "127.0.0.1";  // IPv4 or IPv6 literal
  int port = 8000;                 // 0: an ephemeral port (tests)
  int threads = 1024;              // most worker threads; each open connection holds one
  int min_threads = 8;             // workers kept when idle
  int worker_idle_ms = 3000;       // idle this long, a worker above min_threads leaves
  Clock* clock = nullptr;          // the workers' idle time; null: SystemClock()
  size_t max_body_bytes = 16384;   // larger bodies answer 413
  int read_timeout_s = 5;
  int write_timeout_s = 5;
  int keepalive_timeout_s = 5;
  int keepalive_max = 100;          // requests per connection
  int max_connections_per_ip = 64;  // per IPv4 address or IPv6 /64; 0: no cap
  int header_timeout_ms = 5000;     // a request's whole read (line, headers, body)
  bool reuse_port = false;          // SO_REUSEPORT: let other processes share the port
  int shutdown_deadline_ms = 5000;  // Stop waits this long for in-flight requests
  // PEM files: when tls_cert is set, the server speaks HTTPS only.
  std::string tls_cert;
  std::string tls_key;
  // Peers whose X-Forwarded-For is believed (client_ip.h); empty: none.
  TrustedProxies trusted_proxies;
};

class HttpServer {
 public:
  // `api` must outlive the server.
  HttpServer(const HttpServerOptions& options, const HttpApi* api);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds and listens. IOError naming the address when it cannot (in use,
  // say: the port is shared only with reuse_port);
  // InvalidArgument when the TLS certificate or key cannot be loaded.
  Status Bind();

  // The bound port (useful with port 0). REQUIRES: Bind() succeeded.
  int port() const { return port_; }

  // Accepts and serves until Stop(). REQUIRES: Bind() succeeded.
  void Run();

  // Stops accepting, lets in-flight requests finish, and returns true once
  // Run has returned, or false when the shutdown deadline passed first.
  // Idempotent; after Stop, a Run that had not started returns at once.
  bool Stop();

  // The connections' workers (tests and figures read its counts). Lives
  // as long as the server; after Stop it has none.
  WorkerPool& pool();

 private:
  class Impl;
  std::unique_ptr<Impl> impl_;
  int port_ = 0;
};

}  // namespace otpd

#endif  // OTPD_HTTP_SERVER_H_
