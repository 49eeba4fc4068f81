// The cpp-httplib servers HttpServer runs: the library's own Server and
// SSLServer with their per-connection processing replaced by one that
//   - first takes a slot from a ConnectionLimit, before any byte is read,
//     and closes the connection at once when the client has none left;
//   - bounds the whole read of each request (request line, headers and
//     body; for HTTPS also the TLS handshake) by `request_read_timeout_ms`,
//     where the library bounds only each wait for the next bytes.
// Otherwise the processing is upstream's, line for line (v0.53.1); see
// third_party/cpp-httplib/README.md before upgrading.
//
// httplib_server.cpp is also the one file that compiles cpp-httplib's
// implementation: every other file sees only its declarations.
#ifndef OTPD_HTTPLIB_SERVER_H_
#define OTPD_HTTPLIB_SERVER_H_

#include <otpd_httplib.h>

#include <memory>
#include <string>

#include "core/metrics.h"
#include "http/connection_limit.h"

namespace otpd {

struct ConnectionPolicy {
  ConnectionLimit* limit = nullptr;  // must outlive the server; null: no cap
  int request_read_timeout_ms = 0;   // header_timeout; 0: only per-read timeouts
  Metrics* metrics = nullptr;        // counts refused connections; must outlive the server
};

// A plain server, or an HTTPS one when `tls_cert` is set (check
// is_valid() for whether the certificate and key loaded).
std::unique_ptr<httplib::Server> NewHttplibServer(const ConnectionPolicy& policy,
                                                  const std::string& tls_cert,
                                                  const std::string& tls_key);

// While a handler runs: whether the request is the last its connection
// serves (keep-alive requests used up), so the answer must close it.
bool LastRequestOnConnection();

}  // namespace otpd

#endif  // OTPD_HTTPLIB_SERVER_H_
