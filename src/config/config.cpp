// Reading Config from flags, the environment and a TOML file (config.h).
//
// CLI11 reads the command line only. Its config-file reader is not used:
// measured on Debian's CLI11 2.1.2 it lets the file win over environment
// variables, cuts a value at the first '#' even inside quotes (a secret
// "ab#cd..." arrives as "\"ab"), splits a quoted key with a dot ("John.Doe")
// into nested parents, keeps backslash escapes literally and forgets whether
// a value was a string or a number. So this file reads the small TOML subset
// a config needs, and merges the sources in one place: every source writes
// into one map key -> winning value, in the order file, environment, flags,
// so a later source replaces an earlier one. Only the winning value of a key
// is converted and checked, so a flag can repair a bad value in the file;
// syntax errors, unknown keys and wrong TOML types in the file always fail.
#include "config/config.h"

#include <arpa/inet.h>

#include <CLI/CLI.hpp>
#include <cctype>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>
#include <string_view>
#include <system_error>
#include <utility>

#include "http/api_keys.h"
#include "http/client_ip.h"
#include "core/phone.h"
#include "core/redis_url.h"

extern char** environ;

#ifndef OTPD_VERSION
#define OTPD_VERSION "0.0.0"
#endif

namespace otpd {
namespace {

// ---------------------------------------------------------------------------
// The keys.

using StringCheck = std::string (*)(const std::string& value);
using Redactor = std::string (*)(const std::string& value);

// One key of Config: its name everywhere, its help line, where it lives in
// the struct and which values it accepts. Exactly one of str/i32/i64/flag
// is set.
struct KeySpec {
  const char* name = nullptr;        // "code_length": file key, flag, env
  const char* group = nullptr;       // heading in --help
  const char* help = nullptr;        // one line for --help
  const char* legacy_env = nullptr;  // the old service's variable, if any
  std::string Config::*str = nullptr;
  int Config::*i32 = nullptr;
  int64_t Config::*i64 = nullptr;
  bool Config::*flag = nullptr;  // true or false
  int64_t min = 0;  // integers: inclusive range
  int64_t max = 0;
  StringCheck check = nullptr;  // strings: "" if fine, else what is wrong
  bool sensitive = false;       // never echoed in messages or --help
  Redactor redact = nullptr;    // sensitive strings: DescribeConfig shows this, not "<redacted>"

  bool IsInteger() const { return str == nullptr && flag == nullptr; }
  bool IsBool() const { return flag != nullptr; }
};

std::string CheckListen(const std::string& value) {
  unsigned char addr[sizeof(struct in6_addr)];
  const bool ip =
      value.find('\0') == std::string::npos && (inet_pton(AF_INET, value.c_str(), addr) == 1 ||
                                                inet_pton(AF_INET6, value.c_str(), addr) == 1);
  return ip ? ""
            : "must be an IPv4 or IPv6 address literal such as 127.0.0.1, 0.0.0.0 or ::1 "
              "(host names are not resolved)";
}

std::string CheckBasePath(const std::string& value) {
  if (value.empty()) return "";
  bool ok = value[0] == '/' && value.back() != '/' && value.find("//") == std::string::npos;
  for (char c : value) {
    ok = ok && (isalnum(static_cast<unsigned char>(c)) || strchr("/-._~", c) != nullptr);
  }
  return ok ? "" : "must be empty or a path such as /otp (letters, digits, - . _ ~, no trailing /)";
}

std::string CheckNotEmpty(const std::string& value) {
  return value.empty() ? "must not be empty" : "";
}

std::string CheckSecret(const std::string& value) {
  return value.empty() || value.size() >= 16
             ? ""
             : "must be at least 16 characters (or unset, to use secret_file)";
}

std::string CheckExposePhone(const std::string& value) {
  return value == "masked" || value == "full" ? "" : "must be masked or full";
}

std::string CheckSmsBackend(const std::string& value) {
  return value == "auto" || value == "console" || value == "twilio"
             ? ""
             : "must be auto, console or twilio";
}

// Header values and URL parts: a CR or LF would split an HTTP header.
std::string CheckOneLine(const std::string& value) {
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x20 || u == 0x7f) return "must not contain control characters";
  }
  return "";
}

std::string CheckApiBase(const std::string& value) {
  const std::string scheme = "https://";
  if (value.compare(0, scheme.size(), scheme) != 0 || value.size() == scheme.size()) {
    return "must be an https:// URL (verification cannot be turned off)";
  }
  const std::string rest = value.substr(scheme.size());
  const size_t slash = rest.find('/');
  if (slash != std::string::npos && slash != rest.size() - 1) return "must not have a path";
  return rest.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                "0123456789.-:/") == std::string::npos
             ? ""
             : "must be https://HOST[:PORT]";
}

std::string CheckStatusCallback(const std::string& value) {
  if (value.empty()) return "";
  const bool url = value.compare(0, 8, "https://") == 0 || value.compare(0, 7, "http://") == 0;
  return url ? CheckOneLine(value) : "must be an http:// or https:// URL";
}

std::string CheckPublicUrl(const std::string& value) {
  if (value.empty()) return "";
  if (!value.empty() && value.back() == '/') return "must not end in '/'";
  if (value.find_first_of("?#") != std::string::npos) return "must not have a query";
  return CheckStatusCallback(value);
}

// A bare host name: the WebOTP line is "@host #code".
std::string CheckWebOtpDomain(const std::string& value) {
  return value.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789.-") == std::string::npos
             ? ""
             : "must be a bare host name such as example.com";
}

std::string CheckLogLevel(const std::string& value) {
  for (const char* level : {"debug", "info", "warn", "error"}) {
    if (value == level) return "";
  }
  return "must be one of debug, info, warn, error";
}

// "1,44,358": country calling codes, 1 to 3 digits, not starting with 0.
std::string CheckCountryCodes(const std::string& value) {
  if (value.empty()) return "";
  std::vector<std::string> codes;
  Status s = ParseCountryCodes(value, &codes);
  return s.ok() ? "" : s.message();
}

std::string CheckTrustedProxies(const std::string& value) {
  TrustedProxies proxies;
  Status s = TrustedProxies::Parse(value, &proxies);
  return s.ok() ? "" : s.message();
}

std::string CheckApiKeys(const std::string& value) {
  Status s = ApiKeys::CheckList(value);
  return s.ok() ? "" : s.message();
}

std::string CheckMessageTemplate(const std::string& value) {
  return value.find("{code}") == std::string::npos ? "must contain {code}" : "";
}

// Only the enumeration: whether this build has Redis is ValidateConfig's
// question, so that the refusal reads the same from every source.
std::string CheckStore(const std::string& value) {
  return value == "sqlite" || value == "redis" ? "" : "must be sqlite or redis";
}

// ParseRedisUrl's messages never quote the URL, so they may follow the key.
std::string CheckRedisUrl(const std::string& value) {
  if (value.empty()) return "";
  RedisEndpoint endpoint;
  Status s = ParseRedisUrl(value, &endpoint);
  return s.ok() ? "" : s.message();
}

std::string CheckRedisHost(const std::string& value) {
  return IsRedisHost(value) ? ""
                            : "must be a host name or an IPv4 or IPv6 address, without brackets "
                              "or port (see redis_port, or redis_url)";
}

