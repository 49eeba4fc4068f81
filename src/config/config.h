// Config: every setting of otpd in one struct, and how it is read.
//
// Each field is one key that works three ways with this precedence:
//   command-line flag (--code-length or --code_length)
//   > environment variable (OTPD_CODE_LENGTH; plus the old service's
//     TWILIO_ACCOUNT_SID, TWILIO_AUTH_TOKEN, TWILIO_PHONE_NUMBER,
//     REDIS_HOST, REDIS_PORT, REDIS_DB, REDIS_PASSWORD)
//   > config file (TOML, --config FILE or OTPD_CONFIG; key `code_length`)
//   > the default written here.
// otpd.conf.example documents every key. ParseInvocation validates once; a
// bad value stops the start with one line naming the key.
#ifndef OTPD_CONFIG_H_
#define OTPD_CONFIG_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "core/redis_url.h"
#include "core/status.h"

namespace otpd {

struct Config {
  // --- network -----------------------------------------------------------
  std::string listen = "127.0.0.1";  // address to bind (IPv4 or IPv6 literal)
  int port = 8000;                   // TCP port, 1..65535
  int threads = 1024;                // HTTP worker threads, 1..4096
  int64_t max_body_bytes = 16384;    // request body limit (413 above), 64..1048576
  int read_timeout = 5;              // seconds to wait for a request's bytes, 1..300
  int write_timeout = 5;             // seconds to wait while writing an answer, 1..300
  int keepalive_timeout = 5;         // seconds an idle keep-alive connection is kept, 0..300
  int keepalive_max = 100;           // requests per connection before it is closed, 1..100000
  int max_connections_per_ip = 64;   // open connections per IPv4 address / IPv6 /64, 0 = no cap
  int header_timeout = 5;            // seconds for a request's line, headers and body, 1..300
  bool reuse_port = false;           // SO_REUSEPORT: share the port with other processes
  std::string base_path;  // prefix a reverse proxy serves otpd under ("/otp"); docs links
  std::string tls_cert;   // PEM certificate (chain); set with tls_key to serve HTTPS only
  std::string tls_key;    // PEM private key of tls_cert

  // --- storage -----------------------------------------------------------
  std::string database = "/var/lib/otpd/otpd.db";  // SQLite file
  std::string secret;                  // HMAC key for code hashes; empty: read secret_file
  std::string secret_file;             // empty: "otpd.secret" beside the database
  int busy_timeout_ms = 5000;          // SQLite lock wait, 1..60000
  std::string synchronous = "NORMAL";  // SQLite's PRAGMA synchronous: NORMAL or FULL
  int purge_interval = 60;             // seconds between sweeps of expired codes, 1..86400
  int audit_retention_days = 90;       // days the audit trail keeps events, 1..3650

  // --- Redis ---------------------------------------------------------------
  // Where one-time codes are kept: "sqlite" (the database file) or "redis",
  // which needs a build made with `make REDIS=1`. Users stay in each
  // node's SQLite database either way.
  std::string store = "sqlite";
  // redis:// or unix:// URL (redis_url.h); when set, it wins over
  // redis_host, redis_port, redis_db, and redis_password if it has one. (secret: it may
  // hold a password; check-config shows it with the password redacted)
  std::string redis_url;
  std::string redis_host = "127.0.0.1";  // host name or IP literal; also REDIS_HOST
  int redis_port = 6379;                 // 1..65535; also REDIS_PORT
  int redis_db = 0;                      // SELECT index, 0..1000000; also REDIS_DB
  std::string redis_password;            // empty: no AUTH; also REDIS_PASSWORD (secret)
  std::string redis_prefix = "otpd:";    // starts every key otpd writes; 1..64 printable ASCII,
                                         // no spaces
  // Redis unreachable at start: use the SQLite store instead. Only right for
  // a single host; set false when several nodes share Redis.
  bool redis_fallback = true;
  int redis_timeout_ms = 1000;  // connect and command timeout, 1..60000
  int redis_connections = 32;   // pooled connections per process, 1..1024

