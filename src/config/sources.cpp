// The sources of values (sources.h). The file is parsed by toml++; what
// otpd adds on top is the strict layer: every key must be in the table
// (keys.h), every value must have the key's TOML type, only [users] and
// [templates] may be tables, and every error names the file, the key and
// the line and column.
#include "config/sources.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <system_error>

#include "config/toml_parser.h"
#include "core/phone.h"

extern char** environ;

namespace otpd {
namespace {

std::string Where(int line, int column) {
  return " (line " + std::to_string(line) + ", column " + std::to_string(column) + ")";
}

std::string Where(const toml::source_position& p) {
  return Where(static_cast<int>(p.line), static_cast<int>(p.column));
}

// Line `number` (1-based) of `text`, without its line ending.
std::string LineOf(const std::string& text, size_t number) {
  std::istringstream in(text);
  std::string line;
  for (size_t i = 0; i < number && std::getline(in, line); ++i) {
  }
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return line;
}

std::string Trimmed(std::string_view s) {
  const size_t begin = s.find_first_not_of(" \t");
  if (begin == std::string_view::npos) return "";
  const size_t end = s.find_last_not_of(" \t");
  return std::string(s.substr(begin, end - begin + 1));
}

// The table a line of the file is in: the last [header] above it.
std::string TableAt(const std::string& text, size_t line) {
  std::string table;
  for (size_t i = 1; i < line; ++i) {
    const std::string l = Trimmed(LineOf(text, i));
    if (l.size() > 2 && l[0] == '[' && l[1] != '[' && l.find(']') != std::string::npos) {
      table = Trimmed(l.substr(1, l.find(']') - 1));
    }
  }
  return table;
}

// "key = value" on one line: the bare key and the value's text.
bool SplitKeyValue(const std::string& line, std::string* key, std::string* value) {
  const size_t eq = line.find('=');
  if (eq == std::string::npos) return false;
  *key = Trimmed(line.substr(0, eq));
  *value = Trimmed(line.substr(eq + 1));
  if (key->empty()) return false;
  for (char c : *key) {
    const bool bare = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '-';
    if (!bare) return false;
  }
  return true;
}

// What the value of `key` must look like, for a value TOML cannot read.
std::string ValueHint(const KeySpec& key, const std::string& value) {
  if (key.IsBool()) return "must be true or false";
  if (key.IsInteger()) return "must be an integer";
  const bool quoted = !value.empty() && (value[0] == '"' || value[0] == '\'');
  if (!quoted) return "text needs quotes: \"...\"";
  if (value.find(value[0], 1) == std::string::npos) {
    return std::string("unterminated string (missing closing ") + value[0] + ")";
  }
  return "";
}

// toml++'s description without its "Error while parsing X: " lead.
std::string Detail(std::string_view description) {
  const size_t colon = description.find(": ");
  if (description.rfind("Error while parsing ", 0) == 0 && colon != std::string_view::npos) {
    return std::string(description.substr(colon + 2));
  }
  return std::string(description);
}

std::string UnknownKey(const std::string& name) {
  const KeySpec* near = SuggestKey(name);
  return "unknown key '" + name + "'" +
         (near != nullptr ? " (did you mean '" + std::string(near->name) + "'?)" : "");
}

// One line for a TOML syntax error, in otpd's words where it knows better.
std::string SyntaxError(const std::string& text, const toml::parse_error& e) {
  const toml::source_position at = e.source().begin;
  const std::string detail = Detail(e.description());
  const std::string redefine = "cannot redefine existing ";
  const size_t quote = detail.find('\'');
  if (detail.rfind(redefine, 0) == 0 && quote != std::string::npos) {
    const std::string name = detail.substr(quote + 1, detail.find('\'', quote + 1) - quote - 1);
    if (detail.rfind(redefine + "table", 0) == 0) return "[" + name + "] appears twice" + Where(at);
    const std::string table = TableAt(text, at.line);
    return "'" + name + "' appears twice" + (table.empty() ? "" : " in [" + table + "]") +
           Where(at);
  }
  std::string key, value;
  const std::string line = LineOf(text, at.line);
  if (SplitKeyValue(line, &key, &value) && at.column > line.find('=') + 1) {
    if (detail.find("expected a comment or whitespace") != std::string::npos) {
      return "unexpected text after the value of '" + key + "'" + Where(at);
    }
    const KeySpec* spec = TableAt(text, at.line).empty() ? FindKey(key) : nullptr;
    if (spec == nullptr && TableAt(text, at.line).empty()) return UnknownKey(key) + Where(at);
    std::string hint = spec != nullptr ? ValueHint(*spec, value) : "";
    const bool vague = detail.find("could not determine value type") != std::string::npos;
    if (hint.empty()) {
      hint = detail;
    } else if (!vague && hint.rfind("unterminated", 0) != 0) {
      hint += " (" + detail + ")";
    }
    return "cannot read the value of '" + key + "': " + hint + Where(at);
  }
  return detail + Where(at);
}

// The value as the file wrote it, for messages: `"8000"`, `8.5`, `[...]`.
std::string Shown(const std::string& text, const toml::node& node) {
  if (node.is_array()) return "[...]";
  if (node.is_table()) return "{...}";
  const toml::source_region& r = node.source();
  if (r.begin.line == r.end.line && r.end.column > r.begin.column) {
    return LineOf(text, r.begin.line).substr(r.begin.column - 1, r.end.column - r.begin.column);
  }
  return "...";
}

std::string Prefix(const std::string& path) { return "config file " + path + ": "; }

// A TOML string, refused when it holds NUL (which TOML allows as \u0000).
bool StringOf(const toml::node& node, std::string* out, std::string* error) {
  const toml::value<std::string>* s = node.as_string();
  if (s == nullptr) return false;
  *out = s->get();
  if (out->find('\0') != std::string::npos) *error = "must not contain NUL (\\u0000)";
  return true;
}

// The value of a known top-level key as the text ApplySettings converts.
// "" on success, else what is wrong.
std::string ValueOf(const KeySpec& key, const toml::node& node, std::string* out) {
  std::string error;
  if (key.IsBool()) {
    if (!node.is_boolean()) {
      return node.is_string() ? "must be true or false, without quotes" : "must be true or false";
    }
    *out = node.as_boolean()->get() ? "true" : "false";
    return "";
  }
  if (key.IsInteger()) {
    if (!node.is_integer()) {
      return node.is_string() ? "must be an integer, without quotes" : "must be an integer";
    }
    *out = std::to_string(node.as_integer()->get());
    return "";
  }
  if (key.list && node.is_array()) {
    out->clear();
    for (const toml::node& item : *node.as_array()) {
      std::string one;
      if (!StringOf(item, &one, &error)) return "must be a list of quoted strings";
      if (!error.empty()) return error;
      *out += (out->empty() ? "" : ",") + one;
    }
    return "";
  }
  if (!StringOf(node, out, &error)) {
    return key.list ? "must be a quoted string or a list of them" : "must be a quoted string";
  }
  return error;
}

// One top-level entry of the file, or a table's, in file order.
struct Entry {
  const toml::key* key;
  const toml::node* node;
};

std::vector<Entry> InFileOrder(const toml::table& table) {
  std::vector<Entry> entries;
  for (auto&& [key, node] : table) entries.push_back({&key, &node});
  std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
    const toml::source_position pa = a.key->source().begin, pb = b.key->source().begin;
    return pa.line != pb.line ? pa.line < pb.line : pa.column < pb.column;
  });
  return entries;
}