// Keys are written and scanned by prefix: a space or a control character
// would make them awkward to type into redis-cli.
std::string CheckRedisPrefix(const std::string& value) {
  bool ok = !value.empty() && value.size() <= 64;
  for (char c : value) {
    const auto u = static_cast<unsigned char>(c);
    ok = ok && u > 0x20 && u < 0x7f;
  }
  return ok ? "" : "must be 1 to 64 printable ASCII characters without spaces";
}

KeySpec StringKey(const char* name, const char* group, const char* help, std::string Config::*field,
                  StringCheck check = nullptr) {
  KeySpec key;
  key.name = name;
  key.group = group;
  key.help = help;
  key.str = field;
  key.check = check;
  return key;
}

KeySpec IntKey(const char* name, const char* group, const char* help, int Config::*field,
               int64_t min, int64_t max) {
  KeySpec key = StringKey(name, group, help, nullptr);
  key.i32 = field;
  key.min = min;
  key.max = max;
  return key;
}

KeySpec Int64Key(const char* name, const char* group, const char* help, int64_t Config::*field,
                 int64_t min, int64_t max) {
  KeySpec key = IntKey(name, group, help, nullptr, min, max);
  key.i64 = field;
  return key;
}

KeySpec BoolKey(const char* name, const char* group, const char* help, bool Config::*field) {
  KeySpec key = StringKey(name, group, help, nullptr);
  key.flag = field;
  return key;
}

KeySpec Sensitive(KeySpec key) {
  key.sensitive = true;
  return key;
}

KeySpec Legacy(KeySpec key, const char* env_name) {
  key.legacy_env = env_name;
  return key;
}

// A sensitive key that DescribeConfig shows through `redact`.
KeySpec Redacted(KeySpec key, Redactor redact) {
  key = Sensitive(key);
  key.redact = redact;
  return key;
}