  // --- codes -------------------------------------------------------------
  int code_length = 6;                  // digits, 4..10
  int expiry = 300;                     // seconds a code lives, 10..86400
  int max_attempts = 3;                 // wrong guesses per code, 1..100
  int expired_grace = 600;              // seconds an expired code answers 410, 0..604800
  std::string expose_phone = "masked";  // "masked" | "full"

  // --- abuse limits --------------------------------------------------------
  // Kept in the database: they survive restarts and hold across processes.
  // Every refused send answers 429 rate_limited with Retry-After; no SMS.
  std::string allowed_country_codes;  // "1,44": calling codes allowed; "" all
  std::string allowed_regions;        // "US,CA": ISO 3166 regions allowed; "" all
  // Number types refused on top of premium-rate and shared-cost (always):
  // "voip,pager,personal"; "" none.
  std::string refuse_phone_types = "voip,pager,personal";
  int send_cooldown = 30;                // seconds between two sends to a user, 0..86400
  int send_user_cap = 5;                 // sends per user per hour, 0 (off)..1000000
  int send_phone_cap = 10;               // sends per phone number per hour, 0..1000000
  int send_ip_cap = 30;                  // sends per client IP per hour, 0..1000000
  int sms_budget_per_hour = 1000;        // sends over all users per hour, 0..100000000
  int voice_budget_per_hour = 100;       // voice calls over all users per hour, 0..100000000
  int whatsapp_budget_per_hour = 1000;   // WhatsApp sends over all users per hour, 0..100000000
  std::string voice_allowed_regions;     // "US,CA"; "": allowed_regions
  std::string whatsapp_allowed_regions;  // "BR,IN"; "": allowed_regions
  int verify_failure_cap = 10;           // failed verifies per user per window, 0..100
  int verify_failure_window = 3600;      // seconds of that window, 60..86400
  // Per client IP (per /64 for IPv6), in memory, on every endpoint: a token
  // bucket of ip_burst requests refilled at ip_requests_per_minute.
  int ip_requests_per_minute = 300;  // 0 (off)..1000000
  int ip_burst = 100;                // 1..1000000
  int ip_table_size = 65536;         // client IPs remembered at most, 16..10000000
  // Unknown users (and users without a phone) get the same 200 body as
  // known ones, with a stable fake phone, about the same latency, and no
  // SMS; the send limits apply to them too. Off: 404 as the old service.
  bool conceal_unknown_users = false;
  // Until real SMS sends have been timed, a concealed answer waits a time
  // drawn uniformly from half to one and a half times this, in ms.
  int conceal_initial_wait = 300;  // 0 (no wait)..60000
  // SMS-pumping detection (otp/pumping.h): sends per region and number
  // prefix over pumping_window seconds against their own baseline over
  // pumping_baseline; past pumping_multiple times it, with at least
  // pumping_min_sends and a conversion below pumping_conversion_below
  // percent, the region or prefix is paused for pumping_pause seconds.
  bool pumping_detection = true;
  int pumping_window = 3600;          // 60..86400
  int pumping_baseline = 86400;       // 120..2592000, longer than the window
  int pumping_multiple = 5;           // 2..1000
  int pumping_min_sends = 20;         // 1..1000000
  int pumping_conversion_below = 30;  // percent 0..100 (100: conversion ignored)
  int pumping_pause = 3600;           // 60..2592000
  int pumping_prefix_digits = 3;      // national digits per prefix, 0 (regions only)..6
  // Peers whose X-Forwarded-For names the client: "10.0.0.1, 192.168.0.0/16".
  std::string trusted_proxies;

  // --- access --------------------------------------------------------------
  // When either is set, every endpoint but /healthz needs
  // "Authorization: Bearer KEY" (401 otherwise). Keys: 16+ characters.
  std::string api_keys;       // comma-separated keys (secret)
  std::string api_keys_file;  // one key per line; must be mode 0600

