#include "http/http_server.h"

#include <otpd_httplib.h>
#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <vector>

#include "core/log.h"
#include "core/metrics.h"
#include "core/random.h"
#include "http/connection_limit.h"
#include "http/docs_pages.h"
#include "http/httplib_server.h"
#include "http/worker_pool.h"

namespace otpd {
namespace {

using httplib::Request;
using httplib::Response;
using Handled = httplib::Server::HandlerResponse;

// Listening-socket options: SO_REUSEADDR (a restart may bind while old
// connections sit in TIME_WAIT), and SO_REUSEPORT only when asked for. The
// library's default turns SO_REUSEPORT on, so a second otpd on the same
// port would start and silently share it.
httplib::SocketOptions ListenSocketOptions(bool reuse_port) {
  return [reuse_port](socket_t sock) {
    httplib::set_socket_opt(sock, SOL_SOCKET, SO_REUSEADDR, 1);
    if (reuse_port) httplib::set_socket_opt(sock, SOL_SOCKET, SO_REUSEPORT, 1);
  };
}

// What the access log needs about the request this worker is serving. A
// connection stays on one worker thread, and the logger runs on it right
// after the answer is written, so thread_local state carries these from
// the pre-routing guard and the handler to the log line.
thread_local std::chrono::steady_clock::time_point t_request_start;
thread_local bool t_request_started = false;
thread_local std::string t_request_id;
thread_local std::string t_user_id;
// The handler answered after reading the whole request (body included):
// the connection may serve the next one, whatever the status.
thread_local bool t_request_read = false;

// A client's X-Request-Id is kept when it is [A-Za-z0-9._-]{1,64}.
bool IsSaneRequestId(const std::string& id) {
  if (id.empty() || id.size() > 64) return false;
  for (char c : id) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) return false;
  }
  return true;
}

// 16 random hex digits per process, then a counter: unique, and cheap.
std::string NewRequestId() {
  static const std::string prefix = [] {
    uint8_t bytes[8] = {};
    if (!OpenSslRandom()->Fill(bytes, sizeof bytes).ok()) {
      const uint64_t t =
          static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch().count());
      memcpy(bytes, &t, sizeof bytes);
    }
    char hex[17];
    for (size_t i = 0; i < sizeof bytes; ++i) snprintf(hex + 2 * i, 3, "%02x", bytes[i]);
    return std::string(hex, 16);
  }();
  static std::atomic<uint64_t> counter{0};
  return prefix + "-" + std::to_string(counter.fetch_add(1, std::memory_order_relaxed) + 1);
}

std::string RequestIdFor(const Request& req) {
  if (req.get_header_value_count("X-Request-Id") == 1) {
    std::string id = req.get_header_value("X-Request-Id");
    if (IsSaneRequestId(id)) return id;
  }
  return NewRequestId();
}

bool EqualsIgnoreCase(const std::string& a, const char* b) { return strcasecmp(a.c_str(), b) == 0; }

// Content-Length as the client sent it: -1 when absent, -2 when repeated
// or not a plain decimal number that fits.
int64_t ContentLength(const Request& req) {
  const size_t n = req.get_header_value_count("Content-Length");
  if (n == 0) return -1;
  if (n > 1) return -2;
  const std::string v = req.get_header_value("Content-Length");
  if (v.empty() || v.size() > 15) return -2;
  int64_t len = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return -2;
    len = len * 10 + (c - '0');
  }
  return len;
}

// The client as client_ip.h defines it.
std::string ClientOf(const Request& req, const TrustedProxies& trusted) {
  std::vector<std::string> forwarded;
  if (!trusted.empty()) {
    const size_t n = req.get_header_value_count("X-Forwarded-For");
    for (size_t i = 0; i < n; i++)
      forwarded.push_back(req.get_header_value("X-Forwarded-For", "", i));
  }
  return ClientIp(req.remote_addr, forwarded, trusted);
}

void ApplyAnswer(const HttpAnswer& a, Response* res, const Request* req = nullptr) {
  res->status = a.status;
  for (const auto& h : a.headers) res->set_header(h.first.c_str(), h.second);
  t_user_id = a.user_id;
  if (a.compressed != nullptr && req != nullptr) {
    // Bytes compressed when the page was rendered; never per request.
    res->set_header("Vary", "Accept-Encoding");
    const std::string enc = PickEncoding(req->get_header_value("Accept-Encoding"));
    const std::string& z = enc == "br" ? a.compressed->br : a.compressed->gzip;
    if (!enc.empty() && !z.empty()) {
      res->set_header("Content-Encoding", enc);
      res->set_content(z, a.content_type.c_str());
      return;
    }
  }
  res->set_content(a.body, a.content_type.c_str());
}

