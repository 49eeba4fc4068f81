// The key table: one row per key of Config, and the only list of them.
// Each row says the key's name (file key, --flag, OTPD_ variable), its
// type and where it lives in Config (so its default is Config's), the
// values it accepts, whether a reload applies it live or it waits for a
// restart, whether it is a secret, the old service's variable for it, and
// its help line. The command line, the environment, the file, check-config,
// reload and --help are all driven from it.
#ifndef OTPD_CONFIG_KEYS_H_
#define OTPD_CONFIG_KEYS_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "config/config.h"

namespace otpd {

using StringCheck = std::string (*)(const std::string& value);
using Redactor = std::string (*)(const std::string& value);

// One key of Config. Exactly one of str/i32/i64/flag is set.
struct KeySpec {
  const char* name = nullptr;        // "code_length": file key, flag, env
  const char* group = nullptr;       // heading in --help
  const char* help = nullptr;        // one line for --help
  const char* legacy_env = nullptr;  // the old service's variable, if any
  std::string Config::*str = nullptr;
  int Config::*i32 = nullptr;
  int64_t Config::*i64 = nullptr;
  bool Config::*flag = nullptr;  // true or false
  int64_t min = 0;               // integers: inclusive range
  int64_t max = 0;
  StringCheck check = nullptr;  // strings: "" if fine, else what is wrong
  bool sensitive = false;       // never echoed in messages or --help
  Redactor redact = nullptr;    // sensitive strings: DescribeConfig shows this, not "<redacted>"
  bool live = false;            // a reload (SIGHUP) applies it; else it waits for a restart
  bool list = false;            // comma-separated; the file may give a TOML array of strings

  bool IsInteger() const { return str == nullptr && flag == nullptr; }
  bool IsBool() const { return flag != nullptr; }
};

// Every key, in the order of config.h.
const std::vector<KeySpec>& Keys();

// The key named `name` exactly, or null.
const KeySpec* FindKey(std::string_view name);

// The known key closest to `name` (a typo: edit distance at most 2, or
// the same with '-' for '_'), or null.
const KeySpec* SuggestKey(std::string_view name);

// "code-length" for "code_length".
std::string Dashed(std::string name);

// "OTPD_CODE_LENGTH" for code_length.
std::string EnvName(const KeySpec& key);

// The key's value in `config` as text: "6", "true", "masked".
std::string ValueText(const KeySpec& key, const Config& config);

// "" if the key's current value in `config` is acceptable, else what is wrong.
std::string CheckValue(const KeySpec& key, const Config& config);

// Converts `text` into the key's field, then checks it. "" on success,
// else what is wrong ("must be an integer").
std::string AssignValue(const KeySpec& key, const std::string& text, Config* config);

// Copies the key's value from `from` to `to`.
void CopyValue(const KeySpec& key, const Config& from, Config* to);

// "code_length = 11", "expose_phone = 'partial'", or just "secret".
std::string KeyIs(const KeySpec& key, const std::string& value);

// "" if the users / templates table is acceptable, else one line naming
// the entry.
std::string CheckUsers(const std::map<std::string, std::string>& users);
std::string CheckTemplates(const std::map<std::string, std::string>& templates);

}  // namespace otpd

#endif  // OTPD_CONFIG_KEYS_H_
