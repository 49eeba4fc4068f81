// libFuzzer target over request parsing and the handlers: HttpApi::Handle
// on a whole otpd below the socket (tests/otp_stack.h), plus the parsers of
// untrusted text (client IPs, X-Forwarded-For, API keys, --since).
//
// Input: byte 0 picks the route (bits 0-2) and whether API keys and the
// per-client limit are on (bit 3); the rest is the body. With bit 4 set,
// the rest is also offered to the text parsers.
//
//   make fuzz       run for FUZZ_TIME seconds (default 300) on the corpus
//   make fuzz-ci    run for 60 seconds: any crash, leak or UB fails
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "core/log.h"
#include "core/phone.h"
#include "http/api_keys.h"
#include "http/client_ip.h"
#include "http/http_api.h"
#include "otp/audit.h"
#include "otp_stack.h"

namespace otpd {
namespace {

struct Target {
  OtpStack stack;
  RateLimiter limiter{RateLimiterOptions{1000000, 1000000, 1024}, &stack.clock};
  std::unique_ptr<HttpApi> guarded;

  Target() {
    SetLogLevel(LogLevel::kError);
    OtpOptions options;
    HttpApiOptions api_options;
    ApiKeys::Load("fuzz-key-0123456789", "", &api_options.api_keys);
    guarded.reset(new HttpApi(stack.service.get(), api_options, &limiter));
    stack.users->Upsert("abc", "+12015551111");
  }
};

const char* const kPaths[] = {"/send-code", "/verify-code", "/healthz",     "/readyz",
                              "/nowhere",   "/send-code",   "/verify-code", ""};

void FuzzParsers(const std::string& text) {
  TrustedProxies proxies;
  if (TrustedProxies::Parse(text, &proxies).ok()) proxies.Contains(text);
  TrustedProxies loopback;
  TrustedProxies::Parse("127.0.0.1, 10.0.0.0/8, ::1", &loopback);
  LimitKey(ClientIp("127.0.0.1", {text, text}, loopback));
  CanonicalIp(text);
  ApiKeys keys;
  ApiKeys::Load(text, "", &keys);
  keys.Allows(text);
  int64_t since = 0;
  ParseSince(text, 1764000000000, &since);
  std::vector<std::string> codes;
  ParseCountryCodes(text, &codes);
  MaskPhone(text);
}

}  // namespace
}  // namespace otpd

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static otpd::Target* target = [] {
    static otpd::Target* t = new otpd::Target();
    // libFuzzer ends with exit(): remove the temporary database then.
    std::atexit([] { delete t; });
    return t;
  }();
  if (size == 0) return 0;
  const uint8_t selector = data[0];
  std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  otpd::HttpRequest request;
  request.path = otpd::kPaths[selector & 7];
  request.method = (selector & 7) >= 5 ? "GET" : "POST";
  if (request.path == "/healthz" || request.path == "/readyz") request.method = "GET";
  request.body = rest;
  request.client_ip = "127.0.0.1";
  request.authorization = "Bearer " + rest.substr(0, 19);
  const otpd::HttpApi* api = (selector & 8) ? target->guarded.get() : target->stack.api.get();
  otpd::HttpAnswer answer = api->Handle(request);
  if (answer.status >= 500 && answer.status != 503) __builtin_trap();  // never a 5xx
  target->stack.clock.Advance(1000);  // let limits and codes move on
  if (selector & 16) otpd::FuzzParsers(rest);
  return 0;
}
