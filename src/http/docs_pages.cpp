#include "http/docs_pages.h"

#include <brotli/encode.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <cstring>

#include "http/docs_assets.h"

namespace otpd {
namespace {

using Json = nlohmann::ordered_json;

std::string Escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string Text(const Json& j, const char* key) {
  auto it = j.find(key);
  return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
}

// j[key], or an empty object: safe to iterate, unlike a temporary value().
const Json& Member(const Json& j, const char* key) {
  static const Json empty = Json::object();
  auto it = j.find(key);
  return it == j.end() ? empty : *it;
}

std::string PrettyJson(const Json& j) {
  return Escape(j.dump(2, ' ', false, Json::error_handler_t::replace));
}

// "sha256-<base64>" of `text`, for a CSP source list.
std::string CspHash(const char* text) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_Digest(text, strlen(text), digest, &n, EVP_sha256(), nullptr);
  unsigned char b64[4 * ((EVP_MAX_MD_SIZE + 2) / 3) + 1];
  EVP_EncodeBlock(b64, digest, static_cast<int>(n));
  return "'sha256-" + std::string(reinterpret_cast<char*>(b64)) + "'";
}

// Where a page links to `path`: relative to the page ("./x" from "/docs"
// is "/x", also behind a proxy's prefix), or under the configured base path.
std::string Url(const std::string& base_path, const std::string& path) {
  return Escape((base_path.empty() ? "." : base_path) + path);
}

std::string SchemaName(const Json& schema) {
  const std::string ref = Text(schema, "$ref");
  const size_t slash = ref.rfind('/');
  return slash == std::string::npos ? std::string() : ref.substr(slash + 1);
}

const Json& Resolve(const Json& doc, const Json& schema) {
  const std::string name = SchemaName(schema);
  if (name.empty()) return schema;
  return doc["components"]["schemas"][name];
}

std::string TypeHtml(const Json& schema) {
  const std::string name = SchemaName(schema);
  if (!name.empty()) return "<a href=\"#schema-" + Escape(name) + "\">" + Escape(name) + "</a>";
  const std::string type = Text(schema, "type");
  if (type == "array" && schema.contains("items")) return "array of " + TypeHtml(schema["items"]);
  return Escape(type.empty() ? "any" : type);
}

std::string ConstraintsHtml(const Json& s) {
  std::string out;
  if (s.contains("enum")) {
    out += " One of:";
    for (const Json& v : s["enum"]) out += " <code>" + Escape(v.dump()) + "</code>";
    out += ".";
  }
  if (s.contains("minLength") || s.contains("maxLength")) {
    out += " " + (s.contains("minLength") ? s["minLength"].dump() : std::string("0")) + " to " +
           (s.contains("maxLength") ? s["maxLength"].dump() : std::string("any")) + " bytes.";
  }
  return out;
}

std::string Description(const Json& s) {
  std::string text = Text(s, "description");
  const std::string more = ConstraintsHtml(s);
  if (!text.empty() && !more.empty() && text.back() != '.') text += '.';
  return Escape(text) + more;
}

// A table of the properties of an object schema.
std::string PropertiesTable(const Json& schema) {
  if (!schema.contains("properties")) {
    return "<p>Type: " + TypeHtml(schema) + ".</p>\n";
  }
  const Json& required = Member(schema, "required");
  std::string out =
      "<table><thead><tr><th>Field</th><th>Type</th><th>Description</th></tr></thead><tbody>\n";
  for (const auto& p : schema["properties"].items()) {
    bool req = false;
    for (const Json& r : required) req = req || r == p.key();
    out += "<tr><td><code>" + Escape(p.key()) + "</code>" +
           (req ? " <span class=\"req\">required</span>" : "") + "</td><td>" + TypeHtml(p.value()) +
           "</td><td>" + Description(p.value()) + "</td></tr>\n";
  }
  return out + "</tbody></table>\n";
}

std::string MediaHtml(const Json& doc, const Json& media) {
  std::string out;
  const Json& schema = Member(media, "schema");
  const std::string name = SchemaName(schema);
  if (!name.empty()) {
    out += "<p class=\"schema\">Schema " + TypeHtml(schema) + "</p>\n";
    out += PropertiesTable(Resolve(doc, schema));
  } else {
    out += "<p class=\"schema\">Type: " + TypeHtml(schema) + "</p>\n";
  }
  for (const auto& ex : Member(media, "examples").items()) {
    out += "<figure class=\"example\"><figcaption>Example: " + Escape(Text(ex.value(), "summary")) +
           "</figcaption><pre>" + PrettyJson(ex.value()["value"]) + "</pre></figure>\n";
  }
  return out;
}

std::string ResponseHtml(const Json& doc, const std::string& status, const Json& response) {
  std::string out = "<div class=\"resp\"><h4><span class=\"code c" + Escape(status.substr(0, 1)) +
                    "xx\">" + Escape(status) + "</span> " + Escape(Text(response, "description")) +
                    "</h4>\n";
  for (const auto& h : Member(response, "headers").items()) {
    out += "<p>Header <code>" + Escape(h.key()) +
           "</code>: " + Escape(Text(h.value(), "description")) + "</p>\n";
  }
  for (const auto& c : Member(response, "content").items()) {
    out += "<p class=\"ctype\">" + Escape(c.key()) + "</p>\n" + MediaHtml(doc, c.value());
  }
  return out + "</div>\n";
}

// A <select> for an optional field with a fixed set of values (the
// channel): the first, empty choice leaves the field out of the body.
std::string EnumPicker(const std::string& name, const Json& values) {
  std::string out = "<label>" + Escape(name) + " <select name=\"" + Escape(name) +
                    "\" data-field data-optional>\n<option value=\"\">(default)</option>\n";
  for (const Json& v : values) {
    const std::string value = v.is_string() ? v.get<std::string>() : v.dump();
    out += "<option value=\"" + Escape(value) + "\">" + Escape(value) + "</option>\n";
  }
  return out + "</select></label>\n";
}

// The try-it form of one operation; docs.js shows it and sends it.
std::string TryForm(const Json& doc, const std::string& id, const std::string& method,
                    const std::string& url, const Json& op) {
  std::string out = "<form class=\"try\" id=\"try-" + Escape(id) + "\" data-method=\"" +
                    Escape(method) + "\" data-url=\"" + url + "\" hidden>\n<h3>Try it</h3>\n";
  if (op.contains("requestBody")) {
    const Json& media = op["requestBody"]["content"]["application/json"];
    const Json& schema = Resolve(doc, media["schema"]);
    Json example = Json::object();
    for (const auto& ex : Member(media, "examples").items()) example = ex.value()["value"];
    for (const auto& p : schema["properties"].items()) {
      if (p.value().contains("enum")) {
        out += EnumPicker(p.key(), p.value()["enum"]);
        continue;
      }
      const std::string sample =
          example.contains(p.key()) ? example[p.key()].get<std::string>() : "";
      out += "<label>" + Escape(p.key()) + " <input name=\"" + Escape(p.key()) +
             "\" data-field autocomplete=\"off\" placeholder=\"" + Escape(sample) + "\"" +
             (p.key() == "user_id" ? " value=\"" + Escape(sample) + "\"" : std::string()) +
             "></label>\n";
    }
  }
  out += "<button type=\"submit\">Send " + Escape(method) +
         "</button>\n"
         "<div class=\"result\" hidden><p class=\"status\"></p><pre class=\"headers\"></pre>"
         "<pre class=\"body\"></pre></div>\n</form>\n";
  return out;
}

std::string OperationHtml(const Json& doc, const std::string& path, const std::string& method,
                          const Json& op, DocsStyle style, const std::string& base_path) {
  std::string upper;
  for (char c : method) upper += static_cast<char>(toupper(static_cast<unsigned char>(c)));
  const std::string id = Text(op, "operationId");
  std::string out = "<section class=\"op\" id=\"op-" + Escape(id) + "\">\n<h2><span class=\"m " +
                    Escape(method) + "\">" + Escape(upper) + "</span> <code>" +
                    Escape(base_path + path) + "</code></h2>\n<p class=\"summary\">" +
                    Escape(Text(op, "summary")) + "</p>\n<p>" + Escape(Text(op, "description")) +
                    "</p>\n";
  // The form sends JSON bodies only: an operation with parameters or
  // another body type (the Twilio callback) is described, not tried.
  const bool json_only =
      !op.contains("parameters") &&
      (!op.contains("requestBody") || op["requestBody"]["content"].contains("application/json"));
  if (style == DocsStyle::kInteractive && json_only) {
    out += TryForm(doc, id, upper, Url(base_path, path), op);
  }
  if (op.contains("requestBody")) {
    out += "<h3>Request body</h3>\n";
    for (const auto& c : op["requestBody"]["content"].items()) {
      out += "<p class=\"ctype\">" + Escape(c.key()) + "</p>\n" + MediaHtml(doc, c.value());
    }
  }
  out += "<h3>Responses</h3>\n";
  for (const auto& r : op["responses"].items()) out += ResponseHtml(doc, r.key(), r.value());
  return out + "</section>\n";
}

std::string Toc(const Json& doc) {
  std::string out = "<nav class=\"toc\"><h2>Endpoints</h2><ul>\n";
  for (const auto& p : doc["paths"].items()) {
    for (const auto& m : p.value().items()) {
      out += "<li><a href=\"#op-" + Escape(Text(m.value(), "operationId")) + "\"><span class=\"m " +
             Escape(m.key()) + "\">" + Escape(m.key()) + "</span> " + Escape(p.key()) +
             "</a></li>\n";
    }
  }
  out += "</ul><h2>Schemas</h2><ul>\n";
  for (const auto& s : doc["components"]["schemas"].items()) {
    out += "<li><a href=\"#schema-" + Escape(s.key()) + "\">" + Escape(s.key()) + "</a></li>\n";
  }
  return out + "</ul></nav>\n";
}

std::string Header(const Json& doc, DocsStyle style, const std::string& base_path) {
  const std::string title = Text(doc["info"], "title") + " " + Text(doc["info"], "version");
  return "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<link rel=\"icon\" href=\"data:,\">\n<title>" +
         Escape(title) + (style == DocsStyle::kInteractive ? " API docs" : " API reference") +
         "</title>\n<style>" + kDocsCss + "</style></head>\n<body data-base=\"" +
         Escape(base_path) + "\">\n<header><h1>" + Escape(title) + "</h1><nav><a href=\"" +
         Url(base_path, "/docs") + "\">Try it</a> <a href=\"" + Url(base_path, "/redoc") +
         "\">Reference</a> <a href=\"" + Url(base_path, "/openapi.json") +
         "\">openapi.json</a></nav></header>\n";
}

std::string Intro(const Json& doc, DocsStyle style, bool api_key_field) {
  std::string out = "<p class=\"intro\">" + Escape(Text(doc["info"], "description")) + "</p>\n";
  if (api_key_field) {
    out +=
        "<p class=\"auth\">Every endpoint but <code>/healthz</code> needs "
        "<code>Authorization: Bearer KEY</code>.</p>\n";
    if (style == DocsStyle::kInteractive) {
      out +=
          "<p class=\"key\"><label>API key <input id=\"api-key\" type=\"password\" "
          "autocomplete=\"off\"></label> sent by every form below</p>\n";
    }
  }
  if (style == DocsStyle::kInteractive) {
    out +=
        "<noscript><p class=\"note\">The forms that send requests need JavaScript; "
        "everything else on this page reads without it.</p></noscript>\n";
  }
  return out;
}

}  // namespace