// True when the key of `e` was written as a [header] (not a dotted key).
bool IsHeader(const std::string& text, const Entry& e) {
  const std::string line = Trimmed(LineOf(text, e.key->source().begin.line));
  return !line.empty() && line[0] == '[';
}

// The [users] or [templates] table into *out. "" or the error.
std::string ReadTable(const std::string& text, const std::string& name, const toml::table& table,
                      std::map<std::string, std::string>* out) {
  std::map<std::string, std::string> normalized;
  for (const Entry& e : InFileOrder(table)) {
    const std::string id(e.key->str());
    const toml::source_position at = e.key->source().begin;
    if (e.node->is_table()) {
      if (IsHeader(text, e)) return "unknown section [" + name + "." + id + "]" + Where(at);
      return name + ": dotted key " + id + ".... is not supported; quote a key that has dots, " +
             "like \"john.doe\"" + Where(at);
    }
    std::string value, error;
    if (!StringOf(*e.node, &value, &error)) {
      return name == "users" ? "users: the phone of '" + id +
                                   "' must be a quoted string, like \"+15551234567\"" + Where(at)
                             : name + ": '" + id + "' must be a quoted string" + Where(at);
    }
    if (!error.empty()) return name + ": " + id + ": " + error + Where(at);
    if (name == "users") {
      const auto [it, inserted] = normalized.emplace(NormalizeUserId(id), id);
      if (!inserted) {
        return "users: '" + it->second + "' and '" + id +
               "' are the same user ID (user IDs ignore case)" + Where(at);
      }
    }
    (*out)[id] = value;
  }
  return "";
}