// Answers and closes the connection: the content provider writes the body
// and then reports failure, the one way this library version closes after
// a response (an unread request body must not be parsed as a request).
void AnswerAndClose(const HttpAnswer& a, Response* res) {
  res->status = a.status;
  for (const auto& h : a.headers) res->set_header(h.first.c_str(), h.second);
  res->set_header("Connection", "close");
  auto body = std::make_shared<std::string>(a.body);
  res->set_content_provider(body->size(), a.content_type.c_str(),
                            [body](size_t offset, size_t length, httplib::DataSink& sink) {
                              sink.write(body->data() + offset, length);
                              return false;
                            });
}

const char* ReasonText(int status) {
  switch (status) {
    case 400:
      return "Bad Request";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Request body too large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 416:
      return "Range Not Satisfiable";
    case 417:
      return "Expectation Failed";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Error";
  }
}

// The task queue handed to the library, which deletes it when its accept
// loop ends: a forwarder to the server's own WorkerPool.
class PoolRef final : public httplib::TaskQueue {
 public:
  explicit PoolRef(WorkerPool* pool) : pool_(pool) {}
  bool enqueue(std::function<void()> fn) override { return pool_->enqueue(std::move(fn)); }
  void shutdown() override { pool_->shutdown(); }
  void on_idle() override { pool_->on_idle(); }

 private:
  WorkerPool* const pool_;
};

}  // namespace

class HttpServer::Impl {
 public:
  Impl(const HttpServerOptions& options, const HttpApi* api)
      : pool_(PoolOptions(options)),
        limit_(options.max_connections_per_ip, options.trusted_proxies),
        owned_(
            NewHttplibServer(ConnectionPolicy{&limit_, options.header_timeout_ms, api->metrics()},
                             options.tls_cert, options.tls_key)),
        server(*owned_),
        options_(options),
        api_(api) {
    Configure();
  }

 private:
  static WorkerPoolOptions PoolOptions(const HttpServerOptions& o) {
    WorkerPoolOptions p;
    p.max_workers = static_cast<size_t>(std::max(o.threads, 1));
    p.min_workers = std::min(static_cast<size_t>(std::max(o.min_threads, 0)), p.max_workers);
    p.idle_ms = o.worker_idle_ms;
    p.clock = o.clock;
    return p;
  }

  // Declared first: the server's workers may run until its stop, so the
  // pool goes last.
  WorkerPool pool_;
  ConnectionLimit limit_;
  std::unique_ptr<httplib::Server> owned_;

 public:
  httplib::Server& server;

  WorkerPool& pool() { return pool_; }

  void RunLoop() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stop_requested_) return;
      running_ = true;
    }
    server.listen_after_bind();
    std::lock_guard<std::mutex> lock(mu_);
    running_ = false;
    cv_.notify_all();
  }

  // The library's stop() closes the listening socket whether or not its
  // accept loop has started, and a listen_after_bind() after it returns at
  // once, so one call is enough; then wait for Run to return.
  bool StopAndWait() {
    std::lock_guard<std::mutex> stop_lock(stop_mu_);
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(options_.shutdown_deadline_ms);
    std::unique_lock<std::mutex> lock(mu_);
    stop_requested_ = true;
    lock.unlock();
    server.stop();
    lock.lock();
    return cv_.wait_until(lock, deadline, [this] { return !running_; });
  }

  Status Bind(int* port) {
    const std::string where = options_.host + ":" + std::to_string(options_.port);
    if (!server.is_valid()) {
      return Status::InvalidArgument("cannot load the TLS certificate " + options_.tls_cert +
                                     " or its key " + options_.tls_key);
    }
    if (options_.port == 0) {
      *port = server.bind_to_any_port(options_.host);
      if (*port <= 0)
        return Status::IOError("cannot listen on " + options_.host + ": " + strerror(errno));
    } else {
      if (!server.bind_to_port(options_.host, options_.port)) {
        return Status::IOError("cannot listen on " + where + ": " + strerror(errno));
      }
      *port = options_.port;
    }
    return Status::OK();
  }

 private:
  void Configure();
  Handled Guard(const Request& req, Response& res) const;
  void Serve(const Request& req, Response& res, const httplib::ContentReader* reader) const;
  void KeepAliveAfterAnswer(const Request& req, Response& res) const;
  void AccessLog(const Request& req, const Response& res) const;

  const HttpServerOptions options_;
  const HttpApi* const api_;
  std::mutex stop_mu_;  // one Stop at a time
  std::mutex mu_;       // guards the two flags below
  std::condition_variable cv_;
  bool running_ = false;
  bool stop_requested_ = false;
};