std::string RenderDocsPage(const Json& openapi, DocsStyle style, const std::string& base_path,
                           bool api_key_field) {
  std::string out = Header(openapi, style, base_path);
  out += style == DocsStyle::kReference ? "<div class=\"layout\">\n" + Toc(openapi)
                                        : "<div class=\"layout single\">\n";
  out += "<main>\n" + Intro(openapi, style, api_key_field);
  for (const auto& p : openapi["paths"].items()) {
    for (const auto& m : p.value().items()) {
      out += OperationHtml(openapi, p.key(), m.key(), m.value(), style, base_path);
    }
  }
  out += "<section id=\"schemas\"><h2>Schemas</h2>\n";
  for (const auto& s : openapi["components"]["schemas"].items()) {
    out += "<div class=\"schema-def\" id=\"schema-" + Escape(s.key()) + "\"><h3>" +
           Escape(s.key()) + "</h3>\n" + PropertiesTable(s.value()) + "</div>\n";
  }
  out += "</section>\n</main>\n</div>\n";
  if (style == DocsStyle::kInteractive) out += std::string("<script>") + kDocsJs + "</script>\n";
  return out + "</body></html>\n";
}

const std::string& DocsContentSecurityPolicy() {
  static const std::string csp = "default-src 'self'; script-src " + CspHash(kDocsJs) +
                                 "; style-src " + CspHash(kDocsCss) +
                                 "; img-src 'self' data:; connect-src 'self'; "
                                 "form-action 'none'; base-uri 'none'; frame-ancestors 'none'";
  return csp;
}