// Every key, in the order of config.h. Ranges here are the ones documented
// in config.h; otpd.conf.example repeats them for people.
const std::vector<KeySpec>& Keys() {
  static const char kNet[] = "Network", kStore[] = "Storage", kCodes[] = "Codes", kSms[] = "SMS",
                    kLog[] = "Logging", kAbuse[] = "Abuse limits", kAccess[] = "Access",
                    kRedis[] = "Redis";
  static const auto* const keys = new std::vector<KeySpec>{
      StringKey("listen", kNet, "Address to bind: an IPv4 or IPv6 literal", &Config::listen,
                CheckListen),
      IntKey("port", kNet, "TCP port; 0 picks a free port (logged at start)", &Config::port, 0, 65535),
      IntKey("threads", kNet, "HTTP worker threads", &Config::threads, 1, 4096),
      Int64Key("max_body_bytes", kNet, "Largest request body in bytes (413 above)",
               &Config::max_body_bytes, 64, 1048576),
      IntKey("read_timeout", kNet, "Seconds to wait for a request's bytes", &Config::read_timeout,
             1, 300),
      IntKey("write_timeout", kNet, "Seconds to wait while writing an answer",
             &Config::write_timeout, 1, 300),
      IntKey("keepalive_timeout", kNet, "Seconds an idle keep-alive connection is kept",
             &Config::keepalive_timeout, 0, 300),
      IntKey("keepalive_max", kNet, "Requests per connection before it is closed",
             &Config::keepalive_max, 1, 100000),
      StringKey("base_path", kNet,
                "Path prefix a reverse proxy serves otpd under, e.g. /otp (docs links)",
                &Config::base_path, CheckBasePath),
      StringKey("tls_cert", kNet, "PEM certificate chain; with tls_key, serve HTTPS only",
                &Config::tls_cert),
      StringKey("tls_key", kNet, "PEM private key of tls_cert", &Config::tls_key),
      StringKey("database", kStore, "SQLite database file", &Config::database, CheckNotEmpty),
      Sensitive(StringKey("secret", kStore,
                          "HMAC key for code hashes, 16+ characters; unset: use secret_file. "
                          "Flags show in ps: prefer the file",
                          &Config::secret, CheckSecret)),
      StringKey("secret_file", kStore,
                "File with the secret; unset: otpd.secret beside the database",
                &Config::secret_file),
      IntKey("busy_timeout_ms", kStore, "Milliseconds to wait for a SQLite lock",
             &Config::busy_timeout_ms, 1, 60000),
      IntKey("purge_interval", kStore, "Seconds between sweeps of expired codes",
             &Config::purge_interval, 1, 86400),
      IntKey("audit_retention_days", kStore, "Days the audit trail keeps send and verify events",
             &Config::audit_retention_days, 1, 3650),
      StringKey("store", kRedis,
                "Where codes are kept: sqlite or redis (redis needs a make REDIS=1 build)",
                &Config::store, CheckStore),
      Redacted(StringKey("redis_url", kRedis,
                         "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or "
                         "unix://[[USER]:PASSWORD@]/PATH[?db=N]; wins over redis_host, "
                         "redis_port, redis_db (and redis_password, if it has one)",
                         &Config::redis_url, CheckRedisUrl),
               RedactRedisUrl),
      Legacy(StringKey("redis_host", kRedis, "Redis host name or IP address", &Config::redis_host,
                       CheckRedisHost),
             "REDIS_HOST"),
      Legacy(IntKey("redis_port", kRedis, "Redis TCP port", &Config::redis_port, 1, 65535),
             "REDIS_PORT"),
      Legacy(IntKey("redis_db", kRedis, "Redis database index (SELECT)", &Config::redis_db, 0,
                    1000000),
             "REDIS_DB"),
      Legacy(Sensitive(StringKey("redis_password", kRedis,
                                 "Redis password (AUTH); unset: none. Flags show in ps: prefer "
                                 "the environment",
                                 &Config::redis_password)),
             "REDIS_PASSWORD"),
      StringKey("redis_prefix", kRedis, "Start of every Redis key otpd writes",
                &Config::redis_prefix, CheckRedisPrefix),
      BoolKey("redis_fallback", kRedis,
              "Redis unreachable at start: use the SQLite store (single host only)",
              &Config::redis_fallback),
      IntKey("redis_timeout_ms", kRedis, "Milliseconds per Redis connect and command",
             &Config::redis_timeout_ms, 1, 60000),
      IntKey("redis_connections", kRedis, "Pooled Redis connections per process",
             &Config::redis_connections, 1, 1024),
      IntKey("code_length", kCodes, "Digits per code", &Config::code_length, 4, 10),
      IntKey("expiry", kCodes, "Seconds a code stays valid", &Config::expiry, 10, 86400),
      IntKey("max_attempts", kCodes, "Wrong guesses allowed per code", &Config::max_attempts, 1,
             100),
      IntKey("expired_grace", kCodes, "Seconds an expired code still answers 410",
             &Config::expired_grace, 0, 604800),
      StringKey("expose_phone", kCodes, "Phone in /send-code answers: masked or full",
                &Config::expose_phone, CheckExposePhone),
      StringKey("allowed_country_codes", kAbuse,
                "Country calling codes codes may be sent to, comma-separated (\"1,44\"); "
                "unset: every country. Set this first",
                &Config::allowed_country_codes, CheckCountryCodes),
      IntKey("send_cooldown", kAbuse, "Seconds between two sends to one user (0: off)",
             &Config::send_cooldown, 0, 86400),
      IntKey("send_user_cap", kAbuse, "Sends per user per hour (0: off)", &Config::send_user_cap,
             0, 1000000),
      IntKey("send_phone_cap", kAbuse, "Sends per phone number per hour (0: off)",
             &Config::send_phone_cap, 0, 1000000),
      IntKey("send_ip_cap", kAbuse, "Sends per client IP per hour (0: off)",
             &Config::send_ip_cap, 0, 1000000),
      IntKey("sms_budget_per_hour", kAbuse, "Sends over all users per hour (0: off)",
             &Config::sms_budget_per_hour, 0, 100000000),
      IntKey("verify_failure_cap", kAbuse,
             "Failed verifications per user across codes per window (0: off)",
             &Config::verify_failure_cap, 0, 100),
      IntKey("verify_failure_window", kAbuse, "Seconds of the verify_failure_cap window",
             &Config::verify_failure_window, 60, 86400),
      IntKey("ip_requests_per_minute", kAbuse,
             "Requests per client IP per minute, any endpoint (0: off)",
             &Config::ip_requests_per_minute, 0, 1000000),
      IntKey("ip_burst", kAbuse, "Requests a client IP may make at once", &Config::ip_burst, 1,
             1000000),
      IntKey("ip_table_size", kAbuse, "Client IPs the request limit remembers at most",
             &Config::ip_table_size, 16, 10000000),
      StringKey("trusted_proxies", kAbuse,
                "Proxies whose X-Forwarded-For is believed: IPs and CIDR blocks, comma-separated",
                &Config::trusted_proxies, CheckTrustedProxies),
      Sensitive(StringKey("api_keys", kAccess,
                          "API keys, comma-separated; when set (or api_keys_file), every "
                          "endpoint but /healthz needs Authorization: Bearer KEY",
                          &Config::api_keys, CheckApiKeys)),
      StringKey("api_keys_file", kAccess, "File with one API key per line, mode 0600",
                &Config::api_keys_file),
      BoolKey("conceal_unknown_users", kAbuse,
              "Answer unknown users like known ones (200, a stable fake masked phone), "
              "sending nothing",
              &Config::conceal_unknown_users),
      StringKey("sms_backend", kSms, "How codes are sent: auto, console or twilio",
                &Config::sms_backend,
                CheckSmsBackend),
      StringKey("sms_log_file", kSms, "console backend: also append messages to this file",
                &Config::sms_log_file),
      StringKey("app_name", kSms, "{app} in the message template", &Config::app_name),
      StringKey("message_template", kSms, "SMS text; {app}, {code} and {minutes} are replaced",
                &Config::message_template, CheckMessageTemplate),
      StringKey("webotp_domain", kSms, "Append the WebOTP line '@DOMAIN #code' to messages",
                &Config::webotp_domain, CheckWebOtpDomain),
      Legacy(StringKey("twilio_account_sid", kSms, "Twilio account SID",
                       &Config::twilio_account_sid, CheckOneLine),
             "TWILIO_ACCOUNT_SID"),
      Legacy(Sensitive(StringKey("twilio_auth_token", kSms,
                                 "Twilio auth token. Flags show in ps: prefer the token file",
                                 &Config::twilio_auth_token, CheckOneLine)),
             "TWILIO_AUTH_TOKEN"),
      StringKey("twilio_auth_token_file", kSms,
                "File holding the auth token, read at start (systemd LoadCredential)",
                &Config::twilio_auth_token_file),
      StringKey("twilio_api_key_sid", kSms, "Twilio API key SID (instead of the auth token)",
                &Config::twilio_api_key_sid, CheckOneLine),
      Sensitive(StringKey("twilio_api_key_secret", kSms, "Twilio API key secret",
                          &Config::twilio_api_key_secret, CheckOneLine)),
      Legacy(StringKey("twilio_phone_number", kSms, "Twilio sender: number or alphanumeric ID",
                       &Config::twilio_phone_number, CheckOneLine),
             "TWILIO_PHONE_NUMBER"),
      StringKey("twilio_messaging_service_sid", kSms,
                "Twilio Messaging Service SID (used instead of the sender number)",
                &Config::twilio_messaging_service_sid, CheckOneLine),
      StringKey("twilio_status_callback", kSms, "URL Twilio posts delivery status to",
                &Config::twilio_status_callback, CheckStatusCallback),
      StringKey("public_url", kSms,
                "URL otpd is reached at from outside; set it to get Twilio delivery receipts "
                "at PUBLIC_URL/twilio/status",
                &Config::public_url, CheckPublicUrl),
      IntKey("delivery_unknown_after", kSms,
             "Seconds after which a message without a final receipt counts as unknown",
             &Config::delivery_unknown_after, 10, 604800),
      StringKey("twilio_api_base", kSms, "Twilio API base URL, https:// only (regional hosts)",
                &Config::twilio_api_base, CheckApiBase),
      StringKey("twilio_ca_file", kSms, "PEM CA bundle for Twilio; unset: the system store",
                &Config::twilio_ca_file),
      IntKey("twilio_connect_timeout_ms", kSms, "Milliseconds per connect to Twilio",
             &Config::twilio_connect_timeout_ms, 1, 60000),
      IntKey("twilio_timeout_ms", kSms, "Milliseconds a whole send may take, retries included",
             &Config::twilio_timeout_ms, 100, 120000),
      StringKey("log_level", kLog, "debug, info, warn or error", &Config::log_level, CheckLogLevel),
      StringKey("log_file", kLog, "Also append log lines to this file; SIGHUP reopens it",
                &Config::log_file),
  };
  return *keys;
}

const KeySpec* FindKey(std::string_view name) {
  for (const KeySpec& key : Keys()) {
    if (name == key.name) return &key;
  }
  return nullptr;
}

std::string Dashed(std::string name) {
  for (char& c : name) {
    if (c == '_') c = '-';
  }
  return name;
}

std::string EnvName(const KeySpec& key) {
  std::string name = std::string("OTPD_") + key.name;
  for (char& c : name) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
  }
  return name;
}

// ---------------------------------------------------------------------------
// Values: conversion and checks shared by every source and ValidateConfig.

std::string ValueText(const KeySpec& key, const Config& config) {
  if (key.str != nullptr) return config.*key.str;
  if (key.flag != nullptr) return config.*key.flag ? "true" : "false";
  if (key.i32 != nullptr) return std::to_string(config.*key.i32);
  return std::to_string(config.*key.i64);
}

enum class IntParse { kOk, kNotInteger, kOutOfRange };

// Decimal digits with an optional sign; nothing else, not even spaces.
IntParse ParseInteger(const std::string& text, int64_t* out) {
  const char* begin = text.data();
  const char* end = begin + text.size();
  if (begin != end && *begin == '+') ++begin;
  if (begin == end || (*begin == '-' && begin != text.data())) return IntParse::kNotInteger;
  const auto [ptr, ec] = std::from_chars(begin, end, *out);
  if (ec == std::errc::result_out_of_range) return IntParse::kOutOfRange;
  if (ec != std::errc() || ptr != end) return IntParse::kNotInteger;
  return IntParse::kOk;
}

std::string RangeText(const KeySpec& key) {
  return "must be between " + std::to_string(key.min) + " and " + std::to_string(key.max);
}