void HttpServer::Impl::Configure() {
  // The library owns (and deletes) the queue it gets; ours stays in pool_.
  server.new_task_queue = [this] { return new PoolRef(&pool_); };
  // With no new connection for half the idle time, the accept loop calls
  // on_idle, and the pool retires its idle workers.
  server.set_idle_interval(std::chrono::milliseconds(std::max(options_.worker_idle_ms / 2, 100)));
  server.set_socket_options(ListenSocketOptions(options_.reuse_port));
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(static_cast<size_t>(options_.keepalive_max));
  server.set_keep_alive_timeout(options_.keepalive_timeout_s);
  server.set_read_timeout(options_.read_timeout_s, 0);
  server.set_write_timeout(options_.write_timeout_s, 0);
  server.set_payload_max_length(options_.max_body_bytes);
  // The library answers 417 and then goes on to run the request; any other
  // status it writes as the whole answer and closes. So a request the guard
  // refuses gets the guard's answer, and is not run; the rest get 100.
  server.set_expect_100_continue_handler([this](const Request& req, Response& res) {
    if (Guard(req, res) == Handled::Handled) return res.status;
    res.headers.erase("X-Request-Id");  // the pre-routing guard sets it again
    return 100;
  });
  server.set_pre_routing_handler(
      [this](const Request& req, Response& res) { return Guard(req, res); });
  server.Get(".*", [this](const Request& req, Response& res) { Serve(req, res, nullptr); });
  const auto post = [this](const Request& req, Response& res, const httplib::ContentReader& r) {
    Serve(req, res, &r);
  };
  // The two busy paths first: a literal pattern is a string compare, where
  // the catch-all's std::regex cost about 2% of a verify's CPU.
  for (const char* path : {"/verify-code", "/send-code"}) server.Post(path, post);
  server.Post(".*", post);
  server.set_error_handler(httplib::Server::HandlerWithResponse([](const Request&, Response& res) {
    // Fill in a JSON body only where the library produced a bare error.
    if (!res.body.empty() || res.content_provider_) return Handled::Unhandled;
    res.set_content(PlainError(res.status, ReasonText(res.status)).body, "application/json");
    return Handled::Handled;
  }));
  server.set_exception_handler([](const Request& req, Response& res, std::exception_ptr ep) {
    std::string what = "unknown exception";
    try {
      if (ep) std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    Log(LogLevel::kError, "unhandled exception", {{"path", req.path}, {"error", what}});
    ApplyAnswer(PlainError(500, "Internal Server Error"), &res);
  });
  server.set_post_routing_handler(
      [this](const Request& req, Response& res) { KeepAliveAfterAnswer(req, res); });
  server.set_logger([this](const Request& req, const Response& res) { AccessLog(req, res); });
}

// Runs after the headers are parsed and before any body is read.
Handled HttpServer::Impl::Guard(const Request& req, Response& res) const {
  t_request_start = std::chrono::steady_clock::now();
  t_request_started = true;
  t_request_id = RequestIdFor(req);
  t_user_id.clear();
  t_request_read = false;
  res.set_header("X-Request-Id", t_request_id);
  const bool is_post = req.method == "POST";
  if (!is_post && req.method != "GET" && req.method != "HEAD") {
    HttpRequest r{req.method, req.path, std::string(), ClientOf(req, options_.trusted_proxies),
                  req.get_header_value("Authorization")};
    AnswerAndClose(api_->Handle(r), &res);
    return Handled::Handled;
  }
  const int64_t len = ContentLength(req);
  const bool has_te = req.has_header("Transfer-Encoding");
  const bool chunked = has_te && req.get_header_value_count("Transfer-Encoding") == 1 &&
                       EqualsIgnoreCase(req.get_header_value("Transfer-Encoding"), "chunked");
  int refuse = 0;
  std::string why;
  if (len == -2) {
    refuse = 400, why = "Invalid Content-Length";
  } else if (has_te && (!is_post || !chunked || len != -1)) {
    refuse = 400, why = "Unsupported Transfer-Encoding";
  } else if (req.has_header("Content-Encoding")) {
    refuse = 415, why = "Content-Encoding is not supported";
  } else if (!is_post && len > 0) {
    refuse = 400, why = "A body is not allowed on " + req.method;
  } else if (is_post && len == -1 && !chunked) {
    refuse = 411, why = "Length Required";
  } else if (len > 0 && static_cast<size_t>(len) > options_.max_body_bytes) {
    refuse = 413, why = "Request body too large";
  }
  if (refuse == 0) return Handled::Unhandled;
  AnswerAndClose(PlainError(refuse, why), &res);
  return Handled::Handled;
}

void HttpServer::Impl::Serve(const Request& req, Response& res,
                             const httplib::ContentReader* reader) const {
  HttpRequest r{req.method, req.path, std::string(), ClientOf(req, options_.trusted_proxies),
                req.get_header_value("Authorization")};
  r.twilio_signature = req.get_header_value("X-Twilio-Signature");
  for (const auto& param : req.params) r.query.emplace_back(param.first, param.second);
  if (reader != nullptr) {
    // Bounded even for chunked bodies, which the library does not limit.
    bool too_large = false;
    bool ok = (*reader)([&](const char* data, size_t n) {
      if (r.body.size() + n > options_.max_body_bytes) {
        too_large = true;
        return false;
      }
      r.body.append(data, n);
      return true;
    });
    if (too_large || !ok) {
      AnswerAndClose(too_large ? PlainError(413, "Request body too large")
                               : PlainError(400, "Incomplete request body"),
                     &res);
      return;
    }
  }
  ApplyAnswer(api_->Handle(r), &res, &req);
  t_request_read = true;
}

// cpp-httplib (since 0.2x) closes the connection after every answer of 400
// or more. For otpd a 400 (wrong code), 404 or 429 is an ordinary answer to
// a request read in full, and a client guessing (or a proxy's pooled
// connection) would pay a new connection, and its TLS handshake, for each.
// So after an answer of the handlers the connection stays open as for a
// 200, unless the client asked to close, this was its last request, or the
// answer is one that must close (AnswerAndClose, the library's own errors).
void HttpServer::Impl::KeepAliveAfterAnswer(const Request& req, Response& res) const {
  const bool read = t_request_read;
  t_request_read = false;  // a library error on the next request finds it unset
  if (!read || res.status < 400 || LastRequestOnConnection()) return;
  if (req.version != "HTTP/1.1" || req.get_header_value("Connection") == "close") return;
  if (res.get_header_value("Connection") != "close") return;
  res.headers.erase("Connection");
  res.set_header("Keep-Alive", "timeout=" + std::to_string(options_.keepalive_timeout_s) +
                                   ", max=" + std::to_string(options_.keepalive_max));
}

// Counts the request and writes its access line. Requests the library
// refused before the guard ran (a bad request line, say) have no start
// time: they are counted without a latency and get a fresh request ID.
void HttpServer::Impl::AccessLog(const Request& req, const Response& res) const {
  int64_t us = -1;
  if (t_request_started) {
    us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() -
                                                               t_request_start)
             .count();
    t_request_started = false;
  } else {
    t_request_id = NewRequestId();
    t_user_id.clear();
  }
  api_->metrics()->RecordRequest(req.path, res.status, us);
  if (!LogEnabled(LogLevel::kInfo)) return;
  const std::string latency =
      us < 0 ? "-" : std::to_string(us / 1000) + "." + std::to_string(us % 1000 / 100) + "ms";
  Log(LogLevel::kInfo, "request",
      {{"method", req.method},
       {"path", req.path},
       {"status", std::to_string(res.status)},
       {"latency", latency},
       {"client", ClientOf(req, options_.trusted_proxies)},
       {"request_id", t_request_id},
       {"user_id", t_user_id.empty() ? "-" : t_user_id}});
}

HttpServer::HttpServer(const HttpServerOptions& options, const HttpApi* api)
    : impl_(new Impl(options, api)) {}

WorkerPool& HttpServer::pool() { return impl_->pool(); }

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Bind() { return impl_->Bind(&port_); }

void HttpServer::Run() { impl_->RunLoop(); }

bool HttpServer::Stop() { return impl_->StopAndWait(); }

}  // namespace otpd