  // --- SMS ---------------------------------------------------------------
  // "auto" | "console" | "twilio" | "vonage", or an ordered failover list
  // of providers: "twilio,vonage". auto: twilio when a Twilio credential
  // (account SID, auth token or its file, API key) is set, vonage when a
  // Vonage one is, both ("twilio,vonage") when both are, else console.
  std::string sms_backend = "auto";
  std::string sms_log_file;       // console: also append messages here
  std::string app_name = "otpd";  // {app} in the template
  std::string message_template = "Your {app} code is {code}. It expires in {minutes} minutes.";
  // Appends "\n\n@<domain> #<code>" (WebOTP / SMS Retriever); empty: none.
  std::string webotp_domain;
  // Channels POST /send-code may ask for: "sms" (always, the default),
  // "voice", "whatsapp". Voice and WhatsApp go through Twilio.
  std::string channels = "sms";
  // What a voice call says, twice; {code} is read digit by digit.
  std::string voice_template = "Your {app} code is {code}.";
  std::string voice_language = "en-US";      // <Say> language of voice_template
  std::string whatsapp_from;                 // WhatsApp sender number; "": twilio_phone_number
  std::string whatsapp_content_sid;          // HX...: the approved authentication template
  std::string twilio_account_sid;            // also TWILIO_ACCOUNT_SID
  std::string twilio_auth_token;             // also TWILIO_AUTH_TOKEN (secret)
  std::string twilio_auth_token_file;        // token read from this file at start
  std::string twilio_api_key_sid;            // API key auth instead of the token
  std::string twilio_api_key_secret;         // (secret)
  std::string twilio_phone_number;           // also TWILIO_PHONE_NUMBER: From
  std::string twilio_messaging_service_sid;  // instead of (or beating) From
  std::string twilio_status_callback;        // delivery status URL, optional
  // The URL clients and Twilio reach otpd at ("https://otp.example.com" or
  // "https://example.com/otp"; no trailing '/'). When set, every Twilio send
  // asks for receipts at public_url + "/twilio/status", and their signature
  // is checked against exactly that URL with the auth token.
  std::string public_url;
  int delivery_unknown_after = 900;  // seconds without a final receipt: "unknown"
  std::string twilio_api_base = "https://api.twilio.com";  // https:// only
  std::string twilio_ca_file;                              // PEM CA bundle; empty: system store
  int twilio_connect_timeout_ms = 1500;                    // per connect, 1..60000
  int twilio_timeout_ms = 6000;                            // whole send with retries, 100..120000
  std::string vonage_api_key;
  std::string vonage_api_secret;                           // (secret)
  std::string vonage_api_secret_file;                      // secret read from this file at start
  std::string vonage_from;                                 // sender: number or alphanumeric ID
  std::string vonage_api_base = "https://rest.nexmo.com";  // https:// only
  std::string vonage_ca_file;                              // PEM CA bundle; empty: system store
  int vonage_connect_timeout_ms = 1500;                    // per connect, 1..60000
  int vonage_timeout_ms = 6000;                            // whole send with retries, 100..120000
  // Failover (sms_backend with two providers or more): a whole send across
  // every provider, and each provider's circuit breaker.
  int sms_timeout_ms = 8000;     // 100..120000
  int sms_breaker_failures = 3;  // provider faults in a row that open it, 1..1000
  int sms_breaker_cooloff = 30;  // seconds an open circuit is skipped, 1..3600

  // --- logging -----------------------------------------------------------
  std::string log_level = "info";  // "debug" | "info" | "warn" | "error"
  std::string log_file;            // empty: stderr only; else append here, reopened on SIGHUP

  // --- users ---------------------------------------------------------------
  // The [users] table of the config file: user ID -> E.164 phone. Synced
  // into the database at start. Not settable by flag or environment.
  std::map<std::string, std::string> users;

  // --- templates -----------------------------------------------------------
  // The [templates] table of the config file: locale ("es", "pt-BR") ->
  // message template, chosen by the user's locale. File only.
  std::map<std::string, std::string> templates;
  // The [voice_templates] table: locale -> voice template. File only.
  std::map<std::string, std::string> voice_templates;