// "" if the key's current value in `config` is acceptable, else what is wrong.
std::string CheckValue(const KeySpec& key, const Config& config) {
  if (key.str != nullptr) return key.check != nullptr ? key.check(config.*key.str) : "";
  if (key.flag != nullptr) return "";
  const int64_t value = key.i32 != nullptr ? config.*key.i32 : config.*key.i64;
  return value < key.min || value > key.max ? RangeText(key) : "";
}

// Converts `text` into the key's field, then checks it. "" on success.
std::string AssignValue(const KeySpec& key, const std::string& text, Config* config) {
  if (key.str != nullptr) {
    config->*key.str = text;
    return CheckValue(key, *config);
  }
  if (key.flag != nullptr) {
    if (text != "true" && text != "false") return "must be true or false";
    config->*key.flag = text == "true";
    return "";
  }
  int64_t value = 0;
  const IntParse parsed = ParseInteger(text, &value);
  if (parsed == IntParse::kNotInteger) return "must be an integer";
  if (parsed == IntParse::kOutOfRange || value < key.min || value > key.max) {
    return RangeText(key);
  }
  if (key.i32 != nullptr) {
    config->*key.i32 = static_cast<int>(value);
  } else {
    config->*key.i64 = value;
  }
  return "";
}

// "code_length = 11", "expose_phone = 'partial'", or just "secret".
std::string KeyIs(const KeySpec& key, const std::string& value) {
  if (key.sensitive) return key.name;
  return std::string(key.name) + " = " + (key.str == nullptr ? value : "'" + value + "'");
}

// "" if the users table is acceptable, else one line naming the user.
std::string CheckUsers(const std::map<std::string, std::string>& users) {
  std::map<std::string, std::string> seen;  // normalized ID -> ID as written
  for (const auto& [id, phone] : users) {
    if (id.empty() || id.size() > kMaxUserIdBytes) {
      return "users: user ID '" + id + "' must be 1 to " + std::to_string(kMaxUserIdBytes) +
             " bytes";
    }
    const auto [it, inserted] = seen.emplace(NormalizeUserId(id), id);
    if (!inserted) {
      return "users: '" + it->second + "' and '" + id +
             "' are the same user ID (user IDs ignore case)";
    }
    if (!IsE164(phone)) {
      return "users: " + id + " = '" + phone + "': phone must be E.164, like +15551234567";
    }
  }
  return "";
}

// "" if the templates table is acceptable, else one line naming the locale.
std::string CheckTemplates(const std::map<std::string, std::string>& templates) {
  for (const auto& [locale, text] : templates) {
    static const char kTagChars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_";
    const bool name_ok = !locale.empty() && locale.size() <= 35 &&
                         locale.find_first_not_of(kTagChars) == std::string::npos;
    if (!name_ok) {
      return "templates: locale '" + locale + "' must be a language tag such as es or pt-BR";
    }
    if (text.find("{code}") == std::string::npos) {
      return "templates: " + locale + ": must contain {code}";
    }
  }
  return "";
}

bool HasTwilioCredential(const Config& c) {
  return !c.twilio_account_sid.empty() || !c.twilio_auth_token.empty() ||
         !c.twilio_auth_token_file.empty() || !c.twilio_api_key_sid.empty() ||
         !c.twilio_api_key_secret.empty();
}

// "" if the Twilio settings are complete, else what is missing (key names
// only: never a value, some are secrets).
std::string CheckTwilio(const Config& c) {
  const std::string prefix = "sms_backend is twilio but ";
  if (c.twilio_account_sid.empty()) return prefix + "twilio_account_sid is not set";
  const bool key_sid = !c.twilio_api_key_sid.empty();
  const bool key_secret = !c.twilio_api_key_secret.empty();
  if (key_sid != key_secret) {
    return prefix + "only one of twilio_api_key_sid and twilio_api_key_secret is set";
  }
  const bool token = !c.twilio_auth_token.empty();
  const bool token_file = !c.twilio_auth_token_file.empty();
  if (token && token_file) {
    return "twilio_auth_token and twilio_auth_token_file are both set; keep one";
  }
  if (!key_sid && !token && !token_file) {
    return prefix + "no credential is set: twilio_auth_token, twilio_auth_token_file, or "
                    "twilio_api_key_sid with twilio_api_key_secret";
  }
  if (c.twilio_phone_number.empty() && c.twilio_messaging_service_sid.empty()) {
    return prefix + "no sender is set: twilio_phone_number or twilio_messaging_service_sid";
  }
  if (!c.public_url.empty() && !token && !token_file) {
    return "public_url is set but Twilio signs receipts with the auth token, and only an API "
           "key is set: set twilio_auth_token or twilio_auth_token_file too";
  }
  if (!c.public_url.empty() && !c.twilio_status_callback.empty()) {
    return "public_url and twilio_status_callback are both set; keep one (public_url gets "
           "receipts into otpd)";
  }
  return "";
}

std::string CheckStoreBuilt(const Config& c) {
  if (c.store != "redis" || BuiltWithRedis()) return "";
  return "store = 'redis': this otpd was built without Redis; rebuild it with make REDIS=1";
}

// ---------------------------------------------------------------------------
// Where each key's winning value came from.

enum class Origin { kFile, kEnv, kFlag };

struct Setting {
  std::string value;
  Origin origin = Origin::kFile;
  std::string where;  // file path, variable name, or "--flag"
  int line = 0;       // kFile only
};

using Settings = std::map<std::string, Setting>;  // key name -> winning value

std::string LineSuffix(int line) { return " (line " + std::to_string(line) + ")"; }

std::string SettingError(const KeySpec& key, const Setting& setting, const std::string& what) {
  if (setting.origin == Origin::kFile) {
    return "config file " + setting.where + ": " + KeyIs(key, setting.value) + ": " + what +
           LineSuffix(setting.line);
  }
  const std::string given = key.sensitive ? setting.where : setting.where + "=" + setting.value;
  return given + ": " + key.name + " " + what;
}

// ---------------------------------------------------------------------------
// The TOML subset: comments, [table] headers, key = value with bare or
// quoted keys, and basic strings, literal strings, integers or booleans as
// values. Multi-line strings, arrays, inline tables, dotted keys, floats and
// dates are refused by name rather than misread.

enum class TomlType { kString, kInteger, kBoolean };

struct TomlEntry {
  std::string table;  // "" (top level) or "users"
  std::string key;
  std::string value;  // strings unescaped; integers without '_'
  TomlType type = TomlType::kString;
  int line = 0;
};

enum class LineKind { kBlank, kTable, kKeyValue, kError };

bool IsBareKeyChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-';
}

bool IsDigit(char c) { return c >= '0' && c <= '9'; }

