// OpenApiDocument: the OpenAPI 3.0 description of every route HttpApi
// serves, with request and response schemas for every status in
// ../shared/CONTRACT.md and an example per outcome. It is the one source of
// truth for /openapi.json and for the /docs and /redoc pages.
//
// tests/openapi_test.cpp keeps it true: its paths must equal
// HttpApi::Routes() and every example must match a real answer.
// Thread-safe: a pure function of its options.
#ifndef OTPD_OPENAPI_H_
#define OTPD_OPENAPI_H_

#include <nlohmann/json.hpp>

#include "http/http_api.h"

namespace otpd {

// The document for a server built with `options`: the bearer security
// scheme appears only when options.api_keys_enabled, and `servers` names
// options.base_path ("/" when empty).
nlohmann::ordered_json OpenApiDocument(const HttpApiOptions& options);

}  // namespace otpd

#endif  // OTPD_OPENAPI_H_
