#include "app/users_csv.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <sstream>

#include "core/phone.h"

namespace otpd {
namespace {

std::string Trim(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t\r");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t\r") - b + 1);
}

std::string Lower(std::string s) {
  for (char& c : s) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return s;
}

// Reads one field starting at *pos: a "quoted" field (with "" for a quote)
// or bare text up to `sep`. Leaves *pos after the field and its spaces.
bool ReadField(const std::string& line, char sep, size_t* pos, std::string* field) {
  size_t i = line.find_first_not_of(" \t", *pos);
  if (i == std::string::npos) i = line.size();
  field->clear();
  if (i < line.size() && line[i] == '"') {
    for (++i;; ++i) {
      if (i >= line.size()) return false;  // unterminated quote
      if (line[i] == '"' && i + 1 < line.size() && line[i + 1] == '"') {
        field->push_back('"');
        ++i;
      } else if (line[i] == '"') {
        ++i;
        break;
      } else {
        field->push_back(line[i]);
      }
    }
    i = line.find_first_not_of(" \t\r", i);
    *pos = i == std::string::npos ? line.size() : i;
    return true;
  }
  const size_t end = line.find(sep, i);
  *field = Trim(line.substr(i, end == std::string::npos ? std::string::npos : end - i));
  *pos = end == std::string::npos ? line.size() : end;
  return true;
}

// The columns of a CSV: their order, from the header row or the default.
enum class Column { kUserId, kPhone, kLocale };
using Columns = std::vector<Column>;
const Columns kDefaultColumns = {Column::kUserId, Column::kPhone, Column::kLocale};

bool IsLocale(const std::string& s) {
  if (s.size() > 35) return false;
  for (char c : s) {
    if (!isalnum(static_cast<unsigned char>(c)) && c != '-' && c != '_') return false;
  }
  return true;
}

// Every comma-separated field of `line`; false on an unterminated quote or
// text after a quoted field.
bool SplitCsv(const std::string& line, std::vector<std::string>* fields) {
  size_t pos = 0;
  for (;;) {
    fields->emplace_back();
    if (!ReadField(line, ',', &pos, &fields->back())) return false;
    if (pos >= line.size()) return true;
    if (line[pos] != ',') return false;
    ++pos;
  }
}

// A header row: every field a column name (any case), user_id among them,
// none twice. Sets *columns to their order.
bool ParseHeader(const std::string& line, Columns* columns) {
  std::vector<std::string> fields;
  if (!SplitCsv(line, &fields)) return false;
  Columns found;
  for (const std::string& f : fields) {
    const std::string name = Lower(f);
    Column c;
    if (name == "user_id") {
      c = Column::kUserId;
    } else if (name == "phone") {
      c = Column::kPhone;
    } else if (name == "locale") {
      c = Column::kLocale;
    } else {
      return false;
    }
    if (std::find(found.begin(), found.end(), c) != found.end()) return false;
    found.push_back(c);
  }
  if (std::find(found.begin(), found.end(), Column::kUserId) == found.end()) return false;
  *columns = found;
  return true;
}

// `"id": "phone",`, a line of the old service's Python dict. "" on success,
// else what is wrong; *dict false when the line is no dict line.
std::string ParseDictLine(const std::string& line, User* user, bool* dict) {
  size_t pos = 0;
  *dict = false;
  const size_t first = line.find_first_not_of(" \t");
  if (first == std::string::npos || line[first] != '"') return "";
  if (!ReadField(line, ',', &pos, &user->user_id)) return "unterminated quote";
  if (pos >= line.size() || line[pos] != ':') return "";
  *dict = true;
  ++pos;
  if (!ReadField(line, ',', &pos, &user->phone)) return "unterminated quote";
  const std::string rest = Trim(line.substr(pos));
  if (!(rest.empty() || rest == ",")) return "unexpected text after the phone";
  return "";
}