// TOML forbids control characters other than tab inside strings.
bool IsControl(char c) {
  const auto u = static_cast<unsigned char>(c);
  return (u < 0x20 && c != '\t') || u == 0x7f;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// TOML decimal integer: optional sign, no leading zero, '_' only between
// digits. Writes it without the underscores.
bool NormalizeTomlInteger(std::string_view token, std::string* out) {
  out->clear();
  size_t i = 0;
  if (i < token.size() && (token[i] == '+' || token[i] == '-')) out->push_back(token[i++]);
  if (i == token.size() || (token[i] == '0' && i + 1 < token.size())) return false;
  for (; i < token.size(); ++i) {
    if (IsDigit(token[i])) {
      out->push_back(token[i]);
    } else if (token[i] != '_' || !IsDigit(token[i - 1]) || i + 1 == token.size() ||
               !IsDigit(token[i + 1])) {
      return false;
    }
  }
  return true;
}

// Parses one line of the file.
class TomlLine {
 public:
  explicit TomlLine(std::string_view text) : s_(text) {}

  // kTable: table() is set; kKeyValue: key(), value(), type(); kError: error().
  LineKind Parse() {
    if (AtLineEnd()) return LineKind::kBlank;
    if (Peek() == '[') return ParseTable() ? LineKind::kTable : LineKind::kError;
    return ParseKeyValue() ? LineKind::kKeyValue : LineKind::kError;
  }

  const std::string& table() const { return table_; }
  const std::string& key() const { return key_; }
  const std::string& value() const { return value_; }
  TomlType type() const { return type_; }
  const std::string& error() const { return error_; }

 private:
  bool Fail(std::string message) {
    error_ = std::move(message);
    return false;
  }
  char Peek() const { return pos_ < s_.size() ? s_[pos_] : '\0'; }
  void SkipSpace() {
    while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\t')) ++pos_;
  }
  bool AtLineEnd() {
    SkipSpace();
    return pos_ == s_.size() || s_[pos_] == '#';
  }

  bool ParseTable();
  bool ParseKeyValue();
  bool ParseKey(std::string* key);
  bool ParseValue();
  bool ParseBareValue();
  bool ParseBasicString(std::string* out);
  bool ParseLiteralString(std::string* out);
  bool ParseEscape(std::string* out);
  bool ParseUnicode(size_t digits, std::string* out);

  std::string_view s_;
  size_t pos_ = 0;
  std::string table_, key_, value_, error_;
  TomlType type_ = TomlType::kString;
};

bool TomlLine::ParseTable() {
  ++pos_;  // '['
  if (Peek() == '[') return Fail("arrays of tables ([[...]]) are not supported");
  SkipSpace();
  std::string part;
  if (!ParseKey(&table_)) return false;
  for (SkipSpace(); Peek() == '.'; SkipSpace()) {
    ++pos_;
    SkipSpace();
    if (!ParseKey(&part)) return false;
    table_ += "." + part;
  }
  if (Peek() != ']') return Fail("expected ']' after the table name");
  ++pos_;
  if (!AtLineEnd()) return Fail("unexpected text after ']'");
  return true;
}

bool TomlLine::ParseKeyValue() {
  if (!ParseKey(&key_)) return false;
  SkipSpace();
  if (Peek() == '.') {
    return Fail("dotted key " + key_ + ".... is not supported; quote a key that has dots, " +
                "like \"john.doe\"");
  }
  if (Peek() != '=') return Fail("expected '=' after '" + key_ + "'");
  ++pos_;
  SkipSpace();
  if (!ParseValue()) return false;
  if (!AtLineEnd()) return Fail("unexpected text after the value of '" + key_ + "'");
  return true;
}

bool TomlLine::ParseKey(std::string* key) {
  key->clear();
  if (Peek() == '"') return ParseBasicString(key);
  if (Peek() == '\'') return ParseLiteralString(key);
  while (pos_ < s_.size() && IsBareKeyChar(s_[pos_])) key->push_back(s_[pos_++]);
  return key->empty() ? Fail("expected a key") : true;
}

bool TomlLine::ParseValue() {
  value_.clear();
  type_ = TomlType::kString;
  const std::string_view start = s_.substr(pos_, 3);
  if (start == "\"\"\"" || start == "'''") {
    return Fail("multi-line strings are not supported (value of '" + key_ + "')");
  }
  if (Peek() == '"') return ParseBasicString(&value_);
  if (Peek() == '\'') return ParseLiteralString(&value_);
  return ParseBareValue();
}

bool TomlLine::ParseBareValue() {
  const size_t begin = pos_;
  while (pos_ < s_.size() && s_[pos_] != ' ' && s_[pos_] != '\t' && s_[pos_] != '#') ++pos_;
  const std::string_view token = s_.substr(begin, pos_ - begin);
  if (token == "true" || token == "false") {
    value_ = std::string(token);
    type_ = TomlType::kBoolean;
    return true;
  }
  if (NormalizeTomlInteger(token, &value_)) {
    type_ = TomlType::kInteger;
    return true;
  }
  if (!token.empty() && token[0] == '[') return Fail("arrays are not supported ('" + key_ + "')");
  if (!token.empty() && token[0] == '{') {
    return Fail("inline tables are not supported ('" + key_ + "')");
  }
  return Fail("cannot read the value of '" + key_ + "' (text needs quotes: \"...\")");
}

bool TomlLine::ParseBasicString(std::string* out) {
  ++pos_;  // opening quote
  while (pos_ < s_.size()) {
    const char c = s_[pos_++];
    if (c == '"') return true;
    if (c == '\\') {
      if (!ParseEscape(out)) return false;
    } else if (IsControl(c)) {
      return Fail("control character in a string");
    } else {
      out->push_back(c);
    }
  }
  return Fail("unterminated string (missing closing \")");
}

bool TomlLine::ParseLiteralString(std::string* out) {
  ++pos_;  // opening quote
  while (pos_ < s_.size()) {
    const char c = s_[pos_++];
    if (c == '\'') return true;
    if (IsControl(c)) return Fail("control character in a string");
    out->push_back(c);
  }
  return Fail("unterminated string (missing closing ')");
}

bool TomlLine::ParseEscape(std::string* out) {
  const char c = Peek();
  ++pos_;
  switch (c) {
    case 'b':
      out->push_back('\b');
      return true;
    case 't':
      out->push_back('\t');
      return true;
    case 'n':
      out->push_back('\n');
      return true;
    case 'f':
      out->push_back('\f');
      return true;
    case 'r':
      out->push_back('\r');
      return true;
    case '"':
      out->push_back('"');
      return true;
    case '\\':
      out->push_back('\\');
      return true;
    case 'u':
      return ParseUnicode(4, out);
    case 'U':
      return ParseUnicode(8, out);
    default:
      return Fail(std::string("invalid escape \\") + (c == '\0' ? ' ' : c));
  }
}

bool TomlLine::ParseUnicode(size_t digits, std::string* out) {
  uint32_t cp = 0;
  for (size_t i = 0; i < digits; ++i) {
    const int v = HexValue(Peek());
    if (v < 0)
      return Fail("invalid \\u escape: expected " + std::to_string(digits) + " hex digits");
    cp = cp * 16 + static_cast<uint32_t>(v);
    ++pos_;
  }
  if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    return Fail("invalid \\u escape: not a Unicode scalar value other than NUL");
  }
  AppendUtf8(cp, out);
  return true;
}