namespace {

std::string Gzip(const std::string& in) {
  z_stream z{};
  // 15 + 16: a gzip wrapper; level 9 once is cheap.
  if (deflateInit2(&z, 9, Z_DEFLATED, 15 + 16, 9, Z_DEFAULT_STRATEGY) != Z_OK) return "";
  std::string out(deflateBound(&z, in.size()), '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  z.avail_in = static_cast<uInt>(in.size());
  z.next_out = reinterpret_cast<Bytef*>(&out[0]);
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return rc == Z_STREAM_END ? out : "";
}

std::string Brotli(const std::string& in) {
  size_t n = BrotliEncoderMaxCompressedSize(in.size());
  if (n == 0) return "";
  std::string out(n, '\0');
  // Quality 9: within a few percent of 11 on these pages, at a fraction of
  // the time (every test and every start renders them).
  if (!BrotliEncoderCompress(9, BROTLI_DEFAULT_WINDOW, BROTLI_MODE_TEXT, in.size(),
                             reinterpret_cast<const uint8_t*>(in.data()), &n,
                             reinterpret_cast<uint8_t*>(&out[0]))) {
    return "";
  }
  out.resize(n);
  return out;
}

// Whether `coding` is listed in `accept` with a q above 0.
bool Accepts(const std::string& accept, const std::string& coding) {
  size_t start = 0;
  while (start <= accept.size()) {
    size_t end = accept.find(',', start);
    if (end == std::string::npos) end = accept.size();
    std::string item = accept.substr(start, end - start);
    start = end + 1;
    const size_t semi = item.find(';');
    std::string name = item.substr(0, semi);
    name.erase(0, name.find_first_not_of(" \t"));
    name.erase(name.find_last_not_of(" \t") + 1);
    for (char& c : name) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
    if (name != coding && name != "*") continue;
    if (semi == std::string::npos) return true;
    const size_t q = item.find("q=", semi);
    if (q == std::string::npos) return true;
    return strtod(item.c_str() + q + 2, nullptr) > 0;
  }
  return false;
}

}  // namespace

std::shared_ptr<const CompressedBody> CompressBody(const std::string& body) {
  auto c = std::make_shared<CompressedBody>();
  c->gzip = Gzip(body);
  c->br = Brotli(body);
  return c;
}

std::string PickEncoding(const std::string& accept_encoding) {
  if (Accepts(accept_encoding, "br")) return "br";
  if (Accepts(accept_encoding, "gzip")) return "gzip";
  return "";
}

}  // namespace otpd