// One CSV line in `columns` order (the default order may omit the locale).
std::string ParseCsvLine(const std::string& line, const Columns& columns, bool has_header,
                         User* user) {
  std::vector<std::string> fields;
  if (!SplitCsv(line, &fields)) {
    return line.find('"') != std::string::npos && std::count(line.begin(), line.end(), '"') % 2
               ? "unterminated quote"
               : "unexpected text after a quoted field";
  }
  if (fields.size() < (has_header ? columns.size() : 2)) {
    return has_header ? "expected " + std::to_string(columns.size()) + " fields, as the header"
                      : "expected user_id,phone[,locale] or \"user_id\": \"phone\",";
  }
  if (fields.size() > columns.size()) return "unexpected text after the last column";
  for (size_t i = 0; i < fields.size(); ++i) {
    switch (columns[i]) {
      case Column::kUserId:
        user->user_id = fields[i];
        break;
      case Column::kPhone:
        user->phone = fields[i];
        break;
      case Column::kLocale:
        user->locale = fields[i];
        break;
    }
  }
  return "";
}

// The checks every entry gets, and its phone normalised (NormalizePhone).
// "" when it is fine.
std::string CheckUser(User* user_in) {
  User& user = *user_in;
  if (user.user_id.empty()) return "empty user ID";
  if (user.user_id.size() > kMaxUserIdBytes) {
    return "user ID longer than " + std::to_string(kMaxUserIdBytes) + " bytes";
  }
  if (!user.phone.empty()) {
    std::string e164;
    Status s = NormalizePhone(user.phone, &e164);
    if (!s.ok()) return s.message();
    user.phone = e164;
  }
  if (!IsLocale(user.locale))
    return "locale '" + user.locale + "' is not a language tag (es, pt-BR)";
  return "";
}

// Blank, comment and Python dict framing lines.
bool IsSkippable(const std::string& trimmed) {
  if (trimmed.empty() || trimmed[0] == '#' || trimmed == "{" || trimmed == "}") return true;
  return trimmed.size() > 1 && trimmed.back() == '{' && trimmed.find('=') != std::string::npos &&
         trimmed[0] != '"';  // USER_PHONE_DATABASE = {
}

// An empty field stays bare: "abc,,es" is a user without a phone.
bool NeedsQuotes(const std::string& field) {
  return !field.empty() && (field.find_first_of(",\"#:") != std::string::npos ||
                            field.front() == ' ' || field.back() == ' ');
}

std::string CsvField(const std::string& field) {
  if (!NeedsQuotes(field)) return field;
  std::string out = "\"";
  for (char c : field) out += c == '"' ? std::string("\"\"") : std::string(1, c);
  return out + "\"";
}

}  // namespace

Status ParseUsersCsv(const std::string& text, std::vector<User>* users,
                     std::vector<std::string>* errors) {
  // Spreadsheets start a UTF-8 CSV with a byte order mark.
  const bool bom = text.compare(0, 3, "\xEF\xBB\xBF") == 0;
  std::istringstream in(bom ? text.substr(3) : text);
  std::map<std::string, int> seen;  // normalized ID -> line
  Columns columns = kDefaultColumns;
  bool has_header = false;
  std::string line;
  bool first = true;
  for (int n = 1; std::getline(in, line); ++n) {
    if (IsSkippable(Trim(line))) continue;
    if (first && ParseHeader(line, &columns)) {
      first = false;
      has_header = true;
      continue;
    }
    first = false;
    User user;
    bool dict = false;
    std::string what =
        line.find('\0') != std::string::npos ? "NUL byte" : ParseDictLine(line, &user, &dict);
    if (what.empty() && !dict) {
      user = User();
      what = ParseCsvLine(line, columns, has_header, &user);
    }
    if (what.empty()) what = CheckUser(&user);
    if (what.empty()) {
      const auto [it, fresh] = seen.emplace(NormalizeUserId(user.user_id), n);
      if (!fresh)
        what = "user '" + user.user_id + "' already on line " + std::to_string(it->second);
    }
    if (!what.empty()) {
      errors->push_back("line " + std::to_string(n) + ": " + what);
      continue;
    }
    users->push_back(user);
  }
  if (!errors->empty()) {
    return Status::InvalidArgument(std::to_string(errors->size()) +
                                   " bad line(s); nothing imported");
  }
  return Status::OK();
}

std::string FormatUsersCsv(const std::vector<User>& users) {
  std::string out = "user_id,phone,locale\n";
  for (const User& u : users) {
    out += CsvField(u.user_id) + "," + CsvField(u.phone) + "," + CsvField(u.locale) + "\n";
  }
  return out;
}

}  // namespace otpd