// Reads the lines of an open file into entries. Only the [users] and
// [templates] tables are allowed, once each; a key may appear once per
// table (as TOML requires).
Status ReadTomlLines(const std::string& path, std::istream& in, std::vector<TomlEntry>* entries) {
  const std::string prefix = "config file " + path + ": ";
  std::string line, table;
  std::set<std::string> tables_seen, keys_seen;
  for (int number = 1; std::getline(in, line); ++number) {
    if (number == 1 && line.compare(0, 3, "\xEF\xBB\xBF") == 0) line.erase(0, 3);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    TomlLine parsed(line);
    const LineKind kind = parsed.Parse();
    std::string error;
    if (kind == LineKind::kError) {
      error = parsed.error();
    } else if (kind == LineKind::kTable) {
      table = parsed.table();
      if (table != "users" && table != "templates") {
        error = "unknown section [" + table + "]; only [users] and [templates] are allowed";
      }
      if (!tables_seen.insert(table).second) error = "[" + table + "] appears twice";
    } else if (kind == LineKind::kKeyValue) {
      if (!keys_seen.insert(table + '\0' + parsed.key()).second) {
        error =
            "'" + parsed.key() + "' appears twice" + (table.empty() ? "" : " in [" + table + "]");
      }
      entries->push_back({table, parsed.key(), parsed.value(), parsed.type(), number});
    }
    if (!error.empty()) return Status::InvalidArgument(prefix + error + LineSuffix(number));
  }
  if (in.bad()) return Status::InvalidArgument(prefix + "read error");
  return Status::OK();
}

Status ReadToml(const std::string& path, std::vector<TomlEntry>* entries) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    return Status::InvalidArgument("config file " + path + ": is a directory");
  }
  errno = 0;
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    const std::string reason = errno != 0 ? std::strerror(errno) : "cannot open";
    return Status::InvalidArgument("config file " + path + ": cannot read: " + reason);
  }
  return ReadTomlLines(path, in, entries);
}

std::string UnknownKeyError(const std::string& prefix, const TomlEntry& entry) {
  std::string underscored = entry.key;
  for (char& c : underscored) {
    if (c == '-') c = '_';
  }
  const std::string hint =
      FindKey(underscored) != nullptr ? " (did you mean '" + underscored + "'?)" : "";
  return prefix + "unknown key '" + entry.key + "'" + hint + LineSuffix(entry.line);
}

Status AddFileKey(const std::string& path, const TomlEntry& entry, Settings* settings) {
  const std::string prefix = "config file " + path + ": ";
  const KeySpec* key = FindKey(entry.key);
  if (key == nullptr) return Status::InvalidArgument(UnknownKeyError(prefix, entry));
  const TomlType want = key->IsBool()      ? TomlType::kBoolean
                        : key->IsInteger() ? TomlType::kInteger
                                           : TomlType::kString;
  if (entry.type != want) {
    const std::string shown =
        entry.type == TomlType::kString ? "\"" + entry.value + "\"" : entry.value;
    const std::string what = want == TomlType::kInteger   ? "must be an integer, without quotes"
                             : want == TomlType::kBoolean ? "must be true or false, without quotes"
                                                          : "must be a quoted string";
    const std::string key_is = key->sensitive ? entry.key : entry.key + " = " + shown;
    return Status::InvalidArgument(prefix + key_is + ": " + what + LineSuffix(entry.line));
  }
  (*settings)[entry.key] = Setting{entry.value, Origin::kFile, path, entry.line};
  return Status::OK();
}

Status AddFileUser(const std::string& path, const TomlEntry& entry,
                   std::map<std::string, std::string>* normalized,
                   std::map<std::string, std::string>* users) {
  const std::string prefix = "config file " + path + ": users: ";
  if (entry.type != TomlType::kString) {
    return Status::InvalidArgument(prefix + "the phone of '" + entry.key +
                                   "' must be a quoted string, like \"+15551234567\"" +
                                   LineSuffix(entry.line));
  }
  const auto [it, inserted] = normalized->emplace(NormalizeUserId(entry.key), entry.key);
  if (!inserted) {
    return Status::InvalidArgument(prefix + "'" + it->second + "' and '" + entry.key +
                                   "' are the same user ID (user IDs ignore case)" +
                                   LineSuffix(entry.line));
  }
  (*users)[entry.key] = entry.value;
  return Status::OK();
}

Status AddFileTemplate(const std::string& path, const TomlEntry& entry,
                       std::map<std::string, std::string>* templates) {
  if (entry.type != TomlType::kString) {
    return Status::InvalidArgument("config file " + path + ": templates: '" + entry.key +
                                   "' must be a quoted string" + LineSuffix(entry.line));
  }
  (*templates)[entry.key] = entry.value;
  return Status::OK();
}

// Reads `path` into settings (top-level keys), users ([users] table) and
// templates ([templates] table).
Status ReadConfigFile(const std::string& path, Settings* settings, Config* config) {
  std::vector<TomlEntry> entries;
  Status status = ReadToml(path, &entries);
  std::map<std::string, std::string> normalized;
  for (size_t i = 0; status.ok() && i < entries.size(); ++i) {
    const TomlEntry& entry = entries[i];
    if (entry.table.empty()) {
      status = AddFileKey(path, entry, settings);
    } else if (entry.table == "templates") {
      status = AddFileTemplate(path, entry, &config->templates);
    } else {
      status = AddFileUser(path, entry, &normalized, &config->users);
    }
  }
  return status;
}

// ---------------------------------------------------------------------------
// The environment.

using EnvMap = std::map<std::string, std::string>;

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

// ---------------------------------------------------------------------------
// The command line.

// Shows one long name per option ("--code-length"): the "--code_length"
// alias exists for people who copy keys from the config file, and listing
// it on every line would double the width of --help.
class HelpFormatter : public CLI::Formatter {
 public:
  std::string make_option_name(const CLI::Option* opt, bool is_positional) const override {
    if (is_positional) return CLI::Formatter::make_option_name(opt, is_positional);
    std::string out;
    for (const std::string& name : opt->get_snames()) out += (out.empty() ? "-" : ",-") + name;
    if (!opt->get_lnames().empty()) out += (out.empty() ? "--" : ",--") + opt->get_lnames()[0];
    return out;
  }
};

struct CommandLine {
  CLI::App app{"otpd: one-time passcodes by SMS, over HTTP.", "otpd"};
  std::vector<std::string> values = std::vector<std::string>(Keys().size());
  std::vector<CLI::Option*> options;  // parallel to Keys()
  std::string config_path;
  CLI::Option* config_option = nullptr;
  CLI::App* serve = nullptr;
  CLI::App* users = nullptr;
  CLI::App* users_add = nullptr;
  CLI::App* users_remove = nullptr;
  CLI::App* users_list = nullptr;
  CLI::App* users_import = nullptr;
  CLI::App* users_export = nullptr;
  CLI::App* check_config = nullptr;
  CLI::App* backup = nullptr;
  std::string add_id, add_phone, remove_id, import_file, backup_file;
  CLI::App* sms = nullptr;
  CLI::App* sms_test = nullptr;
  std::string sms_phone;
  CLI::App* audit = nullptr;
  std::string audit_user, audit_since;
};

std::string OptionHelp(const KeySpec& key) {
  std::string help = key.help;
  if (key.IsInteger()) help += ", " + std::to_string(key.min) + ".." + std::to_string(key.max);
  help += " [env " + EnvName(key);
  if (key.legacy_env != nullptr) help += std::string(" or ") + key.legacy_env;
  return help + "]";
}

