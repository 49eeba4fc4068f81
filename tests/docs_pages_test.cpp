#include "http/docs_pages.h"

#include <doctest/doctest.h>

#include "otp_stack.h"

namespace otpd {
namespace {

HttpAnswer Get(const HttpApi& api, const std::string& path, const std::string& method = "GET") {
  return api.Handle(HttpRequest{method, path, "", "127.0.0.1"});
}

// Every URL the page could load or link to: src/href/action/data-url
// attributes and CSS url(...). Each must stay on this origin.
void CheckSelfContained(const std::string& html, const std::string& base_path) {
  CHECK(html.find("http://") == std::string::npos);
  CHECK(html.find("https://") == std::string::npos);
  CHECK(html.find("url(") == std::string::npos);
  CHECK(html.find("@import") == std::string::npos);
  int links = 0;
  for (const std::string attr : {" src=\"", " href=\"", " action=\"", " data-url=\""}) {
    for (size_t at = html.find(attr); at != std::string::npos; at = html.find(attr, at + 1)) {
      const size_t begin = at + attr.size();
      const std::string url = html.substr(begin, html.find('"', begin) - begin);
      CAPTURE(url);
      const bool local = url.rfind("#", 0) == 0 || url.rfind("./", 0) == 0 || url == "data:," ||
                         (!base_path.empty() && url.rfind(base_path + "/", 0) == 0);
      CHECK(local);
      links++;
    }
  }
  CHECK(links > 10);
}

}  // namespace

TEST_CASE("/docs, /redoc and /openapi.json answer 200 with their content types") {
  OtpStack s;
  for (const char* page : {"/docs", "/redoc"}) {
    CAPTURE(page);
    HttpAnswer a = Get(*s.api, page);
    CHECK(a.status == 200);
    CHECK(a.content_type == "text/html; charset=utf-8");
    CHECK(HeaderValue(a, "Content-Security-Policy").rfind("default-src 'self'; ", 0) == 0);
    CHECK(HeaderValue(a, "X-Content-Type-Options") == "nosniff");
    CHECK(a.body.rfind("<!doctype html>", 0) == 0);
    CHECK(Get(*s.api, page, "HEAD").status == 200);
    CHECK(Get(*s.api, page, "POST").status == 405);
  }
  HttpAnswer a = Get(*s.api, "/openapi.json");
  CHECK(a.status == 200);
  CHECK(a.content_type == "application/json");
  CHECK(Get(*s.api, "/healthz").content_type == "application/json");
}

TEST_CASE("The pages load nothing from another host") {
  for (const std::string base : {"", "/otp"}) {
    HttpApiOptions o;
    o.base_path = base;
    o.api_keys_enabled = true;
    OtpStack s(OtpOptions(), o);
    CAPTURE(base);
    CheckSelfContained(Get(*s.api, "/docs").body, base);
    CheckSelfContained(Get(*s.api, "/redoc").body, base);
    const std::string json = Get(*s.api, "/openapi.json").body;
    CHECK(json.find("http://") == std::string::npos);
    CHECK(json.find("https://") == std::string::npos);
  }
  const std::string csp = DocsContentSecurityPolicy();
  CHECK(csp.find("http") == std::string::npos);
  CHECK(csp.find('*') == std::string::npos);
}

TEST_CASE("The pages carry the reference without JavaScript, the forms only on /docs") {
  OtpStack s;
  const std::string docs = Get(*s.api, "/docs").body;
  const std::string redoc = Get(*s.api, "/redoc").body;
  for (const std::string* page : {&docs, &redoc}) {
    for (const char* text : {"/send-code", "/verify-code", "/healthz", "/readyz", "/openapi.json",
                             "Invalid OTP. 2 attempts remaining", "value_error.missing",
                             "id=\"schema-ErrorDetail\"", "too_many_attempts"}) {
      CAPTURE(text);
      CHECK(page->find(text) != std::string::npos);
    }
  }
  CHECK(docs.find("<form class=\"try\" id=\"try-sendCode\"") != std::string::npos);
  CHECK(docs.find("data-url=\"./verify-code\"") != std::string::npos);
  CHECK(docs.find("<script>") != std::string::npos);
  CHECK(redoc.find("<form") == std::string::npos);
  CHECK(redoc.find("<script") == std::string::npos);
  CHECK(docs.find("id=\"api-key\"") == std::string::npos);
}

TEST_CASE("The pages follow the base path and the API-key setting") {
  HttpApiOptions o;
  o.base_path = "/otp";
  o.api_keys_enabled = true;
  OtpStack s(OtpOptions(), o);
  const std::string docs = Get(*s.api, "/docs").body;
  CHECK(docs.find("data-url=\"/otp/send-code\"") != std::string::npos);
  CHECK(docs.find("href=\"/otp/redoc\"") != std::string::npos);
  CHECK(docs.find("id=\"api-key\"") != std::string::npos);
  CHECK(Get(*s.api, "/redoc").body.find("Authorization: Bearer") != std::string::npos);
}

TEST_CASE("Text from the document is escaped") {
  nlohmann::ordered_json doc = {
      {"info", {{"title", "<b>&"}, {"version", "1"}, {"description", "\"x\" <script>"}}},
      {"paths", nlohmann::ordered_json::object()},
      {"components", {{"schemas", nlohmann::ordered_json::object()}}}};
  const std::string html = RenderDocsPage(doc, DocsStyle::kReference, "", false);
  CHECK(html.find("&lt;b&gt;&amp;") != std::string::npos);
  CHECK(html.find("&quot;x&quot; &lt;script&gt;") != std::string::npos);
  CHECK(html.find("<b>") == std::string::npos);
}

}  // namespace otpd
