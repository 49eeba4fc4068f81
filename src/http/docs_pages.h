// The /docs and /redoc pages, rendered on the server from the OpenAPI
// document (openapi.h), so they read without JavaScript. Their CSS and the
// small script of the /docs try-it forms are embedded in the binary at build
// time (src/docs/, compiled by the Makefile into docs_assets.cpp) and inlined
// in the page: a page is one request and loads nothing from anywhere.
//
// Thread-safe: pure functions.
#ifndef OTPD_DOCS_PAGES_H_
#define OTPD_DOCS_PAGES_H_

#include <memory>
#include <nlohmann/json.hpp>
#include <string>

namespace otpd {

enum class DocsStyle {
  kInteractive,  // /docs: the reference plus a form per endpoint
  kReference,    // /redoc: the reference with a table of contents
};

// The page for `openapi`. Links and form targets are relative, or start
// with `base_path` when it is set, so the page works behind a path prefix.
// `api_key_field` adds an API-key input whose value the forms send as
// Authorization: Bearer.
std::string RenderDocsPage(const nlohmann::ordered_json& openapi, DocsStyle style,
                           const std::string& base_path, bool api_key_field);

// The Content-Security-Policy for both pages: only this origin, and only
// the embedded style and script (by their SHA-256).
const std::string& DocsContentSecurityPolicy();

// A page's body compressed once, when the page is rendered, so that no
// request pays for compressing it (brotli at high quality took up to 3.7 s
// a request when the HTTP library did it per request).
struct CompressedBody {
  std::string gzip;  // "" when compression failed: serve the body as is
  std::string br;
};
std::shared_ptr<const CompressedBody> CompressBody(const std::string& body);

// The encoding to answer an Accept-Encoding header with, from what
// CompressedBody holds: "br", then "gzip", else "" (identity). A coding
// listed with q=0 is not acceptable; "*" accepts both.
std::string PickEncoding(const std::string& accept_encoding);

}  // namespace otpd

#endif  // OTPD_DOCS_PAGES_H_