void AddKeyOptions(CommandLine* cl) {
  const Config defaults;
  for (size_t i = 0; i < Keys().size(); ++i) {
    const KeySpec& key = Keys()[i];
    const std::string dashed = Dashed(key.name);
    std::string names = "--" + dashed;
    if (dashed != key.name) names += std::string(",--") + key.name;
    CLI::Option* opt = cl->app.add_option(names, cl->values[i], OptionHelp(key));
    opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    opt->type_name(key.IsBool() ? "BOOL" : key.IsInteger() ? "INT" : "TEXT")->group(key.group);
    const std::string default_text = ValueText(key, defaults);
    if (!key.sensitive && !default_text.empty() && default_text.size() < 30) {
      opt->default_str(default_text);
    }
    cl->options.push_back(opt);
  }
}

void AddCommands(CommandLine* cl) {
  const char kGlobal[] =
      "Every otpd option (otpd --help) may also come before or after the command.";
  CLI::App& app = cl->app;
  app.require_subcommand(0, 1);
  cl->serve = app.add_subcommand("serve", "Answer HTTP requests (the default command)");
  cl->users = app.add_subcommand("users", "Edit the users in the database");
  cl->users->require_subcommand(0, 1)->footer(kGlobal);
  cl->users_add = cl->users->add_subcommand("add", "Add a user with a phone number");
  cl->users_add->add_option("ID", cl->add_id, "User ID (case-insensitive)")->required();
  cl->users_add->add_option("PHONE", cl->add_phone, "Phone number, E.164: +15551234567")
      ->required();
  cl->users_add->footer(kGlobal);
  cl->users_remove = cl->users->add_subcommand("remove", "Remove a user");
  cl->users_remove->add_option("ID", cl->remove_id, "User ID (case-insensitive)")->required();
  cl->users_remove->footer(kGlobal);
  cl->users_list = cl->users->add_subcommand("list", "List the users and their phones");
  cl->users_list->footer(kGlobal);
  cl->users_import = cl->users->add_subcommand(
      "import", "Add or update users from a CSV file (user_id,phone), all or nothing");
  cl->users_import->add_option("FILE", cl->import_file, "CSV file, or - for standard input")
      ->required();
  cl->users_import->footer(kGlobal);
  cl->users_export = cl->users->add_subcommand("export", "Print every user as CSV (user_id,phone)");
  cl->users_export->footer(kGlobal);
  cl->check_config = app.add_subcommand(
      "check-config", "Validate the configuration and print the effective settings, secrets redacted");
  cl->check_config->footer(kGlobal);
  cl->backup = app.add_subcommand("backup", "Copy the live database to FILE, consistently");
  cl->backup->add_option("FILE", cl->backup_file, "Where to write the copy (must not exist)")
      ->required();
  cl->backup->footer(kGlobal);
  cl->sms = app.add_subcommand("sms", "Check the SMS backend");
  cl->sms->require_subcommand(0, 1)->footer(kGlobal);
  cl->sms_test = cl->sms->add_subcommand(
      "test", "Send one test message with the configured backend and print the answer");
  cl->sms_test->add_option("PHONE", cl->sms_phone, "Phone number, E.164: +15551234567")
      ->required();
  cl->sms_test->footer(kGlobal);
  cl->audit = app.add_subcommand("audit", "Print the audit trail of sends and verifications");
  cl->audit->add_option("--user", cl->audit_user, "Only this user ID (case-insensitive)");
  cl->audit->add_option("--since", cl->audit_since,
                        "From this UTC time (2026-11-24T01:02:03Z), date (2026-11-24) or "
                        "age (30m, 12h, 7d); default 24h");
  cl->audit->footer(kGlobal);
}

// Set up before any subcommand exists: subcommands copy the formatter and
// the fallthrough setting from their parent when they are created.
void BuildCommandLine(CommandLine* cl) {
  CLI::App& app = cl->app;
  app.formatter(std::make_shared<HelpFormatter>());
  app.fallthrough();
  app.set_version_flag("-V,--version", "otpd " OTPD_VERSION, "Print the version and exit");
  app.footer(
      "Precedence: flag > environment > config file > default. In the config file a key is\n"
      "the option name with underscores: code_length = 6. --code_length works as a flag too.");
  cl->config_option = app.add_option("--config", cl->config_path,
                                     "TOML config file, see otpd.conf.example [env OTPD_CONFIG]");
  cl->config_option->type_name("FILE")->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  AddKeyOptions(cl);
  AddCommands(cl);
}

// argv[1..] in the reversed order CLI11 wants. "--key=" becomes "--key" ""
// because CLI11 2.1.2 takes an empty "=value" as no value and then eats the
// next argument: "--secret= serve" would set the secret to "serve".
std::vector<std::string> ArgsForCli(int argc, const char* const* argv) {
  std::vector<std::string> args;
  bool options_done = false;
  for (int i = 1; i < argc && argv != nullptr && argv[i] != nullptr; ++i) {
    const std::string arg = argv[i];
    options_done = options_done || arg == "--";
    if (!options_done && arg.size() > 3 && arg.compare(0, 2, "--") == 0 &&
        arg.find('=') == arg.size() - 1) {
      args.push_back(arg.substr(0, arg.size() - 1));
      args.emplace_back();
    } else {
      args.push_back(arg);
    }
  }
  return std::vector<std::string>(args.rbegin(), args.rend());
}

// Runs CLI11. --help and --version end here with kExit.
Status RunCommandLine(CommandLine* cl, int argc, const char* const* argv, Invocation* inv) {
  try {
    cl->app.parse(ArgsForCli(argc, argv));
  } catch (const CLI::CallForHelp&) {
    inv->command = Command::kExit;
    // serve is the default command and every option is its option, so
    // "otpd serve --help" shows what "otpd --help" shows.
    inv->output = cl->serve->parsed() ? cl->app.get_formatter()->make_help(
                                            &cl->app, "otpd", CLI::AppFormatMode::Normal)
                                      : cl->app.help();
  } catch (const CLI::CallForAllHelp&) {
    inv->command = Command::kExit;
    inv->output = cl->app.help("", CLI::AppFormatMode::All);
  } catch (const CLI::CallForVersion&) {
    inv->command = Command::kExit;
    inv->output = "otpd " OTPD_VERSION "\n";
  } catch (const CLI::ParseError& e) {
    return Status::InvalidArgument(std::string(e.what()) + " (see otpd --help)");
  }
  return Status::OK();
}

Status ReadCommand(const CommandLine& cl, Invocation* inv) {
  if (cl.audit->parsed()) {
    inv->command = Command::kAudit;
    inv->args = {cl.audit_user, cl.audit_since.empty() ? "24h" : cl.audit_since};
  } else if (cl.check_config->parsed()) {
    inv->command = Command::kCheckConfig;
  } else if (cl.backup->parsed()) {
    inv->command = Command::kBackup;
    inv->args = {cl.backup_file};
  } else if (cl.sms->parsed()) {
    if (!cl.sms_test->parsed()) {
      return Status::InvalidArgument("otpd sms: missing command; use 'otpd sms test PHONE'");
    }
    inv->command = Command::kSmsTest;
    inv->args = {cl.sms_phone};
  } else if (!cl.users->parsed()) {
    inv->command = Command::kServe;
  } else if (cl.users_import->parsed()) {
    inv->command = Command::kUsersImport;
    inv->args = {cl.import_file};
  } else if (cl.users_export->parsed()) {
    inv->command = Command::kUsersExport;
  } else if (cl.users_add->parsed()) {
    inv->command = Command::kUsersAdd;
    inv->args = {cl.add_id, cl.add_phone};
  } else if (cl.users_remove->parsed()) {
    inv->command = Command::kUsersRemove;
    inv->args = {cl.remove_id};
  } else if (cl.users_list->parsed()) {
    inv->command = Command::kUsersList;
  } else {
    return Status::InvalidArgument(
        "otpd users: missing command; use 'otpd users add ID PHONE', "
        "'otpd users remove ID', 'otpd users list', 'otpd users import FILE' or "
        "'otpd users export'");
  }
  return Status::OK();
}

