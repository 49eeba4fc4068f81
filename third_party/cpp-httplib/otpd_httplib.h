// otpd's one way to include cpp-httplib (README in this folder): the
// library's compile-time settings, then the library's declarations. Every
// file that uses cpp-httplib includes this header and never <httplib.h>,
// so the settings, which change class layouts and default values, are the
// same in every translation unit (the generated <httplib.h> refuses to be
// included without them). The implementation is compiled once, in
// src/http/httplib_server.cpp.
#ifndef OTPD_HTTPLIB_H_
#define OTPD_HTTPLIB_H_

#ifdef CPPHTTPLIB_VERSION
#error "<httplib.h> was included before <otpd_httplib.h>"
#endif
#define OTPD_HTTPLIB_SETTINGS 1

// HTTPS server (tls_cert) and the Twilio client, with OpenSSL.
#define CPPHTTPLIB_OPENSSL_SUPPORT
// No CPPHTTPLIB_ZLIB_SUPPORT / CPPHTTPLIB_BROTLI_SUPPORT: the library would
// compress every response on every request (brotli at maximum quality took
// 0.2-3.7 s per /docs request). The pages are compressed once at start
// (docs_pages.h) and request bodies with a Content-Encoding are refused.

// Header lines per request (the library answers 400 beyond). otpd reads
// about six; browsers and proxies send twenty or so. Upstream: 100.
#define CPPHTTPLIB_HEADER_MAX_COUNT 64
// Longest header line in bytes (400 beyond). Upstream: 8192.
#define CPPHTTPLIB_HEADER_MAX_LENGTH 8192
// Longest request target in bytes (414 beyond); otpd's paths are short.
// Upstream: 8192.
#define CPPHTTPLIB_REQUEST_URI_MAX_LENGTH 2048
// Longest line the line reader keeps (request line, headers, chunk sizes)
// before failing the request. Upstream: 32768.
#define CPPHTTPLIB_MAX_LINE_LENGTH 8192
// Default body limit where no one sets one: the server sets its own
// (max_body_bytes, 16 KiB); this bounds the Twilio client's responses.
// Upstream: 100 MiB.
#define CPPHTTPLIB_PAYLOAD_MAX_LENGTH (1024 * 1024)
// Form bodies are not used; keep upstream's 8 KiB bound.
#define CPPHTTPLIB_FORM_URL_ENCODED_PAYLOAD_MAX_LENGTH 8192
// Byte ranges per request: otpd serves whole pages; more than one range
// answers 416. Upstream: 1024.
#define CPPHTTPLIB_RANGE_MAX_COUNT 1
// Multipart uploads are not used. Upstream: 1024.
#define CPPHTTPLIB_MULTIPART_FORM_DATA_FILE_MAX_COUNT 1
// The client follows no redirect (credentials would go to the new host);
// redirects stay off and this caps them should one ever be turned on.
#define CPPHTTPLIB_REDIRECT_MAX_COUNT 0
// The default thread pool (HttpServer sets its own from `threads`): 8
// workers always, up to 1024 while busy (one per open connection), the
// extra ones leaving after CPPHTTPLIB_THREAD_POOL_IDLE_TIMEOUT idle seconds.
#define CPPHTTPLIB_THREAD_POOL_COUNT 8
#define CPPHTTPLIB_THREAD_POOL_MAX_COUNT 1024
#define CPPHTTPLIB_THREAD_POOL_IDLE_TIMEOUT 3
// listen(2) backlog: connections the kernel queues while all workers are
// busy. Upstream: 128.
#define CPPHTTPLIB_LISTEN_BACKLOG 1024
// Nagle off: with it on, the server is two orders of magnitude slower
// (HTTPLIB.md). HttpServer also sets it.
#define CPPHTTPLIB_TCP_NODELAY true

#include <httplib.h>

#ifndef OTPD_HTTPLIB_SPLIT
#error "<httplib.h> is not the split one: build with -isystem BUILD/gen/cpp-httplib first"
#endif

#endif  // OTPD_HTTPLIB_H_
