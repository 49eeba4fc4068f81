// The key table (keys.h) and the checks of values, shared by every source
// (sources.cpp), the command line (command_line.cpp) and check-config.
#include "config/config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <system_error>
#include <utility>

#include "config/channel_keys.h"
#include "config/guess_budget.h"
#include "config/keys.h"
#include "core/phone.h"
#include "core/redis_url.h"
#include "http/api_keys.h"
#include "http/client_ip.h"

#ifndef OTPD_VERSION
#define OTPD_VERSION "0.0.0"
#endif

namespace otpd {
namespace {

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

// "twilio,vonage" -> {"twilio", "vonage"}; spaces around names dropped.
std::vector<std::string> SplitBackends(const std::string& value) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t comma = value.find(',', start);
    std::string name = value.substr(start, comma == std::string::npos ? comma : comma - start);
    name.erase(0, name.find_first_not_of(' '));
    name.erase(name.find_last_not_of(' ') + 1);
    out.push_back(name);
    if (comma == std::string::npos) return out;
    start = comma + 1;
  }
}

std::string CheckSmsBackend(const std::string& value) {
  if (value == "auto" || value == "console") return "";
  const std::vector<std::string> names = SplitBackends(value);
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] != "twilio" && names[i] != "vonage") {
      return "must be auto, console, twilio, vonage or a failover list such as twilio,vonage";
    }
    for (size_t j = 0; j < i; ++j) {
      if (names[j] == names[i]) return "names " + names[i] + " twice";
    }
  }
  return "";
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
  return rest.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
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
  return value.find_first_not_of(
             "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
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

// "US,CA": ISO 3166 codes of regions with phone numbers.
std::string CheckRegions(const std::string& value) {
  if (value.empty()) return "";
  std::vector<std::string> regions;
  Status s = ParseRegions(value, &regions);
  return s.ok() ? "" : s.message();
}

// "voip,pager": number types a config may refuse.
std::string CheckPhoneTypes(const std::string& value) {
  if (value.empty()) return "";
  std::vector<PhoneType> types;
  Status s = ParsePhoneTypes(value, &types);
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

std::string CheckSynchronous(const std::string& value) {
  return value == "NORMAL" || value == "FULL" ? "" : "must be NORMAL or FULL";
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

// A key a reload applies while serving (see Reload in app/daemon.h).
KeySpec Live(KeySpec key) {
  key.live = true;
  return key;
}

// A comma-separated key: the file may give it as an array of strings.
KeySpec List(KeySpec key) {
  key.list = true;
  return key;
}

}  // namespace

// Every key, in the order of config.h. Ranges here are the ones documented
// in config.h; otpd.conf.example repeats them for people.
const std::vector<KeySpec>& Keys() {
  static const char kNet[] = "Network", kStore[] = "Storage", kCodes[] = "Codes", kSms[] = "SMS",
                    kLog[] = "Logging", kAbuse[] = "Abuse limits", kAccess[] = "Access",
                    kRedis[] = "Redis";
  static const auto* const keys = new std::vector<KeySpec>{
      StringKey("listen", kNet, "Address to bind: an IPv4 or IPv6 literal", &Config::listen,
                CheckListen),
      IntKey("port", kNet, "TCP port; 0 picks a free port (logged at start)", &Config::port, 0,
             65535),
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
      IntKey("max_connections_per_ip", kNet,
             "Connections one IPv4 address or IPv6 /64 may hold open (0: no cap)",
             &Config::max_connections_per_ip, 0, 65535),
      IntKey("header_timeout", kNet, "Seconds a request's line, headers and body may take",
             &Config::header_timeout, 1, 300),
      BoolKey("reuse_port", kNet, "Let other processes bind the same port (SO_REUSEPORT)",
              &Config::reuse_port),
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
      StringKey("synchronous", kStore,
                "SQLite durability: NORMAL (a crash of otpd loses nothing answered) or FULL "
                "(an fsync per commit: a power failure loses nothing answered either)",
                &Config::synchronous, CheckSynchronous),
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
      Live(IntKey("code_length", kCodes, "Digits per code", &Config::code_length, 4, 10)),
      Live(IntKey("expiry", kCodes, "Seconds a code stays valid", &Config::expiry, 10, 86400)),
      Live(IntKey("max_attempts", kCodes, "Wrong guesses allowed per code", &Config::max_attempts,
                  1, 100)),
      Live(IntKey("expired_grace", kCodes, "Seconds an expired code still answers 410",
                  &Config::expired_grace, 0, 604800)),
      Live(StringKey("expose_phone", kCodes, "Phone in /send-code answers: masked or full",
                     &Config::expose_phone, CheckExposePhone)),
      List(Live(StringKey("allowed_country_codes", kAbuse,
                          "Country calling codes codes may be sent to, comma-separated (\"1,44\"); "
                          "unset: every country. Set this first",
                          &Config::allowed_country_codes, CheckCountryCodes))),
      List(Live(
          StringKey("allowed_regions", kAbuse,
                    "ISO 3166 regions codes may be sent to, comma-separated (\"US,CA\"); unset: "
                    "every region. Unlike calling codes, \"US\" does not admit Jamaica",
                    &Config::allowed_regions, CheckRegions))),
      List(Live(
          StringKey("refuse_phone_types", kAbuse,
                    "Number types refused besides premium-rate and shared-cost (always): voip, "
                    "pager, personal, toll_free, uan, voicemail, fixed_line",
                    &Config::refuse_phone_types, CheckPhoneTypes))),
      Live(IntKey("send_cooldown", kAbuse, "Seconds between two sends to one user (0: off)",
                  &Config::send_cooldown, 0, 86400)),
      Live(IntKey("send_user_cap", kAbuse, "Sends per user per hour (0: off)",
                  &Config::send_user_cap, 0, 1000000)),
      Live(IntKey("send_phone_cap", kAbuse, "Sends per phone number per hour (0: off)",
                  &Config::send_phone_cap, 0, 1000000)),
      Live(IntKey("send_ip_cap", kAbuse, "Sends per client IP per hour (0: off)",
                  &Config::send_ip_cap, 0, 1000000)),
      Live(IntKey("sms_budget_per_hour", kAbuse, "Sends over all users per hour (0: off)",
                  &Config::sms_budget_per_hour, 0, 100000000)),
      Live(IntKey("voice_budget_per_hour", kAbuse,
                  "Voice calls over all users per hour (0: off); a call costs more than an SMS",
                  &Config::voice_budget_per_hour, 0, 100000000)),
      Live(IntKey("whatsapp_budget_per_hour", kAbuse,
                  "WhatsApp sends over all users per hour (0: off)",
                  &Config::whatsapp_budget_per_hour, 0, 100000000)),
      List(Live(StringKey("voice_allowed_regions", kAbuse,
                          "ISO 3166 regions voice calls may go to; unset: allowed_regions",
                          &Config::voice_allowed_regions, CheckRegions))),
      List(Live(StringKey("whatsapp_allowed_regions", kAbuse,
                          "ISO 3166 regions WhatsApp codes may go to; unset: allowed_regions",
                          &Config::whatsapp_allowed_regions, CheckRegions))),
      Live(IntKey("verify_failure_cap", kAbuse,
                  "Failed verifications per user across codes per window (0: off)",
                  &Config::verify_failure_cap, 0, 100)),
      Live(IntKey("verify_failure_window", kAbuse, "Seconds of the verify_failure_cap window",
                  &Config::verify_failure_window, 60, 86400)),
      IntKey("ip_requests_per_minute", kAbuse,
             "Requests per client IP per minute, any endpoint (0: off)",
             &Config::ip_requests_per_minute, 0, 1000000),
      IntKey("ip_burst", kAbuse, "Requests a client IP may make at once", &Config::ip_burst, 1,
             1000000),
      IntKey("ip_table_size", kAbuse, "Client IPs the request limit remembers at most",
             &Config::ip_table_size, 16, 10000000),
      List(StringKey(
          "trusted_proxies", kAbuse,
          "Proxies whose X-Forwarded-For is believed: IPs and CIDR blocks, comma-separated",
          &Config::trusted_proxies, CheckTrustedProxies)),
      Sensitive(List(StringKey("api_keys", kAccess,
                               "API keys, comma-separated; when set (or api_keys_file), every "
                               "endpoint but /healthz needs Authorization: Bearer KEY",
                               &Config::api_keys, CheckApiKeys))),
      StringKey("api_keys_file", kAccess, "File with one API key per line, mode 0600",
                &Config::api_keys_file),
      Live(BoolKey("conceal_unknown_users", kAbuse,
                   "Answer unknown users like known ones (200, a stable fake masked phone), "
                   "sending nothing",
                   &Config::conceal_unknown_users)),
      Live(IntKey("conceal_initial_wait", kAbuse,
                  "Milliseconds a concealed answer waits, on average, before real SMS sends "
                  "have been timed (drawn from half to 1.5 times it)",
                  &Config::conceal_initial_wait, 0, 60000)),
      Live(BoolKey("pumping_detection", kAbuse,
                   "Pause a region or number prefix whose sends jump past its baseline while "
                   "few codes are verified (SMS pumping)",
                   &Config::pumping_detection)),
      Live(IntKey("pumping_window", kAbuse, "Seconds of recent sends pumping detection judges",
                  &Config::pumping_window, 60, 86400)),
      Live(IntKey("pumping_baseline", kAbuse,
                  "Seconds of history before the window a region's usual rate comes from",
                  &Config::pumping_baseline, 120, 2592000)),
      Live(IntKey("pumping_multiple", kAbuse,
                  "Window sends above this many times the baseline are a spike",
                  &Config::pumping_multiple, 2, 1000)),
      Live(IntKey("pumping_min_sends", kAbuse, "Fewer sends in the window never pause",
                  &Config::pumping_min_sends, 1, 1000000)),
      Live(IntKey("pumping_conversion_below", kAbuse,
                  "A spike pauses only while verified / sent is below this percent (100: always)",
                  &Config::pumping_conversion_below, 0, 100)),
      Live(IntKey("pumping_pause", kAbuse, "Seconds a detected region or prefix stays paused",
                  &Config::pumping_pause, 60, 2592000)),
      Live(IntKey("pumping_prefix_digits", kAbuse,
                  "National digits of a number prefix counted on its own (0: regions only)",
                  &Config::pumping_prefix_digits, 0, 6)),
      StringKey("sms_backend", kSms,
                "How codes are sent: auto, console, twilio, vonage, or providers in failover "
                "order: twilio,vonage",
                &Config::sms_backend, CheckSmsBackend),
      StringKey("sms_log_file", kSms, "console backend: also append messages to this file",
                &Config::sms_log_file),
      Live(StringKey("app_name", kSms, "{app} in the message template", &Config::app_name)),
      Live(StringKey("message_template", kSms, "SMS text; {app}, {code} and {minutes} are replaced",
                     &Config::message_template, CheckMessageTemplate)),
      Live(StringKey("webotp_domain", kSms, "Append the WebOTP line '@DOMAIN #code' to messages",
                     &Config::webotp_domain, CheckWebOtpDomain)),
      List(Live(StringKey("channels", kSms,
                          "Channels /send-code may use: sms (always), voice, whatsapp",
                          &Config::channels, CheckChannels))),
      Live(StringKey("voice_template", kSms,
                     "What a voice call says, twice; {code} is read digit by digit",
                     &Config::voice_template, CheckMessageTemplate)),
      Live(StringKey("voice_language", kSms, "Twilio <Say> language of voice_template",
                     &Config::voice_language, CheckVoiceLanguage)),
      StringKey("whatsapp_from", kSms, "WhatsApp sender number; unset: twilio_phone_number",
                &Config::whatsapp_from, CheckOneLine),
      StringKey("whatsapp_content_sid", kSms,
                "Twilio Content SID (HX...) of the approved WhatsApp authentication template",
                &Config::whatsapp_content_sid, CheckOneLine),
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
      StringKey("vonage_api_key", kSms, "Vonage API key", &Config::vonage_api_key, CheckOneLine),
      Sensitive(StringKey("vonage_api_secret", kSms,
                          "Vonage API secret. Flags show in ps: prefer the secret file",
                          &Config::vonage_api_secret, CheckOneLine)),
      StringKey("vonage_api_secret_file", kSms,
                "File holding the Vonage API secret, read at start (systemd LoadCredential)",
                &Config::vonage_api_secret_file),
      StringKey("vonage_from", kSms, "Vonage sender: number or alphanumeric ID",
                &Config::vonage_from, CheckOneLine),
      StringKey("vonage_api_base", kSms, "Vonage SMS API base URL, https:// only",
                &Config::vonage_api_base, CheckApiBase),
      StringKey("vonage_ca_file", kSms, "PEM CA bundle for Vonage; unset: the system store",
                &Config::vonage_ca_file),
      IntKey("vonage_connect_timeout_ms", kSms, "Milliseconds per connect to Vonage",
             &Config::vonage_connect_timeout_ms, 1, 60000),
      IntKey("vonage_timeout_ms", kSms,
             "Milliseconds a whole Vonage send may take, retries included",
             &Config::vonage_timeout_ms, 100, 120000),
      IntKey("sms_timeout_ms", kSms,
             "Failover: milliseconds a send may take across every provider in sms_backend",
             &Config::sms_timeout_ms, 100, 120000),
      IntKey("sms_breaker_failures", kSms,
             "Failover: provider faults in a row that open its circuit (it is then skipped)",
             &Config::sms_breaker_failures, 1, 1000),
      IntKey("sms_breaker_cooloff", kSms,
             "Failover: seconds an open circuit is skipped before one trial send",
             &Config::sms_breaker_cooloff, 1, 3600),
      Live(StringKey("log_level", kLog, "debug, info, warn or error", &Config::log_level,
                     CheckLogLevel)),
      Live(StringKey("log_file", kLog, "Also append log lines to this file; SIGHUP reopens it",
                     &Config::log_file)),
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
namespace {

// Levenshtein distance, for "did you mean".
size_t EditDistance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

}  // namespace

const KeySpec* SuggestKey(std::string_view name) {
  std::string underscored(name);
  for (char& c : underscored) {
    if (c == '-') c = '_';
  }
  const KeySpec* best = nullptr;
  size_t best_distance = 3;  // at most 2 edits
  for (const KeySpec& key : Keys()) {
    const size_t d = EditDistance(underscored, key.name);
    if (d < best_distance) {
      best = &key;
      best_distance = d;
    }
  }
  return best;
}

std::string ValueText(const KeySpec& key, const Config& config) {
  if (key.str != nullptr) return config.*key.str;
  if (key.flag != nullptr) return config.*key.flag ? "true" : "false";
  if (key.i32 != nullptr) return std::to_string(config.*key.i32);
  return std::to_string(config.*key.i64);
}

namespace {

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

}  // namespace

std::string CheckValue(const KeySpec& key, const Config& config) {
  if (key.str != nullptr) return key.check != nullptr ? key.check(config.*key.str) : "";
  if (key.flag != nullptr) return "";
  const int64_t value = key.i32 != nullptr ? config.*key.i32 : config.*key.i64;
  return value < key.min || value > key.max ? RangeText(key) : "";
}

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

std::string KeyIs(const KeySpec& key, const std::string& value) {
  if (key.sensitive) return key.name;
  return std::string(key.name) + " = " + (key.str == nullptr ? value : "'" + value + "'");
}

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
    std::string e164;
    Status s = NormalizePhone(phone, &e164);
    if (!s.ok()) return "users: " + id + ": " + s.message() + " (write it like +14155550123)";
  }
  return "";
}

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

void CopyValue(const KeySpec& key, const Config& from, Config* to) {
  if (key.str != nullptr) to->*key.str = from.*key.str;
  if (key.flag != nullptr) to->*key.flag = from.*key.flag;
  if (key.i32 != nullptr) to->*key.i32 = from.*key.i32;
  if (key.i64 != nullptr) to->*key.i64 = from.*key.i64;
}

namespace {

bool HasTwilioCredential(const Config& c) {
  return !c.twilio_account_sid.empty() || !c.twilio_auth_token.empty() ||
         !c.twilio_auth_token_file.empty() || !c.twilio_api_key_sid.empty() ||
         !c.twilio_api_key_secret.empty();
}

bool HasVonageCredential(const Config& c) {
  return !c.vonage_api_key.empty() || !c.vonage_api_secret.empty() ||
         !c.vonage_api_secret_file.empty();
}

std::string CheckVonage(const Config& c) {
  const std::string prefix = "sms_backend names vonage but ";
  if (c.vonage_api_key.empty()) return prefix + "vonage_api_key is not set";
  const bool secret = !c.vonage_api_secret.empty();
  const bool secret_file = !c.vonage_api_secret_file.empty();
  if (secret && secret_file) {
    return "vonage_api_secret and vonage_api_secret_file are both set; keep one";
  }
  if (!secret && !secret_file) {
    return prefix + "no secret is set: vonage_api_secret or vonage_api_secret_file";
  }
  if (c.vonage_from.empty()) return prefix + "vonage_from is not set";
  return "";
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
    return prefix +
           "no credential is set: twilio_auth_token, twilio_auth_token_file, or "
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
}  // namespace

bool IsSecretKey(const std::string& name) {
  auto ends_with = [&name](const std::string& tail) {
    return name.size() >= tail.size() &&
           name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
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
  out += DescribeGuessBudget(config);
  out += "\n[users]\n";
  for (const auto& [id, phone] : config.users)
    out += TomlString(id) + " = " + TomlString(phone) + "\n";
  out += "\n[templates]\n";
  for (const auto& [locale, text] : config.templates) {
    out += TomlString(locale) + " = " + TomlString(text) + "\n";
  }
  if (!config.voice_templates.empty()) out += "\n[voice_templates]\n";
  for (const auto& [locale, text] : config.voice_templates) {
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
  if (config.pumping_baseline <= config.pumping_window) {
    return Status::InvalidArgument("pumping_baseline = " + std::to_string(config.pumping_baseline) +
                                   ": must be longer than pumping_window (" +
                                   std::to_string(config.pumping_window) + ")");
  }
  if (config.tls_cert.empty() != config.tls_key.empty()) {
    return Status::InvalidArgument(
        "tls_cert and tls_key: set both to serve HTTPS, or neither for HTTP");
  }
  for (const std::string& error :
       {CheckStoreBuilt(config), CheckUsers(config.users), CheckTemplates(config.templates),
        CheckVoiceTemplates(config.voice_templates), CheckChannelSettings(config)}) {
    if (!error.empty()) return Status::InvalidArgument(error);
  }
  for (const std::string& backend : SmsBackends(config)) {
    const std::string error = backend == "twilio"   ? CheckTwilio(config)
                              : backend == "vonage" ? CheckVonage(config)
                                                    : std::string();
    if (!error.empty()) return Status::InvalidArgument(error);
  }
  return Status::OK();
}

std::string EffectiveSmsBackend(const Config& config) {
  if (config.sms_backend != "auto") {
    std::string out;
    for (const std::string& name : SplitBackends(config.sms_backend)) {
      out += (out.empty() ? "" : ",") + name;
    }
    return out;
  }
  const bool twilio = HasTwilioCredential(config);
  const bool vonage = HasVonageCredential(config);
  if (twilio && vonage) return "twilio,vonage";
  return twilio ? "twilio" : vonage ? "vonage" : "console";
}

std::vector<std::string> SmsBackends(const Config& config) {
  return SplitBackends(EffectiveSmsBackend(config));
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