void AddFlagSettings(const CommandLine& cl, Settings* settings) {
  for (size_t i = 0; i < Keys().size(); ++i) {
    if (cl.options[i]->count() == 0) continue;
    const char* name = Keys()[i].name;
    (*settings)[name] = Setting{cl.values[i], Origin::kFlag, "--" + Dashed(name), 0};
  }
}

// --config (even empty, which means "no file") beats OTPD_CONFIG.
std::string ConfigPath(const CommandLine& cl, const EnvMap& env) {
  if (cl.config_option->count() > 0) return cl.config_path;
  const auto it = env.find("OTPD_CONFIG");
  return it == env.end() ? "" : it->second;
}

Status ApplySettings(const Settings& settings, Config* config) {
  for (const KeySpec& key : Keys()) {
    const auto it = settings.find(key.name);
    if (it == settings.end()) continue;
    const std::string what = AssignValue(key, it->second.value, config);
    if (!what.empty()) return Status::InvalidArgument(SettingError(key, it->second, what));
  }
  return Status::OK();
}

Status ParseInvocationOrThrow(int argc, const char* const* argv,
                              const std::vector<std::string>* env, Invocation* inv) {
  *inv = Invocation();
  CommandLine cl;
  BuildCommandLine(&cl);
  Status status = RunCommandLine(&cl, argc, argv, inv);
  if (!status.ok() || inv->command == Command::kExit) return status;
  status = ReadCommand(cl, inv);
  if (!status.ok()) return status;

  const EnvMap env_map = ReadEnvironment(env);
  const std::string path = ConfigPath(cl, env_map);
  Settings settings;
  if (!path.empty()) {
    status = ReadConfigFile(path, &settings, &inv->config);
    if (!status.ok()) return status;
    inv->config.config_file = path;
  }
  AddEnvSettings(env_map, &settings);
  AddFlagSettings(cl, &settings);
  status = ApplySettings(settings, &inv->config);
  if (!status.ok()) return status;
  const std::string users_error = CheckUsers(inv->config.users);
  if (!users_error.empty())
    return Status::InvalidArgument("config file " + path + ": " + users_error);
  return ValidateConfig(inv->config);
}

}  // namespace

Status ParseInvocation(int argc, const char* const* argv, const std::vector<std::string>* env,
                       Invocation* inv) {
  try {
    return ParseInvocationOrThrow(argc, argv, env, inv);
  } catch (const std::exception& e) {
    return Status::Internal(std::string("reading the configuration: ") + e.what());
  }
}

bool IsSecretKey(const std::string& name) {
  auto ends_with = [&name](const std::string& tail) {
    return name.size() >= tail.size() && name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
  };
  const KeySpec* key = FindKey(name);
  return (key != nullptr && key->sensitive) || name == "secret" || ends_with("_token") ||
         ends_with("_secret") || ends_with("api_keys");
}

namespace {

std::string TomlString(const std::string& value) {
  std::string out = "\"";
  for (unsigned char c : value) {
    if (c == '"' || c == '\\') {
      out.push_back('\\');
      out.push_back(static_cast<char>(c));
    } else if (c < 0x20 || c == 0x7f) {
      char buf[8];
      snprintf(buf, sizeof buf, "\\u%04x", c);
      out += buf;
    } else {
      out.push_back(static_cast<char>(c));
    }
  }
  return out + "\"";
}

}  // namespace

std::string DescribeConfig(const Config& config) {
  std::string out = "# otpd " OTPD_VERSION " effective settings";
  out += config.config_file.empty() ? " (no config file)\n" : " (" + config.config_file + ")\n";
  for (const KeySpec& key : Keys()) {
    std::string value = ValueText(key, config);
    if (!key.IsInteger() && (key.sensitive || IsSecretKey(key.name)) && !value.empty()) {
      value = key.redact != nullptr ? key.redact(value) : "<redacted>";
    }
    const bool bare = key.IsInteger() || key.IsBool();  // TOML numbers and booleans
    out += std::string(key.name) + " = " + (bare ? value : TomlString(value)) + "\n";
  }
  out += "# sms_backend in effect: " + EffectiveSmsBackend(config) + "\n";
  out += "\n[users]\n";
  for (const auto& [id, phone] : config.users) out += TomlString(id) + " = " + TomlString(phone) + "\n";
  out += "\n[templates]\n";
  for (const auto& [locale, text] : config.templates) {
    out += TomlString(locale) + " = " + TomlString(text) + "\n";
  }
  return out;
}

std::vector<std::string> ChangedKeys(const Config& a, const Config& b) {
  std::vector<std::string> out;
  for (const KeySpec& key : Keys()) {
    if (ValueText(key, a) != ValueText(key, b)) out.push_back(key.name);
  }
  return out;
}

Status ValidateConfig(const Config& config) {
  for (const KeySpec& key : Keys()) {
    const std::string what = CheckValue(key, config);
    if (!what.empty()) {
      return Status::InvalidArgument(KeyIs(key, ValueText(key, config)) + ": " + what);
    }
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return Status::InvalidArgument(
        "tls_cert and tls_key: set both to serve HTTPS, or neither for HTTP");
  }
  for (const std::string& error :
       {CheckStoreBuilt(config), CheckUsers(config.users), CheckTemplates(config.templates),
        EffectiveSmsBackend(config) == "twilio" ? CheckTwilio(config) : std::string()}) {
    if (!error.empty()) return Status::InvalidArgument(error);
  }
  return Status::OK();
}

std::string EffectiveSmsBackend(const Config& config) {
  if (config.sms_backend != "auto") return config.sms_backend;
  return HasTwilioCredential(config) ? "twilio" : "console";
}

Status RedisEndpointOf(const Config& config, RedisEndpoint* endpoint) {
  if (!config.redis_url.empty()) {
    const Status status = ParseRedisUrl(config.redis_url, endpoint);
    if (!status.ok()) return Status::InvalidArgument("redis_url: " + status.message());
    // A URL without a password takes redis_password (REDIS_PASSWORD), so
    // the old service's variable keeps working beside a URL.
    if (endpoint->password.empty()) endpoint->password = config.redis_password;
    return Status::OK();
  }
  for (const char* name : {"redis_host", "redis_port", "redis_db"}) {
    const KeySpec& key = *FindKey(name);
    const std::string what = CheckValue(key, config);
    if (!what.empty()) {
      return Status::InvalidArgument(KeyIs(key, ValueText(key, config)) + ": " + what);
    }
  }
  *endpoint = RedisEndpoint();
  endpoint->host = config.redis_host;
  endpoint->port = config.redis_port;
  endpoint->db = config.redis_db;
  endpoint->password = config.redis_password;
  return Status::OK();
}

bool BuiltWithRedis() {
#ifdef OTPD_REDIS
  return true;
#else
  return false;
#endif
}

}  // namespace otpd