// One top-level entry. "" or the error.
std::string ReadEntry(const std::string& path, const std::string& text, const Entry& e,
                      Settings* settings, Config* config) {
  const std::string name(e.key->str());
  const toml::source_position at = e.key->source().begin;
  if (name == "users" || name == "templates" || name == "voice_templates") {
    if (e.node->is_array()) return "arrays of tables ([[...]]) are not supported" + Where(at);
    if (!e.node->is_table()) return "'" + name + "' must be a table: [" + name + "]" + Where(at);
    return ReadTable(text, name, *e.node->as_table(),
                     name == "users"       ? &config->users
                     : name == "templates" ? &config->templates
                                           : &config->voice_templates);
  }
  const KeySpec* key = FindKey(name);
  if (key == nullptr) {
    if (e.node->is_table() && IsHeader(text, e)) {
      return "unknown section [" + name +
             "]; only [users], [templates] and [voice_templates] "
             "are allowed" +
             Where(at);
    }
    return UnknownKey(name) + Where(at);
  }
  std::string value;
  const std::string what = ValueOf(*key, *e.node, &value);
  const toml::source_position value_at = e.node->source().begin;
  if (!what.empty()) {
    const std::string key_is = key->sensitive ? name : name + " = " + Shown(text, *e.node);
    return key_is + ": " + what + Where(value_at);
  }
  (*settings)[name] = Setting{value, Origin::kFile, path, static_cast<int>(value_at.line),
                              static_cast<int>(value_at.column)};
  return "";
}

// True when only spaces and tabs stand between the start of the line and
// text[i].
bool AtLineStart(const std::string& text, size_t i) {
  while (i > 0 && (text[i - 1] == ' ' || text[i - 1] == '\t')) i--;
  return i == 0 || text[i - 1] == '\n';
}

// text[i] is '[': true when "[" or "[[" and blanks are followed by a key
// (a bare-key character or a quote). toml++ 3.3 asserts otherwise ("[[[").
bool HeaderNameFollows(const std::string& text, size_t i) {
  i++;
  if (i < text.size() && text[i] == '[') i++;
  while (i < text.size() && (text[i] == ' ' || text[i] == '\t')) i++;
  if (i >= text.size()) return false;
  const unsigned char c = static_cast<unsigned char>(text[i]);
  return std::isalnum(c) || c == '_' || c == '-' || c == '"' || c == '\'';
}

// The first byte of `text` that toml++ 3.3 must not see, or npos; *what
// says why. TOML never allows a NUL byte, and toml++ asserts on one in a
// [header]. Outside strings and comments TOML allows only ASCII, and on a
// non-ASCII character there toml++ 3.3 reaches an "unreachable" branch of
// its whitespace table (undefined behaviour; found by fuzzing), as it can
// in the whitespace a line-ending backslash trims in a multi-line string.
size_t FirstUnsafeByte(const std::string& text, std::string* what) {
  const size_t nul = text.find('\0');
  if (nul != std::string::npos) {
    *what = "NUL byte (not text)";
    return nul;
  }
  *what = "non-ASCII character outside a string or comment";
  enum { kCode, kComment, kBasic, kLiteral, kMultiBasic, kMultiLiteral, kTrim } state = kCode;
  // A UTF-8 byte order mark may open the file (editors on Windows write one).
  const size_t start = text.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  for (size_t i = start; i < text.size(); i++) {
    const unsigned char c = static_cast<unsigned char>(text[i]);
    const bool three = i + 2 < text.size() && text[i + 1] == text[i] && text[i + 2] == text[i];
    switch (state) {
      case kCode:
        if (c >= 0x80) return i;
        if (c == '[' && AtLineStart(text, i) && !HeaderNameFollows(text, i)) {
          *what = "table header without a name";
          return i;
        }
        if (c == '#') state = kComment;
        if (c == '"') state = three ? kMultiBasic : kBasic;
        if (c == '\'') state = three ? kMultiLiteral : kLiteral;
        if (three && (c == '"' || c == '\'')) i += 2;
        break;
      case kComment:
        if (c == '\n') state = kCode;
        break;
      case kBasic:
        if (c == '\\') {
          i++;
        } else if (c == '"' || c == '\n') {
          state = kCode;
        }
        break;
      case kLiteral:
        if (c == '\'' || c == '\n') state = kCode;
        break;
      case kMultiBasic:
        if (c == '\\') {
          const unsigned char next = i + 1 < text.size() ? text[i + 1] : 0;
          if (next == ' ' || next == '\t' || next == '\r' || next == '\n') state = kTrim;
          i++;
        } else if (c == '"' && three) {
          state = kCode;
          i += 2;
        }
        break;
      case kMultiLiteral:
        if (c == '\'' && three) {
          state = kCode;
          i += 2;
        }
        break;
      case kTrim:
        if (c >= 0x80) {
          *what = "non-ASCII character after a line-ending backslash";
          return i;
        }
        if (c != ' ' && c != '\t' && c != '\r' && c != '\n') {
          state = kMultiBasic;
          i--;
        }
        break;
    }
  }
  return std::string::npos;
}

}  // namespace

