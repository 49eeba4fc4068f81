#include "http/httplib_server.h"

// The library's implementation, compiled here and nowhere else (the
// Makefile generates it from third_party/cpp-httplib/httplib.h).
#include <httplib_impl.inc>

#include "core/metrics.h"

namespace otpd {

namespace {
// Whether the request this thread is serving is its connection's last.
thread_local bool t_last_request = false;
}  // namespace

bool LastRequestOnConnection() { return t_last_request; }

namespace {

using Clock = std::chrono::steady_clock;

// A slot in the ConnectionLimit for one connection, given back on scope exit.
class ConnectionSlot {
 public:
  ConnectionSlot(ConnectionLimit* limit, socket_t sock) : limit_(limit) {
    if (limit_ == nullptr) return;
    std::string ip;
    int port = 0;
    httplib::detail::get_remote_ip_and_port(sock, ip, port);
    ok_ = limit_->Acquire(ip, &key_);
  }
  ~ConnectionSlot() {
    if (limit_ != nullptr && ok_) limit_->Release(key_);
  }
  ConnectionSlot(const ConnectionSlot&) = delete;
  ConnectionSlot& operator=(const ConnectionSlot&) = delete;
  bool ok() const { return ok_; }

 private:
  ConnectionLimit* const limit_;
  bool ok_ = true;
  std::string key_;
};

// An over-cap connection: closed before anything is read or written.
bool Refuse(socket_t sock, Metrics* metrics) {
  if (metrics != nullptr) metrics->RecordConnectionRefused();
  httplib::detail::shutdown_socket(sock);
  httplib::detail::close_socket(sock);
  return false;
}

class PlainServer final : public httplib::Server {
 public:
  explicit PlainServer(const ConnectionPolicy& policy) : policy_(policy) {}

 private:
  // Upstream's Server::process_and_close_socket, with the slot and with
  // each request's stream bounded by the request read deadline.
  bool process_and_close_socket(socket_t sock) override {
    ConnectionSlot slot(policy_.limit, sock);
    if (!slot.ok()) return Refuse(sock, policy_.metrics);
    std::string remote_addr;
    int remote_port = 0;
    httplib::detail::get_remote_ip_and_port(sock, remote_addr, remote_port);
    std::string local_addr;
    int local_port = 0;
    httplib::detail::get_local_ip_and_port(sock, local_addr, local_port);
    bool websocket_upgraded = false;
    const auto ret = httplib::detail::process_server_socket_core(
        svr_sock_, sock, keep_alive_max_count_, keep_alive_timeout_sec_,
        [&](bool close_connection, bool& connection_closed) {
          t_last_request = close_connection;
          httplib::detail::SocketStream strm(sock, read_timeout_sec_, read_timeout_usec_,
                                             write_timeout_sec_, write_timeout_usec_,
                                             policy_.request_read_timeout_ms, Clock::now());
          strm.set_readable_hint();
          return process_request(strm, remote_addr, remote_port, local_addr, local_port,
                                 close_connection, connection_closed, nullptr, &websocket_upgraded);
        });
    httplib::detail::drain_and_close_socket(sock);
    return ret;
  }

  const ConnectionPolicy policy_;
};

class TlsServer final : public httplib::SSLServer {
 public:
  TlsServer(const ConnectionPolicy& policy, const std::string& cert, const std::string& key)
      : httplib::SSLServer(cert.c_str(), key.c_str()), policy_(policy) {}

 private:
  // Upstream's SSLServer::process_and_close_socket, with the slot, the
  // handshake bounded by the request read deadline, and each request's
  // stream bounded by it too. It leaves out what needs the base's private
  // members: last_ssl_error_ (a diagnostic otpd never reads) and
  // ctx_mutex_ (it guards update_certs_pem, which otpd never calls).
  bool process_and_close_socket(socket_t sock) override {
    namespace tls = httplib::tls;
    ConnectionSlot slot(policy_.limit, sock);
    if (!slot.ok()) return Refuse(sock, policy_.metrics);
    tls::session_t session = tls::create_session(tls_context(), sock);
    if (!session) {
      httplib::detail::shutdown_socket(sock);
      httplib::detail::close_socket(sock);
      return false;
    }
    bool handshake_done = false;
    bool ret = false;
    bool websocket_upgraded = false;
    auto cleanup = httplib::detail::scope_exit([&] {
      if (handshake_done) tls::shutdown(session, !websocket_upgraded && ret);
      tls::free_session(session);
      httplib::detail::shutdown_socket(sock);
      httplib::detail::close_socket(sock);
    });
    time_t sec = read_timeout_sec_, usec = read_timeout_usec_;
    if (policy_.request_read_timeout_ms > 0) {
      httplib::detail::calc_actual_timeout(policy_.request_read_timeout_ms, 0, sec, usec, sec,
                                           usec);
    }
    tls::TlsError tls_err;
    if (!tls::accept_nonblocking(session, sock, sec, usec, &tls_err)) return false;
    handshake_done = true;
    std::string remote_addr;
    int remote_port = 0;
    httplib::detail::get_remote_ip_and_port(sock, remote_addr, remote_port);
    std::string local_addr;
    int local_port = 0;
    httplib::detail::get_local_ip_and_port(sock, local_addr, local_port);
    ret = httplib::detail::process_server_socket_core(
        svr_sock_, sock, keep_alive_max_count_, keep_alive_timeout_sec_,
        [&](bool close_connection, bool& connection_closed) {
          t_last_request = close_connection;
          httplib::detail::SSLSocketStream strm(
              sock, session, read_timeout_sec_, read_timeout_usec_, write_timeout_sec_,
              write_timeout_usec_, policy_.request_read_timeout_ms, Clock::now());
          strm.set_readable_hint();
          return process_request(
              strm, remote_addr, remote_port, local_addr, local_port, close_connection,
              connection_closed, [&](httplib::Request& req) { req.ssl = session; },
              &websocket_upgraded);
        });
    return ret;
  }

  const ConnectionPolicy policy_;
};

}  // namespace

std::unique_ptr<httplib::Server> NewHttplibServer(const ConnectionPolicy& policy,
                                                  const std::string& tls_cert,
                                                  const std::string& tls_key) {
  if (tls_cert.empty()) return std::make_unique<PlainServer>(policy);
  return std::make_unique<TlsServer>(policy, tls_cert, tls_key);
}

}  // namespace otpd
