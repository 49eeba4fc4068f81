#include "app/users_csv.h"

#include <algorithm>
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

// `id,phone` or `"id": "phone",`. "" on success, else what is wrong.
std::string ParseLine(const std::string& line, User* user) {
  size_t pos = 0;
  if (!ReadField(line, ',', &pos, &user->user_id)) return "unterminated quote";
  // Only a quoted ID can be followed by ':' (a Python dict line).
  if (pos >= line.size() || (line[pos] != ',' && line[pos] != ':')) {
    return "expected user_id,phone or \"user_id\": \"phone\",";
  }
  const bool dict = line[pos] == ':';
  ++pos;
  if (!ReadField(line, ',', &pos, &user->phone)) return "unterminated quote";
  const std::string rest = Trim(line.substr(pos));
  if (!(rest.empty() || (dict && rest == ","))) return "unexpected text after the phone";
  if (user->user_id.empty()) return "empty user ID";
  if (user->user_id.size() > kMaxUserIdBytes) {
    return "user ID longer than " + std::to_string(kMaxUserIdBytes) + " bytes";
  }
  std::string e164;
  Status s = NormalizePhone(user->phone, &e164);
  if (!s.ok()) return s.message();
  user->phone = e164;
  return "";
}

// Header, blank, comment and Python dict framing lines.
bool IsSkippable(const std::string& trimmed, bool first_data_line) {
  if (trimmed.empty() || trimmed[0] == '#' || trimmed == "{" || trimmed == "}") return true;
  if (trimmed.size() > 1 && trimmed.back() == '{' && trimmed.find('=') != std::string::npos &&
      trimmed[0] != '"') {
    return true;  // USER_PHONE_DATABASE = {
  }
  if (!first_data_line) return false;
  std::string header = Lower(trimmed);
  for (char c : std::string(" \t\"")) header.erase(std::remove(header.begin(), header.end(), c), header.end());
  return header == "user_id,phone";
}

bool NeedsQuotes(const std::string& field) {
  return field.empty() || field.find_first_of(",\"#:") != std::string::npos ||
         field.front() == ' ' || field.back() == ' ';
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
  std::istringstream in(text);
  std::map<std::string, int> seen;  // normalized ID -> line
  std::string line;
  bool first = true;
  for (int n = 1; std::getline(in, line); ++n) {
    const std::string trimmed = Trim(line);
    const bool skip = IsSkippable(trimmed, first);
    if (skip) continue;
    first = false;
    User user;
    std::string what = line.find('\0') != std::string::npos ? "NUL byte" : ParseLine(line, &user);
    if (what.empty()) {
      const auto [it, fresh] = seen.emplace(NormalizeUserId(user.user_id), n);
      if (!fresh) what = "user '" + user.user_id + "' already on line " + std::to_string(it->second);
    }
    if (!what.empty()) {
      errors->push_back("line " + std::to_string(n) + ": " + what);
      continue;
    }
    users->push_back(user);
  }
  if (!errors->empty()) {
    return Status::InvalidArgument(std::to_string(errors->size()) + " bad line(s); nothing imported");
  }
  return Status::OK();
}

std::string FormatUsersCsv(const std::vector<User>& users) {
  std::string out = "user_id,phone\n";
  for (const User& u : users) out += CsvField(u.user_id) + "," + CsvField(u.phone) + "\n";
  return out;
}

}  // namespace otpd