Status ReadConfigText(const std::string& path, const std::string& text, Settings* settings,
                      Config* config) {
  // Bytes toml++ 3.3 mishandles instead of reporting: refuse them first.
  std::string what;
  const size_t bad = FirstUnsafeByte(text, &what);
  if (bad != std::string::npos) {
    const size_t line_start = text.rfind('\n', bad);
    const size_t line = 1 + static_cast<size_t>(std::count(text.begin(), text.begin() + bad, '\n'));
    const size_t column = line_start == std::string::npos ? bad + 1 : bad - line_start;
    return Status::InvalidArgument(Prefix(path) + what +
                                   Where(static_cast<int>(line), static_cast<int>(column)));
  }
  toml::parse_result parsed = toml::parse(std::string_view(text), std::string_view(path));
  if (!parsed) return Status::InvalidArgument(Prefix(path) + SyntaxError(text, parsed.error()));
  for (const Entry& e : InFileOrder(parsed.table())) {
    const std::string error = ReadEntry(path, text, e, settings, config);
    if (!error.empty()) return Status::InvalidArgument(Prefix(path) + error);
  }
  return Status::OK();
}

Status ReadConfigFile(const std::string& path, Settings* settings, Config* config) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument(Prefix(path) + "is a directory");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::string reason = errno != 0 ? std::strerror(errno) : "cannot open";
    return Status::InvalidArgument(Prefix(path) + "cannot read: " + reason);
  }
  std::stringstream text;
  text << in.rdbuf();
  if (in.bad()) return Status::InvalidArgument(Prefix(path) + "read error");
  return ReadConfigText(path, text.str(), settings, config);
}

EnvMap ReadEnvironment(const std::vector<std::string>* env) {
  std::vector<std::string> process_env;
  if (env == nullptr) {
    for (char** p = environ; p != nullptr && *p != nullptr; ++p) process_env.emplace_back(*p);
    env = &process_env;
  }
  EnvMap out;
  for (const std::string& entry : *env) {
    const size_t eq = entry.find('=');
    if (eq == std::string::npos) continue;
    out.emplace(entry.substr(0, eq), entry.substr(eq + 1));  // first wins, as getenv
  }
  return out;
}

// OTPD_<KEY> for every key, after the old service's name where there is
// one, so OTPD_TWILIO_AUTH_TOKEN beats TWILIO_AUTH_TOKEN. Other OTPD_*
// variables are ignored on purpose: other tools share the prefix.
void AddEnvSettings(const EnvMap& env, Settings* settings) {
  for (const KeySpec& key : Keys()) {
    for (const std::string& name :
         {std::string(key.legacy_env ? key.legacy_env : ""), EnvName(key)}) {
      const auto it = name.empty() ? env.end() : env.find(name);
      if (it != env.end()) (*settings)[key.name] = Setting{it->second, Origin::kEnv, name, 0};
    }
  }
}

Status ApplySettings(const Settings& settings, Config* config) {
  for (const KeySpec& key : Keys()) {
    const auto it = settings.find(key.name);
    if (it == settings.end()) continue;
    const std::string what = AssignValue(key, it->second.value, config);
    if (what.empty()) continue;
    const Setting& s = it->second;
    if (s.origin == Origin::kFile) {
      return Status::InvalidArgument(Prefix(s.where) + KeyIs(key, s.value) + ": " + what +
                                     Where(s.line, s.column));
    }
    const std::string given = key.sensitive ? s.where : s.where + "=" + s.value;
    return Status::InvalidArgument(given + ": " + key.name + " " + what);
  }
  return Status::OK();
}

}  // namespace otpd