  // Where the settings came from (empty: no file).
  std::string config_file;
};

enum class Command {
  kServe,           // otpd, otpd serve
  kUsersAdd,        // otpd users add ID PHONE [--locale TAG]: args = {id, phone, locale}
  kUsersRemove,     // otpd users remove ID
  kUsersList,       // otpd users list
  kUsersImport,     // otpd users import FILE
  kUsersExport,     // otpd users export
  kCheckConfig,     // otpd check-config
  kBackup,          // otpd backup FILE
  kSmsTest,         // otpd sms test PHONE
  kAudit,           // otpd audit [--user ID] [--since TIME]: args = {user, since}
  kRegionsList,     // otpd regions [list]
  kRegionsPause,    // otpd regions pause KEY [--for SECONDS]: args = {key, seconds}
  kRegionsUnpause,  // otpd regions unpause KEY
  kExit,            // --help or --version was printed: exit with exit_code
};

// The subcommands, as one table: the command line is built from it, and
// app/admin_commands.h gives each its handler.
struct CommandArg {
  const char* name;  // "ID": a required positional; "--user": an option
  const char* help;
  const char* fallback = nullptr;  // an option's value when not given
};

struct CommandSpec {
  Command command;
  const char* group;             // "users", "sms", "regions", or null for a top-level command
  const char* name;              // "add": otpd users add
  const char* help;              // one line for --help
  std::vector<CommandArg> args;  // in Invocation::args, in this order
};

// Every command, serve first.
const std::vector<CommandSpec>& Commands();

struct Invocation {
  Command command = Command::kServe;
  Config config;
  std::vector<std::string> args;  // positional arguments of the command
  int exit_code = 0;              // for kExit
  std::string output;             // for kExit: text to print on stdout
};

// Parses argv, the environment (`environ`, or `env` in tests when not null:
// "NAME=value" strings) and the config file, and validates the result.
// InvalidArgument with one line naming the key (or the flag) on any error.
// Never prints, exits or throws. --help/--version give kExit without reading
// the environment or the file. Only the winning value of a key is checked,
// so a flag can override a bad value in the file. Unknown OTPD_* variables
// are ignored (other tools may share the prefix); unknown flags, file keys
// and sections other than [users] and [templates] are errors. `--config=`
// reads no file, even when OTPD_CONFIG is set. On error *inv is partly
// filled: ignore it.
Status ParseInvocation(int argc, const char* const* argv, const std::vector<std::string>* env,
                       Invocation* inv);

// The effective settings as TOML lines (`key = value`, then the [users]
// table), for `otpd check-config`. Secrets are shown as "<redacted>" when
// set: every sensitive key, and any key named secret or ending in _token,
// _secret or api_keys. redis_url is shown with only its password redacted:
// "redis://:<redacted>@10.0.0.5:6379/0".
std::string DescribeConfig(const Config& config);

// True for a key DescribeConfig redacts.
bool IsSecretKey(const std::string& name);

// The names of the keys whose values differ between `a` and `b` (the
// [users] table is not a key), in the order of config.h.
std::vector<std::string> ChangedKeys(const Config& a, const Config& b);

// "console", "twilio", "vonage" or a failover list ("twilio,vonage"):
// sms_backend with "auto" resolved.
std::string EffectiveSmsBackend(const Config& config);

// The providers of EffectiveSmsBackend in order ({"console"} for console).
std::vector<std::string> SmsBackends(const Config& config);

// Checks every field's range and enumeration, that a Twilio backend has
// its account SID, a credential and a sender, and that store = "redis" comes
// with a build that has Redis. InvalidArgument names the first bad key:
// "code_length = 11: must be between 4 and 10".
Status ValidateConfig(const Config& config);

// The Redis server to use: redis_url parsed when it is set (with
// redis_password when the URL has none), else redis_host, redis_port,
// redis_db and redis_password. InvalidArgument
// naming the bad key (never a password) when one is bad; *endpoint is then
// unspecified. Does not look at `store`.
Status RedisEndpointOf(const Config& config, RedisEndpoint* endpoint);

// True when this otpd was built with the Redis store (make REDIS=1, which
// defines OTPD_REDIS).
bool BuiltWithRedis();

}  // namespace otpd

#endif  // OTPD_CONFIG_H_
