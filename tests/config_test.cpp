// Tests for src/config: flags, environment, config file, their precedence,
// validation messages, subcommands, and the shipped otpd.conf.example.
#include "config/config.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/sources.h"
#include "test_util.h"

#ifndef OTPD_VERSION
#define OTPD_VERSION "0.0.0"
#endif

namespace otpd {
namespace {

struct Parsed {
  Status status;
  Invocation inv;
};

// Runs ParseInvocation on "otpd" + args with exactly `env` as environment
// (plus, unless `env` names one, no default config file: the machine's
// /etc/otpd/otpd.conf stays out of the tests).
Parsed Parse(const std::vector<std::string>& args, std::vector<std::string> env = {}) {
  if (std::none_of(env.begin(), env.end(),
                   [](const std::string& e) { return e.rfind("OTPD_DEFAULT_CONFIG=", 0) == 0; })) {
    env.push_back("OTPD_DEFAULT_CONFIG=");
  }
  std::vector<const char*> argv = {"otpd"};
  for (const std::string& arg : args) argv.push_back(arg.c_str());
  argv.push_back(nullptr);
  Parsed out;
  out.status = ParseInvocation(static_cast<int>(argv.size() - 1), argv.data(), &env, &out.inv);
  return out;
}

std::string WriteFile(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string path = dir.File(name);
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// Parses with `--config FILE` holding `text`.
Parsed ParseFile(const std::string& text, std::vector<std::string> args = {},
                 const std::vector<std::string>& env = {}) {
  TempDir dir;
  args.push_back("--config=" + WriteFile(dir, "otpd.conf", text));
  return Parse(args, env);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// "abc = 1" -> "abc"; "" unless the line starts with a key and " = ".
std::string KeyOfLine(const std::string& line) {
  const size_t eq = line.find(" = ");
  if (eq == std::string::npos || eq == 0) return "";
  const std::string key = line.substr(0, eq);
  const char first = key[0];
  const bool key_like = key.find_first_of(" #") == std::string::npos &&
                        ((first >= 'a' && first <= 'z') || (first >= 'A' && first <= 'Z') ||
                         (first >= '0' && first <= '9') || first == '_' || first == '"');
  return key_like ? key : "";
}

// Uncomments every "# key = value" line, "# [users]" and "# [templates]". No <regex>: GCC 12
// warns inside it under the sanitizers, and CI builds with -Werror.
std::string Uncomment(const std::string& text) {
  std::istringstream in(text);
  std::string out;
  for (std::string line; std::getline(in, line);) {
    const bool table =
        line == "# [users]" || line == "# [templates]" || line == "# [voice_templates]";
    const bool commented =
        line.compare(0, 2, "# ") == 0 && (table || !KeyOfLine(line.substr(2)).empty());
    out += (commented ? line.substr(2) : line) + "\n";
  }
  return out;
}

// Compares every field but users and config_file.
void CheckSameSettings(const Config& a, const Config& b) {
  CHECK(a.listen == b.listen);
  CHECK(a.port == b.port);
  CHECK(a.threads == b.threads);
  CHECK(a.max_body_bytes == b.max_body_bytes);
  CHECK(a.read_timeout == b.read_timeout);
  CHECK(a.write_timeout == b.write_timeout);
  CHECK(a.keepalive_timeout == b.keepalive_timeout);
  CHECK(a.keepalive_max == b.keepalive_max);
  CHECK(a.database == b.database);
  CHECK(a.secret == b.secret);
  CHECK(a.secret_file == b.secret_file);
  CHECK(a.busy_timeout_ms == b.busy_timeout_ms);
  CHECK(a.synchronous == b.synchronous);
  CHECK(a.purge_interval == b.purge_interval);
  CHECK(a.store == b.store);
  CHECK(a.redis_url == b.redis_url);
  CHECK(a.redis_host == b.redis_host);
  CHECK(a.redis_port == b.redis_port);
  CHECK(a.redis_db == b.redis_db);
  CHECK(a.redis_password == b.redis_password);
  CHECK(a.redis_prefix == b.redis_prefix);
  CHECK(a.redis_fallback == b.redis_fallback);
  CHECK(a.redis_timeout_ms == b.redis_timeout_ms);
  CHECK(a.redis_connections == b.redis_connections);
  CHECK(a.code_length == b.code_length);
  CHECK(a.expiry == b.expiry);
  CHECK(a.max_attempts == b.max_attempts);
  CHECK(a.expired_grace == b.expired_grace);
  CHECK(a.expose_phone == b.expose_phone);
  CHECK(a.base_path == b.base_path);
  CHECK(a.sms_backend == b.sms_backend);
  CHECK(a.sms_log_file == b.sms_log_file);
  CHECK(a.app_name == b.app_name);
  CHECK(a.message_template == b.message_template);
  CHECK(a.twilio_account_sid == b.twilio_account_sid);
  CHECK(a.twilio_auth_token == b.twilio_auth_token);
  CHECK(a.twilio_phone_number == b.twilio_phone_number);
  CHECK(a.webotp_domain == b.webotp_domain);
  CHECK(a.twilio_auth_token_file == b.twilio_auth_token_file);
  CHECK(a.twilio_api_key_sid == b.twilio_api_key_sid);
  CHECK(a.twilio_api_key_secret == b.twilio_api_key_secret);
  CHECK(a.twilio_messaging_service_sid == b.twilio_messaging_service_sid);
  CHECK(a.twilio_status_callback == b.twilio_status_callback);
  CHECK(a.twilio_api_base == b.twilio_api_base);
  CHECK(a.twilio_ca_file == b.twilio_ca_file);
  CHECK(a.twilio_connect_timeout_ms == b.twilio_connect_timeout_ms);
  CHECK(a.twilio_timeout_ms == b.twilio_timeout_ms);
  CHECK(a.vonage_api_key == b.vonage_api_key);
  CHECK(a.vonage_api_secret == b.vonage_api_secret);
  CHECK(a.vonage_api_secret_file == b.vonage_api_secret_file);
  CHECK(a.vonage_from == b.vonage_from);
  CHECK(a.vonage_api_base == b.vonage_api_base);
  CHECK(a.vonage_ca_file == b.vonage_ca_file);
  CHECK(a.vonage_connect_timeout_ms == b.vonage_connect_timeout_ms);
  CHECK(a.vonage_timeout_ms == b.vonage_timeout_ms);
  CHECK(a.sms_timeout_ms == b.sms_timeout_ms);
  CHECK(a.sms_breaker_failures == b.sms_breaker_failures);
  CHECK(a.sms_breaker_cooloff == b.sms_breaker_cooloff);
  CHECK(a.log_level == b.log_level);
  CHECK(a.log_file == b.log_file);
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// The keys --help lists, as file keys ("code_length").
std::set<std::string> KeysInHelp() {
  std::set<std::string> keys;
  std::istringstream in(Parse({"--help"}).inv.output);
  for (std::string line; std::getline(in, line);) {
    if (line.compare(0, 4, "  --") != 0) continue;
    std::string key = line.substr(4, line.find(' ', 4) - 4);
    if (key == "config") continue;
    for (char& c : key) {
      if (c == '-') c = '_';
    }
    keys.insert(key);
  }
  return keys;
}

// ---------------------------------------------------------------------------

TEST_CASE("no arguments: serve with the defaults of config.h") {
  const Parsed p = Parse({});
  REQUIRE(p.status.ok());
  CHECK(p.inv.command == Command::kServe);
  CHECK(p.inv.args.empty());
  CheckSameSettings(p.inv.config, Config());
  CHECK(p.inv.config.listen == "127.0.0.1");
  CHECK(p.inv.config.port == 8000);
  CHECK(p.inv.config.code_length == 6);
  CHECK(p.inv.config.database == "/var/lib/otpd/otpd.db");
  CHECK(p.inv.config.users.empty());
  CHECK(p.inv.config.config_file.empty());
  CHECK(ValidateConfig(Config()).ok());
}

TEST_CASE("each source alone sets a value") {
  SUBCASE("flag") {
    const Parsed p = Parse({"--port=9001", "--database", "/tmp/a.db", "--max-body-bytes=2048"});
    REQUIRE(p.status.ok());
    CHECK(p.inv.config.port == 9001);
    CHECK(p.inv.config.database == "/tmp/a.db");
    CHECK(p.inv.config.max_body_bytes == 2048);
  }
  SUBCASE("environment") {
    const Parsed p =
        Parse({}, {"OTPD_PORT=9002", "OTPD_DATABASE=/tmp/b.db", "OTPD_MAX_BODY_BYTES=4096"});
    REQUIRE(p.status.ok());
    CHECK(p.inv.config.port == 9002);
    CHECK(p.inv.config.database == "/tmp/b.db");
    CHECK(p.inv.config.max_body_bytes == 4096);
  }
  SUBCASE("config file") {
    const Parsed p = ParseFile("port = 9003\ndatabase = \"/tmp/c.db\"\nmax_body_bytes = 8_192\n");
    REQUIRE(p.status.ok());
    CHECK(p.inv.config.port == 9003);
    CHECK(p.inv.config.database == "/tmp/c.db");
    CHECK(p.inv.config.max_body_bytes == 8192);
    CHECK(p.inv.config.config_file.find("otpd.conf") != std::string::npos);
  }
}

TEST_CASE("precedence: flag > env > file > default, pairwise") {
  const std::string file = "port = 1001\n";
  const std::string flag = "--port=1003";
  const std::vector<std::string> env = {"OTPD_PORT=1002"};
  CHECK(ParseFile(file).inv.config.port == 1001);
  CHECK(ParseFile(file, {}, env).inv.config.port == 1002);
  CHECK(ParseFile(file, {flag}).inv.config.port == 1003);
  CHECK(Parse({flag}, env).inv.config.port == 1003);
  CHECK(ParseFile(file, {flag}, env).inv.config.port == 1003);
  // The file comes after the flag on the command line: still the flag wins.
  TempDir dir;
  const std::string path = WriteFile(dir, "otpd.conf", file);
  CHECK(Parse({flag, "--config", path}, env).inv.config.port == 1003);
}

TEST_CASE("only the winning value is checked: a flag repairs a bad file or env value") {
  const Parsed from_file = ParseFile("code_length = 99\n", {"--code-length=8"});
  REQUIRE(from_file.status.ok());
  CHECK(from_file.inv.config.code_length == 8);
  const Parsed from_env = Parse({"--port=7"}, {"OTPD_PORT=abc"});
  REQUIRE(from_env.status.ok());
  CHECK(from_env.inv.config.port == 7);
}

TEST_CASE("flags: dash and underscore forms, both spacings, last one wins") {
  CHECK(Parse({"--code-length=7"}).inv.config.code_length == 7);
  CHECK(Parse({"--code_length=8"}).inv.config.code_length == 8);
  CHECK(Parse({"--code_length", "9"}).inv.config.code_length == 9);
  CHECK(Parse({"--code-length=7", "--code_length=5"}).inv.config.code_length == 5);
  CHECK(Parse({"--code_length=5", "--code-length=7"}).inv.config.code_length == 7);
  CHECK(Parse({"--expose_phone", "full"}).inv.config.expose_phone == "full");
}

TEST_CASE("an empty --key= value does not swallow the next argument") {
  const Parsed p = Parse({"--sms-log-file=", "users", "list"}, {"OTPD_SMS_LOG_FILE=/tmp/x"});
  REQUIRE(p.status.ok());
  CHECK(p.inv.command == Command::kUsersList);
  CHECK(p.inv.config.sms_log_file.empty());
  const Parsed db = Parse({"--database=", "serve"});
  CHECK(db.status.IsInvalidArgument());
  CHECK(Contains(db.status.message(), "database must not be empty"));
}

TEST_CASE("sms_backend auto: twilio with credentials, console without") {
  CHECK(Parse({}).inv.config.sms_backend == "auto");
  CHECK(EffectiveSmsBackend(Parse({}).inv.config) == "console");
  const std::vector<std::string> old_names = {"TWILIO_ACCOUNT_SID=AC1", "TWILIO_AUTH_TOKEN=tok1",
                                              "TWILIO_PHONE_NUMBER=+12075550001"};
  Parsed p = Parse({}, old_names);
  REQUIRE(p.status.ok());
  CHECK(EffectiveSmsBackend(p.inv.config) == "twilio");
  p = Parse({"--sms-backend=console"}, old_names);
  REQUIRE(p.status.ok());
  CHECK(EffectiveSmsBackend(p.inv.config) == "console");
  // A sender number alone is not a credential.
  p = Parse({"--twilio-phone-number=+12075550001"});
  REQUIRE(p.status.ok());
  CHECK(EffectiveSmsBackend(p.inv.config) == "console");
  // API key and messaging service instead of token and number.
  p = Parse({"--twilio-account-sid=AC1", "--twilio-api-key-sid=SK1",
             "--twilio-messaging-service-sid=MG1"},
            {"OTPD_TWILIO_API_KEY_SECRET=keysecret1"});
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(EffectiveSmsBackend(p.inv.config) == "twilio");
}

TEST_CASE("a partial Twilio setup stops the start naming the missing key, never a secret") {
  struct Case {
    std::vector<std::string> env;
    const char* message;
  };
  const Case cases[] = {
      {{"TWILIO_AUTH_TOKEN=supersecret1", "TWILIO_PHONE_NUMBER=+12075550001"},
       "twilio_account_sid is not set"},
      {{"TWILIO_ACCOUNT_SID=AC1", "TWILIO_PHONE_NUMBER=+12075550001"}, "no credential is set"},
      {{"TWILIO_ACCOUNT_SID=AC1", "TWILIO_AUTH_TOKEN=supersecret1"}, "no sender is set"},
      {{"TWILIO_ACCOUNT_SID=AC1", "OTPD_TWILIO_API_KEY_SECRET=supersecret1",
        "TWILIO_PHONE_NUMBER=+12075550001"},
       "only one of twilio_api_key_sid and twilio_api_key_secret"},
      {{"TWILIO_ACCOUNT_SID=AC1", "TWILIO_AUTH_TOKEN=supersecret1",
        "OTPD_TWILIO_AUTH_TOKEN_FILE=/run/x", "TWILIO_PHONE_NUMBER=+12075550001"},
       "both set"},
      {{"TWILIO_ACCOUNT_SID=AC1", "TWILIO_AUTH_TOKEN=supersecret1\r\nX: y",
        "TWILIO_PHONE_NUMBER=+12075550001"},
       "must not contain control characters"},
      {{"OTPD_TWILIO_API_BASE=http://api.twilio.com"}, "must be an https:// URL"},
      {{"OTPD_TWILIO_API_BASE=https://api.twilio.com/x"}, "must not have a path"},
      {{"OTPD_WEBOTP_DOMAIN=example.com #1"}, "must be a bare host name"},
  };
  for (const Case& c : cases) {
    const Parsed p = Parse({}, c.env);
    CHECK_MESSAGE(p.status.IsInvalidArgument(), c.message);
    CHECK_MESSAGE(Contains(p.status.message(), c.message), p.status.message());
    CHECK_MESSAGE(!Contains(p.status.message(), "supersecret1"), p.status.message());
  }
  // The same setups with sms_backend = console start (settings kept, unused).
  CHECK(Parse({"--sms-backend=console"}, cases[0].env).status.ok());
}

TEST_CASE("config file: the [templates] table") {
  Parsed p = ParseFile(
      "app_name = \"Acme\"\n[users]\nabc = \"+12015551111\"\n[templates]\n"
      "es = \"Tu c\u00f3digo es {code}\"\n\"pt-BR\" = \"Seu c\u00f3digo \u00e9 {code}\"\n");
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.users.size() == 1);
  CHECK(p.inv.config.templates.size() == 2);
  CHECK(p.inv.config.templates.at("es") ==
        "Tu c\xC3\xB3"
        "digo es {code}");
  CHECK(p.inv.config.templates.count("pt-BR") == 1);
  p = ParseFile("[templates]\nes = \"sin c\u00f3digo\"\n");
  CHECK(p.status.IsInvalidArgument());
  CHECK(Contains(p.status.message(), "templates: es: must contain {code}"));
  p = ParseFile("[templates]\nes = 5\n");
  CHECK(Contains(p.status.message(), "templates: 'es' must be a quoted string"));
  p = ParseFile("[templates]\n\"e s\" = \"{code}\"\n");
  CHECK(Contains(p.status.message(), "locale 'e s' must be a language tag"));
}

TEST_CASE("the old service's TWILIO_* names, and OTPD_TWILIO_* over them") {
  const std::vector<std::string> old_names = {"TWILIO_ACCOUNT_SID=AC1", "TWILIO_AUTH_TOKEN=tok1",
                                              "TWILIO_PHONE_NUMBER=+12075550001"};
  const Parsed p = Parse({}, old_names);
  REQUIRE(p.status.ok());
  CHECK(p.inv.config.twilio_account_sid == "AC1");
  CHECK(p.inv.config.twilio_auth_token == "tok1");
  CHECK(p.inv.config.twilio_phone_number == "+12075550001");
  // Both orders in the environment: the OTPD_ name wins either way.
  for (const bool otpd_first : {true, false}) {
    std::vector<std::string> env = old_names;
    const std::string ours = "OTPD_TWILIO_AUTH_TOKEN=tok2";
    env.insert(otpd_first ? env.begin() : env.end(), ours);
    CHECK(Parse({}, env).inv.config.twilio_auth_token == "tok2");
  }
  CHECK(Parse({"--twilio-auth-token=tok3"}, old_names).inv.config.twilio_auth_token == "tok3");
}

TEST_CASE("unknown OTPD_* environment variables are ignored") {
  const Parsed p = Parse({}, {"OTPD_NOT_A_KEY=1", "OTPD_USERS=x", "OTPD_PORT=8123"});
  REQUIRE(p.status.ok());
  CHECK(p.inv.config.port == 8123);
}

TEST_CASE("config file: OTPD_CONFIG, --config over it, and --config= for none") {
  TempDir dir;
  const std::string a = WriteFile(dir, "a.conf", "port = 1111\n");
  const std::string b = WriteFile(dir, "b.conf", "port = 2222\n");
  const Parsed by_env = Parse({}, {"OTPD_CONFIG=" + a});
  REQUIRE(by_env.status.ok());
  CHECK(by_env.inv.config.port == 1111);
  CHECK(by_env.inv.config.config_file == a);
  const Parsed by_flag = Parse({"--config", b}, {"OTPD_CONFIG=" + a});
  CHECK(by_flag.inv.config.port == 2222);
  CHECK(by_flag.inv.config.config_file == b);
  const Parsed none = Parse({"--config="}, {"OTPD_CONFIG=" + a});
  REQUIRE(none.status.ok());
  CHECK(none.inv.config.port == 8000);
  CHECK(none.inv.config.config_file.empty());
}

TEST_CASE("config file: TOML strings, comments and line endings") {
  const Parsed p = ParseFile(
      "\xEF\xBB\xBF# comment\r\n"
      "secret = \"ab#cd\\\"ef\\\\gh\\u00e9ijklmnop\"  # trailing comment\r\n"
      "app_name = 'C:\\app #1'\n"
      "  message_template=\"{app}:\\t{code}\"\n"
      "\n"
      "keepalive_timeout = +0\n");
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.secret == "ab#cd\"ef\\gh\xC3\xA9ijklmnop");
  CHECK(p.inv.config.app_name == "C:\\app #1");
  CHECK(p.inv.config.message_template == "{app}:\t{code}");
  CHECK(p.inv.config.keepalive_timeout == 0);
}

TEST_CASE("config file: list keys take a TOML array beside the comma string") {
  Parsed p = ParseFile(
      "allowed_country_codes = [\"1\", \"44\"]\n"
      "trusted_proxies = [\"10.0.0.1\", \"192.168.0.0/16\"]\n");
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.allowed_country_codes == "1,44");
  CHECK(p.inv.config.trusted_proxies == "10.0.0.1,192.168.0.0/16");
  p = ParseFile("allowed_country_codes = \"1,44\"\n");
  REQUIRE(p.status.ok());
  CHECK(p.inv.config.allowed_country_codes == "1,44");
  p = ParseFile("allowed_country_codes = [\"1\", \"x\"]\n");
  CHECK(Contains(p.status.message(), "allowed_country_codes = '1,x': "));
  CHECK(Contains(p.status.message(), "(line 1, column 25)"));
  // Only list keys take arrays.
  p = ParseFile("app_name = [\"a\"]\n");
  CHECK(Contains(p.status.message(), "app_name = [...]: must be a quoted string"));
}

TEST_CASE("config file: full TOML strings (multi-line) are read") {
  const Parsed p = ParseFile("message_template = \"\"\"\nYour code: {code}\"\"\"\n");
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.message_template == "Your code: {code}");
}

TEST_CASE("config file: the [users] table") {
  const Parsed p = ParseFile(
      "code_length = 8\n"
      "[users]\n"
      "abc = \"+12015551111\"\n"
      "\"John.Doe\" = \"+12025552222\"\n"
      "'jane.roe@example.com' = '+12035553333'\n"
      "with-dash_1 = \"+12055554444\"\n");
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.code_length == 8);
  const std::map<std::string, std::string> want = {{"abc", "+12015551111"},
                                                   {"John.Doe", "+12025552222"},
                                                   {"jane.roe@example.com", "+12035553333"},
                                                   {"with-dash_1", "+12055554444"}};
  CHECK(p.inv.config.users == want);
}

TEST_CASE("config file: [users] errors name the user") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"[users]\nabc = +12135554567\n", "the phone of 'abc' must be a quoted string"},
      {"[users]\nAbc = \"+12135554567\"\nabC = \"+12145554568\"\n",
       "'Abc' and 'abC' are the same user ID"},
      {"[users]\nabc = \"+1\"\nabc = \"+2\"\n", "'abc' appears twice in [users]"},
      {"[users]\nbob = \"5551234567\"\n",
       "users: bob: phone '5551234567' is not in international form"},
      {"[users]\nbob = \"+11111111111\"\n", "not a valid number in its country's numbering plan"},
      {"[users]\nbob = \"+19005550111\"\n", "is a premium_rate number, never sent a code"},
      {"[users]\njohn.doe = \"+12135554567\"\n", "dotted key john...."},
      {"[users]\n\"\" = \"+12135554567\"\n", "user ID '' must be 1 to 128 bytes"},
      {"[users]\n[users]\n", "[users] appears twice"},
  };
  for (const Case& c : cases) {
    const Parsed p = ParseFile(c.text);
    CHECK_MESSAGE(p.status.IsInvalidArgument(), c.text);
    CHECK_MESSAGE(Contains(p.status.message(), c.message), p.status.message());
    CHECK_MESSAGE(Contains(p.status.message(), "config file "), p.status.message());
  }
}

TEST_CASE("config file: syntax and type errors name the key and line") {
  struct Case {
    const char* text;
    const char* message;
  };
  const Case cases[] = {
      {"cod_length = 5\n",
       "unknown key 'cod_length' (did you mean 'code_length'?) (line 1, column 1)"},
      {"\ncode-length = 5\n",
       "unknown key 'code-length' (did you mean 'code_length'?) (line 2, column 1)"},
      {"code_lenght = 5\n", "unknown key 'code_lenght' (did you mean 'code_length'?)"},
      {"colour = 5\n", "unknown key 'colour' (line 1, column 1)"},
      {"port = \"8000\"\n",
       "port = \"8000\": must be an integer, without quotes (line 1, column 8)"},
      {"port = abc\n", "cannot read the value of 'port': must be an integer (line 1, column 8)"},
      {"port = 08\n", "cannot read the value of 'port': must be an integer (leading zeroes"},
      {"port = 8.5\n", "port = 8.5: must be an integer (line 1, column 8)"},
      {"expiry = 1.5\n", "expiry = 1.5: must be an integer (line 1, column 10)"},
      {"conceal_unknown_users = yes\n",
       "cannot read the value of 'conceal_unknown_users': must be true or false"},
      {"listen = localhost\n", "cannot read the value of 'listen': text needs quotes: \"...\""},
      {"listen = 127\n", "listen = 127: must be a quoted string (line 1, column 10)"},
      {"listen = true\n", "listen = true: must be a quoted string"},
      {"secret = 12345678901234567\n", "secret: must be a quoted string"},
      {"listen = [\"::1\"]\n", "listen = [...]: must be a quoted string (line 1, column 10)"},
      {"listen = { a = 1 }\n", "listen = {...}: must be a quoted string"},
      {"allowed_country_codes = [1, 44]\n",
       "allowed_country_codes = [...]: must be a list of quoted strings"},
      {"app_name = \"x\n", "cannot read the value of 'app_name': unterminated string"},
      {"app_name = \"\\q\"\n", "unknown escape sequence '\\q'"},
      {"app_name = \"\\u00\"\n", "expected hex digit"},
      {"app_name = \"\\u0000\"\n", "must not contain NUL"},
      {"app_name = \"x\" y\n", "unexpected text after the value of 'app_name'"},
      {"port = 1\nport = 2\n", "'port' appears twice (line 2, column 8)"},
      {"port\n", "expected '=', saw '\\n' (line 1, column 5)"},
      {"= 5\n", "expected keys"},
      {"[other]\nk = 1\n",
       "unknown section [other]; only [users], [templates] and [voice_templates] are allowed "
       "(line 1, column 2)"},
      {"[users.extra]\n", "unknown section [users.extra]"},
      {"[[users]]\n", "arrays of tables ([[...]]) are not supported"},
      {"[users\n", "expected ']'"},
  };
  for (const Case& c : cases) {
    const Parsed p = ParseFile(c.text);
    CHECK_MESSAGE(p.status.IsInvalidArgument(), c.text);
    CHECK_MESSAGE(Contains(p.status.message(), c.message), p.status.message());
    CHECK_MESSAGE(Contains(p.status.message(), "config file "), p.status.message());
  }
}

TEST_CASE("config file: a NUL byte is refused with its place, not parsed") {
  Settings settings;
  Config config;
  const Status s =
      ReadConfigText("f.conf", std::string("port = 1\n[\0\0x\n", 13), &settings, &config);
  CHECK(s.message() == "config file f.conf: NUL byte (not text) (line 2, column 2)");
}

TEST_CASE("config file: non-ASCII outside strings is refused with its place, not parsed") {
  // toml++ 3.3 reaches undefined behaviour on U+01FD outside a string
  // (found by fuzzing); inside strings and comments such text is fine.
  Settings settings;
  Config config;
  Status s = ReadConfigText("f.conf", "port = 1\npBB\xc7\xbd = 2\n", &settings, &config);
  CHECK(s.message() ==
        "config file f.conf: non-ASCII character outside a string or comment (line 2, column 4)");
  s = ReadConfigText("f.conf", "m = \"\"\"a \\\n \xc7\xbd\"\"\"\n", &settings, &config);
  CHECK(s.message() ==
        "config file f.conf: non-ASCII character after a line-ending backslash (line 2, column 2)");
  Settings ok_settings;
  Config ok_config;
  s = ReadConfigText("f.conf",
                     "# caf\xc3\xa9\napp_name = \"Caf\xc3\xa9 #1\" # \xc7\xbd\n"
                     "message_template = '''{code} \xc7\xbd'''\n",
                     &ok_settings, &ok_config);
  CHECK(s.ok());
  CHECK(ok_settings.count("app_name") == 1);
}

TEST_CASE("config file: a table header without a name is refused, not parsed") {
  // toml++ 3.3 asserts (aborts) on "[[[" (found by fuzzing).
  Settings settings;
  Config config;
  Status s = ReadConfigText("f.conf", "port = 1\n[[[[x]]\n", &settings, &config);
  CHECK(s.message() == "config file f.conf: table header without a name (line 2, column 1)");
  s = ReadConfigText("f.conf", "port = 1\n  [ ]\n", &settings, &config);
  CHECK(s.message() == "config file f.conf: table header without a name (line 2, column 3)");
  Settings ok_settings;
  s = ReadConfigText("f.conf", "allowed_country_codes = [\"1\",\n\"44\"]\n[ users ]\n",
                     &ok_settings, &config);
  CHECK(s.ok());
}

TEST_CASE("config file: the message names the file exactly as given") {
  TempDir dir;
  const std::string path = WriteFile(dir, "otpd.conf", "cod_length = 5\n");
  const Parsed p = Parse({"--config", path});
  CHECK(p.status.message() == "config file " + path +
                                  ": unknown key 'cod_length' (did you mean 'code_length'?) "
                                  "(line 1, column 1)");
}

TEST_CASE("config file: missing, a directory, or unreadable") {
  TempDir dir;
  const Parsed missing = Parse({"--config", dir.File("nope.conf")});
  CHECK(missing.status.IsInvalidArgument());
  CHECK(missing.status.message() ==
        "config file " + dir.File("nope.conf") + ": cannot read: No such file or directory");
  const Parsed by_env = Parse({}, {"OTPD_CONFIG=" + dir.File("nope.conf")});
  CHECK(Contains(by_env.status.message(), dir.File("nope.conf")));
  const Parsed directory = Parse({"--config", dir.path()});
  CHECK(directory.status.message() == "config file " + dir.path() + ": is a directory");
}

TEST_CASE("values from env and flags: messages name the source and the key") {
  CHECK(Parse({}, {"OTPD_PORT=abc"}).status.message() == "OTPD_PORT=abc: port must be an integer");
  CHECK(Parse({}, {"OTPD_PORT= 80"}).status.message() == "OTPD_PORT= 80: port must be an integer");
  CHECK(Parse({"--port=80x"}).status.message() == "--port=80x: port must be an integer");
  CHECK(Parse({"--port=99999999999999999999"}).status.message() ==
        "--port=99999999999999999999: port must be between 0 and 65535");
  CHECK(Parse({}, {"OTPD_CODE_LENGTH=11"}).status.message() ==
        "OTPD_CODE_LENGTH=11: code_length must be between 4 and 10");
  CHECK(ParseFile("code_length = 11\n")
            .status.message()
            .find(": code_length = 11: must be between 4 and 10 (line 1, column 15)") !=
        std::string::npos);
  CHECK(Parse({}, {"OTPD_EXPOSE_PHONE=partial"}).status.message() ==
        "OTPD_EXPOSE_PHONE=partial: expose_phone must be masked or full");
}

TEST_CASE("secrets are never echoed in messages") {
  const Parsed env = Parse({}, {"OTPD_SECRET=tooshort-XYZ"});
  CHECK(env.status.IsInvalidArgument());
  CHECK(Contains(env.status.message(), "OTPD_SECRET: secret must be at least 16 characters"));
  CHECK_FALSE(Contains(env.status.message(), "XYZ"));
  const Parsed flag = Parse({"--secret=tooshort-XYZ"});
  CHECK(Contains(flag.status.message(), "--secret: secret must be at least 16"));
  CHECK_FALSE(Contains(flag.status.message(), "XYZ"));
  const Parsed file = ParseFile("secret = \"tooshort-XYZ\"\n");
  CHECK(Contains(file.status.message(), ": secret: must be at least 16"));
  CHECK_FALSE(Contains(file.status.message(), "XYZ"));
  Config config;
  config.secret = "tooshort-XYZ";
  CHECK(ValidateConfig(config).message() ==
        "secret: must be at least 16 characters (or unset, to use secret_file)");
  CHECK(Parse({"--secret=0123456789abcdef"}).status.ok());
}

TEST_CASE("base_path: empty or a clean absolute path") {
  for (const char* good : {"", "/otp", "/api/otp-v1"}) {
    Config config;
    config.base_path = good;
    CHECK_MESSAGE(ValidateConfig(config).ok(), good);
  }
  for (const char* bad : {"otp", "/otp/", "/", "//otp", "/o p", "/a\"b", "/<x>"}) {
    Config config;
    config.base_path = bad;
    CHECK_MESSAGE(Contains(ValidateConfig(config).message(), "base_path"), bad);
  }
  CHECK(Parse({"--base-path", "/otp"}).inv.config.base_path == "/otp");
}

TEST_CASE("ValidateConfig: the exact message format") {
  Config config;
  config.code_length = 11;
  const Status length = ValidateConfig(config);
  CHECK(length.IsInvalidArgument());
  CHECK(length.message() == "code_length = 11: must be between 4 and 10");
  config = Config();
  config.expose_phone = "partial";
  CHECK(ValidateConfig(config).message() == "expose_phone = 'partial': must be masked or full");
  config = Config();
  config.users = {{"abc", "+1"}};
  CHECK(ValidateConfig(config).message() ==
        "users: abc: phone '+1' is not a phone number (write it like +14155550123)");
  config.users = {{"ABC", "+12135554567"}, {"abc", "+12145554568"}};
  CHECK(Contains(ValidateConfig(config).message(), "'ABC' and 'abc' are the same user ID"));
}

// Ranges from the comments in config.h: each bound is accepted, one past it
// is refused with a message naming the key and the range.
TEST_CASE("integer ranges, at and past each bound") {
  struct Range {
    const char* key;
    int64_t min, max;
  };
  const Range ranges[] = {
      {"port", 0, 65535},
      {"threads", 1, 4096},
      {"max_body_bytes", 64, 1048576},
      {"read_timeout", 1, 300},
      {"write_timeout", 1, 300},
      {"keepalive_timeout", 0, 300},
      {"keepalive_max", 1, 100000},
      {"busy_timeout_ms", 1, 60000},
      {"purge_interval", 1, 86400},
      {"code_length", 4, 10},
      {"expiry", 10, 86400},
      {"max_attempts", 1, 100},
      {"expired_grace", 0, 604800},
      {"redis_port", 1, 65535},
      {"redis_db", 0, 1000000},
      {"redis_timeout_ms", 1, 60000},
      {"redis_connections", 1, 1024},
  };
  for (const Range& r : ranges) {
    std::string flag = std::string("--") + r.key + "=";
    for (char& c : flag) {
      if (c == '_') c = '-';
    }
    const std::string range =
        " must be between " + std::to_string(r.min) + " and " + std::to_string(r.max);
    CHECK_MESSAGE(Parse({flag + std::to_string(r.min)}).status.ok(), r.key);
    CHECK_MESSAGE(Parse({flag + std::to_string(r.max)}).status.ok(), r.key);
    for (const int64_t bad : {r.min - 1, r.max + 1}) {
      const Parsed p = Parse({flag + std::to_string(bad)});
      CHECK_MESSAGE(p.status.message() == flag + std::to_string(bad) + ": " + r.key + range,
                    p.status.message());
    }
  }
}

TEST_CASE("string keys: enumerations and forms, with the key in every message") {
  struct Case {
    const char* flag;
    bool ok;
    const char* message;
  };
  const Case cases[] = {
      {"--expose-phone=full", true, ""},
      {"--expose-phone=partial", false, "expose_phone must be masked or full"},
      {"--sms-backend=console", true, ""},
      {"--sms-backend=auto", true, ""},
      {"--sms-backend=sms", false,
       "sms_backend must be auto, console, twilio, vonage or a failover list"},
      {"--sms-backend=twilio", false, "sms_backend is twilio but twilio_account_sid is not set"},
      {"--log-level=debug", true, ""},
      {"--log-level=warn", true, ""},
      {"--log-level=error", true, ""},
      {"--log-level=verbose", false, "log_level must be one of debug, info, warn, error"},
      {"--log-level=INFO", false, "log_level must be one of"},
      {"--listen=::1", true, ""},
      {"--listen=0.0.0.0", true, ""},
      {"--listen=::", true, ""},
      {"--listen=localhost", false, "--listen=localhost: listen must be an IPv4 or IPv6"},
      {"--listen=[::1]", false, "listen must be an IPv4 or IPv6"},
      {"--listen=127.0.0.1 ", false, "listen must be an IPv4 or IPv6"},
      {"--listen=", false, "listen must be an IPv4 or IPv6"},
      {"--database=", false, "database must not be empty"},
      {"--message-template=Code: {code}", true, ""},
      {"--message-template=Code: {cod}", false, "message_template must contain {code}"},
  };
  for (const Case& c : cases) {
    const Parsed p = Parse({c.flag});
    CHECK_MESSAGE(p.status.ok() == c.ok, c.flag, ": ", p.status.ToString());
    if (!c.ok) CHECK_MESSAGE(Contains(p.status.message(), c.message), p.status.message());
  }
}

TEST_CASE("unknown flags and stray arguments are errors naming them") {
  const Parsed flag = Parse({"--cod-length=5"});
  CHECK(flag.status.IsInvalidArgument());
  CHECK(Contains(flag.status.message(), "--cod-length=5"));
  const Parsed stray = Parse({"serve", "extra"});
  CHECK(stray.status.IsInvalidArgument());
  CHECK(Contains(stray.status.message(), "extra"));
  const Parsed missing_value = Parse({"--port"});
  CHECK(Contains(missing_value.status.message(), "--port"));
}

TEST_CASE("subcommands, with options before and after them") {
  const Parsed serve = Parse({"serve", "--port=9100"});
  REQUIRE(serve.status.ok());
  CHECK(serve.inv.command == Command::kServe);
  CHECK(serve.inv.config.port == 9100);

  const Parsed add = Parse({"users", "add", "abc", "+1555", "--database", "x.db"});
  REQUIRE(add.status.ok());
  CHECK(add.inv.command == Command::kUsersAdd);
  CHECK(add.inv.args == std::vector<std::string>{"abc", "+1555", ""});
  const Parsed localized = Parse({"users", "add", "abc", "+1555", "--locale", "es-MX"});
  REQUIRE(localized.status.ok());
  CHECK(localized.inv.args == std::vector<std::string>{"abc", "+1555", "es-MX"});
  CHECK(add.inv.config.database == "x.db");

  const Parsed list = Parse({"--database", "x.db", "users", "list"});
  REQUIRE(list.status.ok());
  CHECK(list.inv.command == Command::kUsersList);
  CHECK(list.inv.args.empty());
  CHECK(list.inv.config.database == "x.db");

  const Parsed remove = Parse({"--port=9200", "users", "--database=y.db", "remove", "Bob"});
  REQUIRE(remove.status.ok());
  CHECK(remove.inv.command == Command::kUsersRemove);
  CHECK(remove.inv.args == std::vector<std::string>{"Bob"});
  CHECK(remove.inv.config.port == 9200);
  CHECK(remove.inv.config.database == "y.db");
}

TEST_CASE("subcommand errors") {
  const Parsed users = Parse({"users"});
  CHECK(users.status.IsInvalidArgument());
  CHECK(users.status.message() ==
        "otpd users: missing command; use 'otpd users add ID PHONE', 'otpd users remove ID', "
        "'otpd users list', 'otpd users import FILE' or 'otpd users export'");
  const Parsed add = Parse({"users", "add", "abc"});
  CHECK(add.status.IsInvalidArgument());
  CHECK(Contains(add.status.message(), "PHONE"));
  CHECK(Parse({"users", "frobnicate"}).status.IsInvalidArgument());
  CHECK(Parse({"users", "list", "extra"}).status.IsInvalidArgument());
}

TEST_CASE("--help and --version exit 0 with their text") {
  for (const char* flag : {"--help", "-h"}) {
    const Parsed p = Parse({flag}, {"OTPD_PORT=abc"});  // help needs no valid config
    REQUIRE(p.status.ok());
    CHECK(p.inv.command == Command::kExit);
    CHECK(p.inv.exit_code == 0);
    CHECK(Contains(p.inv.output, "Usage: otpd [OPTIONS] [SUBCOMMAND]"));
    CHECK(Contains(p.inv.output, "--code-length INT=6"));
    CHECK(Contains(p.inv.output, "[env OTPD_CODE_LENGTH]"));
    CHECK_FALSE(Contains(p.inv.output, ",--code_length"));  // the alias is not listed
  }
  const Parsed serve = Parse({"serve", "--help"}, {"OTPD_CONFIG=/nonexistent/otpd.conf"});
  REQUIRE(serve.status.ok());
  CHECK(serve.inv.command == Command::kExit);
  CHECK(serve.inv.output == Parse({"--help"}).inv.output);  // serve's options are all options
  CHECK(Contains(serve.inv.output, "--code-length INT=6"));
  const Parsed add = Parse({"users", "add", "-h"});
  CHECK(add.inv.command == Command::kExit);
  CHECK(Contains(add.inv.output, "Usage: otpd users add [OPTIONS] ID PHONE"));
  for (const char* flag : {"--version", "-V"}) {
    const Parsed p = Parse({flag});
    REQUIRE(p.status.ok());
    CHECK(p.inv.command == Command::kExit);
    CHECK(p.inv.exit_code == 0);
    CHECK(p.inv.output == "otpd " OTPD_VERSION "\n");
  }
}

TEST_CASE("argc 0 and a null argv mean no arguments") {
  Invocation inv;
  const std::vector<std::string> env = {"OTPD_DEFAULT_CONFIG="};
  CHECK(ParseInvocation(0, nullptr, &env, &inv).ok());
  CHECK(inv.command == Command::kServe);
}

TEST_CASE("no --config and no OTPD_CONFIG: the installed config when it exists") {
  TempDir dir;
  const std::string installed = WriteFile(dir, "otpd.conf", "code_length = 8\n");
  Parsed p = Parse({"users", "list"}, {"OTPD_DEFAULT_CONFIG=" + installed});
  REQUIRE(p.status.ok());
  CHECK(p.inv.config.code_length == 8);
  CHECK(p.inv.config.config_file == installed);
  // --config and OTPD_CONFIG (even empty) win over it.
  const std::string other = WriteFile(dir, "other.conf", "code_length = 7\n");
  p = Parse({"--config", other}, {"OTPD_DEFAULT_CONFIG=" + installed});
  CHECK(p.inv.config.code_length == 7);
  p = Parse({}, {"OTPD_DEFAULT_CONFIG=" + installed, "OTPD_CONFIG="});
  CHECK(p.inv.config.code_length == 6);
  CHECK(p.inv.config.config_file.empty());
  // Not there: the defaults, no error.
  p = Parse({}, {"OTPD_DEFAULT_CONFIG=" + dir.File("missing.conf")});
  REQUIRE(p.status.ok());
  CHECK(p.inv.config.config_file.empty());
  // There but broken: the error names it.
  const std::string broken = WriteFile(dir, "broken.conf", "code_length = 99\n");
  p = Parse({}, {"OTPD_DEFAULT_CONFIG=" + broken});
  CHECK_FALSE(p.status.ok());
  CHECK(p.status.message().find("code_length") != std::string::npos);
}

TEST_CASE("--help names the default config file") {
  const Parsed p = Parse({"--help"});
  CHECK(p.inv.output.find("default: /etc/otpd/otpd.conf when it exists") != std::string::npos);
}

// Tests run from the repository root.
TEST_CASE("otpd.conf.example parses as shipped and says nothing but the defaults") {
  const std::string text = ReadFile("otpd.conf.example");
  REQUIRE(text.size() > 1000);
  const Parsed p = Parse({"--config", "otpd.conf.example"});
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CheckSameSettings(p.inv.config, Config());
  CHECK(p.inv.config.users.empty());
  CHECK(p.inv.config.config_file == "otpd.conf.example");
}

TEST_CASE("otpd.conf.example uncommented: every key, each at its default") {
  const std::string text = Uncomment(ReadFile("otpd.conf.example"));
  const Parsed p = ParseFile(text);
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CheckSameSettings(p.inv.config, Config());
  const std::map<std::string, std::string> users = {{"abc", "+12015551111"},
                                                    {"john.doe", "+12025552222"}};
  CHECK(p.inv.config.users == users);
  CHECK(p.inv.config.templates.size() == 2);
  CHECK(p.inv.config.templates.at("es") ==
        "Tu c\xC3\xB3"
        "digo de {app} es {code}. Caduca en {minutes} minutos.");
  CHECK(p.inv.config.voice_templates.size() == 1);
  CHECK(p.inv.config.voice_templates.at("es") ==
        "Su c\xC3\xB3"
        "digo de {app} es {code}.");

  // The uncommented top-level keys are exactly the keys --help lists.
  std::set<std::string> in_file;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line) && line != "[users]";) {
    const std::string key = KeyOfLine(line);
    if (!key.empty()) in_file.insert(key);
  }
  const std::set<std::string> in_help = KeysInHelp();
  CHECK(in_help.size() == 103);
  CHECK(in_file == in_help);
}

TEST_CASE("synchronous is NORMAL or FULL") {
  CHECK(Parse({}).inv.config.synchronous == "NORMAL");
  CHECK(Parse({"--synchronous", "FULL"}).inv.config.synchronous == "FULL");
  const Parsed off = Parse({"--synchronous", "OFF"});
  CHECK_FALSE(off.status.ok());
  CHECK(off.status.message().find("synchronous") != std::string::npos);
}

TEST_CASE("tls_cert and tls_key come together") {
  CHECK(Parse({"--tls-cert", "c.pem", "--tls-key", "k.pem"}).status.ok());
  Parsed p = Parse({"--tls-cert", "c.pem"});
  CHECK(p.status.message().find("tls_cert and tls_key") != std::string::npos);
  p = Parse({"--tls-key", "k.pem"});
  CHECK(p.status.IsInvalidArgument());
}

TEST_CASE("A boolean key: true/false in the file, flag and environment; nothing else") {
  CHECK_FALSE(Config().conceal_unknown_users);
  Parsed p = ParseFile("conceal_unknown_users = true\n");
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.conceal_unknown_users);
  p = ParseFile("conceal_unknown_users = \"true\"\n");
  CHECK(p.status.message().find("must be true or false, without quotes") != std::string::npos);
  p = ParseFile("conceal_unknown_users = 1\n");
  CHECK(p.status.IsInvalidArgument());
  p = Parse({"--conceal-unknown-users", "true"});
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.conceal_unknown_users);
  p = Parse({"--conceal-unknown-users", "yes"});
  CHECK(p.status.message().find("must be true or false") != std::string::npos);
  p = Parse({}, {"OTPD_CONCEAL_UNKNOWN_USERS=true"});
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.conceal_unknown_users);
}

TEST_CASE("DescribeConfig: effective settings, secrets redacted, TOML that reads back") {
  TempDir dir;
  const std::string path = dir.File("c.conf");
  std::ofstream(path)
      << "secret = \"0123456789abcdef-secret\"\ntwilio_auth_token = \"tok-123\"\n"
         "twilio_account_sid = \"AC1\"\ntwilio_phone_number = \"+12065550000\"\n"
         "code_length = 8\napp_name = \"My \\\"App\\\"\"\n[users]\nabc = \"+12015551111\"\n";
  const Parsed p = Parse({"check-config", "--config", path});
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.command == Command::kCheckConfig);
  const std::string text = DescribeConfig(p.inv.config);
  CHECK(text.find("0123456789abcdef-secret") == std::string::npos);
  CHECK(text.find("tok-123") == std::string::npos);
  CHECK(text.find("secret = \"<redacted>\"\n") != std::string::npos);
  CHECK(text.find("twilio_auth_token = \"<redacted>\"\n") != std::string::npos);
  CHECK(text.find("secret_file = \"\"\n") != std::string::npos);
  CHECK(text.find("code_length = 8\n") != std::string::npos);
  CHECK(text.find("[users]\n\"abc\" = \"+12015551111\"\n") != std::string::npos);
  for (const char* name :
       {"secret", "twilio_auth_token", "redis_token", "hmac_secret", "api_keys"}) {
    CHECK_MESSAGE(IsSecretKey(name), name);
  }
  CHECK_FALSE(IsSecretKey("secret_file"));
  CHECK_FALSE(IsSecretKey("code_length"));
}

TEST_CASE("ChangedKeys names the keys that differ") {
  Config a, b;
  CHECK(ChangedKeys(a, b).empty());
  b.threads = 7;
  b.expose_phone = "full";
  b.users["x"] = "+12015551111";
  CHECK(ChangedKeys(a, b) == std::vector<std::string>{"threads", "expose_phone"});
}

TEST_CASE("operator commands parse with their arguments") {
  Parsed p = Parse({"users", "import", "users.csv"});
  REQUIRE(p.status.ok());
  CHECK(p.inv.command == Command::kUsersImport);
  CHECK(p.inv.args == std::vector<std::string>{"users.csv"});
  CHECK(Parse({"users", "export"}).inv.command == Command::kUsersExport);
  p = Parse({"backup", "/tmp/copy.db"});
  CHECK(p.inv.command == Command::kBackup);
  CHECK(p.inv.args == std::vector<std::string>{"/tmp/copy.db"});
  CHECK_FALSE(Parse({"backup"}).status.ok());
  CHECK_FALSE(Parse({"users", "import"}).status.ok());
}

TEST_CASE("commands: sms test and check-config; Twilio secrets redacted, backend resolved") {
  Parsed p = Parse({"sms", "test", "+12135554567"});
  REQUIRE(p.status.ok());
  CHECK(p.inv.command == Command::kSmsTest);
  CHECK(p.inv.args == std::vector<std::string>{"+12135554567", "sms", ""});  // no --provider
  p = Parse({"sms", "test", "+12135554567", "--provider", "vonage"});
  CHECK(p.inv.args == std::vector<std::string>{"+12135554567", "sms", "vonage"});
  p = Parse({"sms"});
  CHECK(p.status.IsInvalidArgument());
  CHECK(Contains(p.status.message(), "otpd sms test PHONE"));
  p = Parse({"check-config", "--twilio-api-key-secret=hidden-key-1"},
            {"TWILIO_AUTH_TOKEN=hidden-token-1", "TWILIO_ACCOUNT_SID=AC77",
             "TWILIO_PHONE_NUMBER=+12075550001", "OTPD_SECRET=hidden-secret-0123456789"});
  CHECK(p.status.IsInvalidArgument());  // API key secret without its SID
  CHECK(!Contains(p.status.message(), "hidden"));
  p = Parse({"check-config"},
            {"TWILIO_AUTH_TOKEN=hidden-token-1", "TWILIO_ACCOUNT_SID=AC77",
             "TWILIO_PHONE_NUMBER=+12075550001", "OTPD_SECRET=hidden-secret-0123456789"});
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.command == Command::kCheckConfig);
  const std::string text = DescribeConfig(p.inv.config);
  CHECK(Contains(text, "twilio_account_sid = \"AC77\"\n"));
  CHECK(Contains(text, "twilio_auth_token = \"<redacted>\"\n"));
  CHECK(Contains(text, "\nsecret = \"<redacted>\"\n"));
  CHECK(Contains(text, "twilio_api_key_secret = \"\"\n"));
  CHECK(Contains(text, "# sms_backend in effect: twilio\n"));
  CHECK(!Contains(text, "hidden-"));
  // --help lists no secret value either.
  CHECK(!Contains(Parse({"--help"}, {"TWILIO_AUTH_TOKEN=hidden-token-1"}).inv.output, "hidden-"));
}

// ---------------------------------------------------------------------------
// The Redis keys.

TEST_CASE("Redis config keys: the defaults of config.h") {
  const Parsed p = Parse({});
  REQUIRE(p.status.ok());
  const Config& c = p.inv.config;
  CHECK(c.store == "sqlite");
  CHECK(c.redis_url.empty());
  CHECK(c.redis_host == "127.0.0.1");
  CHECK(c.redis_port == 6379);
  CHECK(c.redis_db == 0);
  CHECK(c.redis_password.empty());
  CHECK(c.redis_prefix == "otpd:");
  CHECK(c.redis_fallback);
  CHECK(c.redis_timeout_ms == 1000);
  CHECK(c.redis_connections == 32);
  const std::string help = Parse({"--help"}).inv.output;
  CHECK(Contains(help, "Redis:"));
  CHECK(Contains(help, "--store TEXT=sqlite"));
  CHECK(Contains(help, "[env OTPD_REDIS_HOST or REDIS_HOST]"));
  CHECK(Contains(help, "[env OTPD_REDIS_PASSWORD or REDIS_PASSWORD]"));
  CHECK(Contains(help, "--redis-connections INT=32"));
}

TEST_CASE("Redis config keys: each source sets them; flag > env > file") {
  const std::string file =
      "store = \"sqlite\"\nredis_host = \"file-host\"\nredis_port = 7001\nredis_db = 1\n"
      "redis_password = \"file-pw\"\nredis_prefix = \"file:\"\nredis_fallback = false\n"
      "redis_timeout_ms = 100\nredis_connections = 2\n"
      "redis_url = \"redis://:file-pw@file-host:7001/1\"\n";
  Parsed p = ParseFile(file);
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.redis_host == "file-host");
  CHECK(p.inv.config.redis_port == 7001);
  CHECK(p.inv.config.redis_db == 1);
  CHECK(p.inv.config.redis_password == "file-pw");
  CHECK(p.inv.config.redis_prefix == "file:");
  CHECK_FALSE(p.inv.config.redis_fallback);
  CHECK(p.inv.config.redis_timeout_ms == 100);
  CHECK(p.inv.config.redis_connections == 2);
  CHECK(p.inv.config.redis_url == "redis://:file-pw@file-host:7001/1");

  const std::vector<std::string> env = {"OTPD_REDIS_HOST=env-host",
                                        "OTPD_REDIS_PORT=7002",
                                        "OTPD_REDIS_DB=2",
                                        "OTPD_REDIS_PASSWORD=env-pw",
                                        "OTPD_REDIS_PREFIX=env:",
                                        "OTPD_REDIS_FALLBACK=true",
                                        "OTPD_REDIS_TIMEOUT_MS=200",
                                        "OTPD_REDIS_CONNECTIONS=3",
                                        "OTPD_REDIS_URL=unix:///run/env.sock?db=2"};
  p = ParseFile(file, {}, env);
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.redis_host == "env-host");
  CHECK(p.inv.config.redis_port == 7002);
  CHECK(p.inv.config.redis_db == 2);
  CHECK(p.inv.config.redis_password == "env-pw");
  CHECK(p.inv.config.redis_prefix == "env:");
  CHECK(p.inv.config.redis_fallback);
  CHECK(p.inv.config.redis_timeout_ms == 200);
  CHECK(p.inv.config.redis_connections == 3);
  CHECK(p.inv.config.redis_url == "unix:///run/env.sock?db=2");

  p = ParseFile(
      file,
      {"--redis-host=flag-host", "--redis-port=7003", "--redis_db=3", "--redis-password=flag-pw",
       "--redis-prefix=flag:", "--redis-fallback=false", "--redis-timeout-ms=300",
       "--redis-connections=4", "--redis-url=", "--store=sqlite"},
      env);
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.redis_host == "flag-host");
  CHECK(p.inv.config.redis_port == 7003);
  CHECK(p.inv.config.redis_db == 3);
  CHECK(p.inv.config.redis_password == "flag-pw");
  CHECK(p.inv.config.redis_prefix == "flag:");
  CHECK_FALSE(p.inv.config.redis_fallback);
  CHECK(p.inv.config.redis_timeout_ms == 300);
  CHECK(p.inv.config.redis_connections == 4);
  CHECK(p.inv.config.redis_url.empty());
}

TEST_CASE("Redis config keys: the old service's REDIS_* names, and OTPD_REDIS_* over them") {
  const std::vector<std::string> old_names = {"REDIS_HOST=old-host", "REDIS_PORT=6390",
                                              "REDIS_DB=4", "REDIS_PASSWORD=old-pw"};
  Parsed p = ParseFile("redis_host = \"file-host\"\nredis_port = 7001\n", {}, old_names);
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.redis_host == "old-host");
  CHECK(p.inv.config.redis_port == 6390);
  CHECK(p.inv.config.redis_db == 4);
  CHECK(p.inv.config.redis_password == "old-pw");
  // Both orders in the environment: the OTPD_ name wins either way.
  for (const bool otpd_first : {true, false}) {
    std::vector<std::string> env = old_names;
    const std::vector<std::string> ours = {"OTPD_REDIS_HOST=new-host", "OTPD_REDIS_PORT=6391",
                                           "OTPD_REDIS_DB=5", "OTPD_REDIS_PASSWORD=new-pw"};
    env.insert(otpd_first ? env.begin() : env.end(), ours.begin(), ours.end());
    p = Parse({}, env);
    REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
    CHECK(p.inv.config.redis_host == "new-host");
    CHECK(p.inv.config.redis_port == 6391);
    CHECK(p.inv.config.redis_db == 5);
    CHECK(p.inv.config.redis_password == "new-pw");
  }
  p = Parse({"--redis-host=flag-host", "--redis-db=6"}, old_names);
  CHECK(p.inv.config.redis_host == "flag-host");
  CHECK(p.inv.config.redis_db == 6);
  // A bad old value names the old variable.
  p = Parse({}, {"REDIS_PORT=abc"});
  CHECK(p.status.message() == "REDIS_PORT=abc: redis_port must be an integer");
}

TEST_CASE("Redis config keys: validation messages name the key") {
  struct Case {
    std::vector<std::string> args;
    const char* message;  // "" when accepted
  };
  const Case cases[] = {
      {{"--store=sqlite"}, ""},
      {{"--store=memcached"}, "--store=memcached: store must be sqlite or redis"},
      {{"--store=SQLite"}, "store must be sqlite or redis"},
      {{"--store="}, "store must be sqlite or redis"},
      {{"--redis-host=redis.internal"}, ""},
      {{"--redis-host=10.1.2.3"}, ""},
      {{"--redis-host=::1"}, ""},
      {{"--redis-host="}, "--redis-host=: redis_host must be a host name or an IPv4 or IPv6"},
      {{"--redis-host=[::1]"}, "redis_host must be a host name"},
      {{"--redis-host=h:6379"}, "redis_host must be a host name"},
      {{"--redis-host=redis://h"}, "redis_host must be a host name"},
      {{"--redis-prefix=otpd:prod:"}, ""},
      {{"--redis-prefix={otpd}:"}, ""},
      {{"--redis-prefix=" + std::string(64, 'p')}, ""},
      {{"--redis-prefix=" + std::string(65, 'p')},
       "redis_prefix must be 1 to 64 printable ASCII characters without spaces"},
      {{"--redis-prefix="}, "redis_prefix must be 1 to 64 printable ASCII characters"},
      {{"--redis-prefix=a b"}, "redis_prefix must be 1 to 64 printable ASCII characters"},
      {{"--redis-prefix=a\tb"}, "redis_prefix must be 1 to 64 printable ASCII characters"},
      {{"--redis-prefix=caf\xC3\xA9:"}, "redis_prefix must be 1 to 64 printable ASCII"},
      {{"--redis-fallback=false"}, ""},
      {{"--redis-fallback=no"}, "--redis-fallback=no: redis_fallback must be true or false"},
      {{"--redis-url=redis://10.0.0.5:6379/0"}, ""},
      {{"--redis-url=unix:///run/redis/redis.sock?db=1"}, ""},
      {{"--redis-url=redis://h:0"}, "--redis-url: redis_url must have a port between 1 and 65535"},
      {{"--redis-url=rediss://h"}, "redis_url must not use rediss://"},
      {{"--redis-url=localhost:6379"}, "redis_url must start with redis:// or unix://"},
  };
  for (const Case& c : cases) {
    const Parsed p = Parse(c.args);
    const bool ok = c.message[0] == '\0';
    CHECK_MESSAGE(p.status.ok() == ok, c.args[0], ": ", p.status.ToString());
    if (!ok) CHECK_MESSAGE(Contains(p.status.message(), c.message), p.status.message());
  }
  Config config;
  config.store = "mysql";
  CHECK(ValidateConfig(config).message() == "store = 'mysql': must be sqlite or redis");
  config = Config();
  config.redis_prefix = "a b";
  CHECK(ValidateConfig(config).message() ==
        "redis_prefix = 'a b': must be 1 to 64 printable ASCII characters without spaces");
  config = Config();
  config.redis_url = "redis://:hunter2-pw@h:99999";
  CHECK(ValidateConfig(config).message() == "redis_url: must have a port between 1 and 65535");
  const Parsed file = ParseFile("\nredis_url = \"redis://:hunter2-pw@\"\n");
  CHECK(Contains(file.status.message(), ": redis_url: must name a host"));
  CHECK(Contains(file.status.message(), "(line 2, column 13)"));
  CHECK_FALSE(Contains(file.status.message(), "hunter2"));
  const Parsed fallback = ParseFile("redis_fallback = \"false\"\n");
  CHECK(Contains(fallback.status.message(), "must be true or false, without quotes"));
}

TEST_CASE("Redis config keys: passwords are never echoed in messages") {
  const std::string pw = "hunter2-XYZ";
  const std::vector<Parsed> parsed = {
      Parse({"--redis-url=redis://:" + pw + "@h:0"}),
      Parse({"--redis-url=redis://user:" + pw}),  // the '@' forgotten
      Parse({}, {"OTPD_REDIS_URL=rediss://:" + pw + "@h"}),
      Parse({}, {"OTPD_REDIS_URL=redis://:" + pw + "@h/db"}),
      ParseFile("redis_url = \"unix://:" + pw + "@relative.sock\"\n"),
      ParseFile("redis_url = 5\n"),
      ParseFile("redis_password = 12345\n"),
      Parse({"--redis-password=" + pw, "--redis-port=0"}),
      Parse({}, {"REDIS_PASSWORD=" + pw, "REDIS_PORT=x"}),
      Parse({"--redis-url=redis://:" + pw + "@h", "--redis-db=-1"}),
  };
  for (const Parsed& p : parsed) {
    CHECK(p.status.IsInvalidArgument());
    CHECK_MESSAGE(!Contains(p.status.message(), "hunter2"), p.status.message());
    CHECK_MESSAGE(!Contains(p.status.message(), "XYZ"), p.status.message());
  }
  CHECK(Contains(ParseFile("redis_password = 12345\n").status.message(),
                 "redis_password: must be a quoted string"));
  CHECK(Contains(parsed[2].status.message(), "OTPD_REDIS_URL: redis_url must not use rediss://"));
  CHECK(
      !Contains(Parse({"--help"}, {"REDIS_PASSWORD=" + pw, "OTPD_REDIS_URL=redis://:" + pw + "@h"})
                    .inv.output,
                "hunter2"));
  CHECK(IsSecretKey("redis_url"));
  CHECK(IsSecretKey("redis_password"));
  CHECK_FALSE(IsSecretKey("redis_host"));
  CHECK_FALSE(IsSecretKey("redis_prefix"));
}

TEST_CASE("Redis config keys: check-config shows redis_url with only the password redacted") {
  Parsed p = Parse({"check-config", "--redis-url=redis://:s3cr3t-pw@10.0.0.5:6379/0"},
                   {"REDIS_PASSWORD=other-s3cr3t"});
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  std::string text = DescribeConfig(p.inv.config);
  CHECK(Contains(text, "\nredis_url = \"redis://:<redacted>@10.0.0.5:6379/0\"\n"));
  CHECK(Contains(text, "\nredis_password = \"<redacted>\"\n"));
  CHECK(Contains(text, "\nstore = \"sqlite\"\n"));
  CHECK(Contains(text, "\nredis_host = \"127.0.0.1\"\n"));
  CHECK(Contains(text, "\nredis_port = 6379\n"));
  CHECK(Contains(text, "\nredis_prefix = \"otpd:\"\n"));
  CHECK(Contains(text, "\nredis_fallback = true\n"));
  CHECK(!Contains(text, "s3cr3t"));

  Config config;
  config.redis_url = "unix://alice:p%40ss@/run/redis.sock?db=2";
  text = DescribeConfig(config);
  CHECK(Contains(text, "\nredis_url = \"unix://alice:<redacted>@/run/redis.sock?db=2\"\n"));
  CHECK(Contains(text, "\nredis_password = \"\"\n"));
  config.redis_url = "redis://cache:6380/1";  // nothing to hide
  CHECK(Contains(DescribeConfig(config), "\nredis_url = \"redis://cache:6380/1\"\n"));
  config.redis_url = "redis://alice:s3cr3t";  // refused anyway: could hide a password anywhere
  text = DescribeConfig(config);
  CHECK(Contains(text, "\nredis_url = \"<redacted>\"\n"));
  CHECK(!Contains(text, "s3cr3t"));
  CHECK(Contains(DescribeConfig(Config()), "\nredis_url = \"\"\n"));

  // The booleans come out bare, so the text reads back as a config file.
  const Parsed back = ParseFile(DescribeConfig(Config()));
  REQUIRE_MESSAGE(back.status.ok(), back.status.ToString());
  CheckSameSettings(back.inv.config, Config());
  CHECK(back.inv.config.redis_fallback);
  CHECK_FALSE(back.inv.config.conceal_unknown_users);
}

TEST_CASE("RedisEndpointOf: redis_url when set, else the host, port, db and password keys") {
  Config config;
  RedisEndpoint endpoint;
  REQUIRE(RedisEndpointOf(config, &endpoint).ok());
  CHECK(endpoint.host == "127.0.0.1");
  CHECK(endpoint.port == 6379);
  CHECK(endpoint.db == 0);
  CHECK(endpoint.unix_path.empty());
  CHECK(endpoint.username.empty());
  CHECK(endpoint.password.empty());
  CHECK(endpoint.Describe() == "127.0.0.1:6379 db 0");

  config.redis_host = "::1";
  config.redis_port = 6380;
  config.redis_db = 3;
  config.redis_password = "pw-1";
  REQUIRE(RedisEndpointOf(config, &endpoint).ok());
  CHECK(endpoint.host == "::1");
  CHECK(endpoint.port == 6380);
  CHECK(endpoint.db == 3);
  CHECK(endpoint.password == "pw-1");
  CHECK(endpoint.Describe() == "[::1]:6380 db 3");

  config.redis_url = "redis://alice:pw%2F2@cache:7000/9";
  REQUIRE(RedisEndpointOf(config, &endpoint).ok());
  CHECK(endpoint.host == "cache");
  CHECK(endpoint.port == 7000);
  CHECK(endpoint.db == 9);
  CHECK(endpoint.username == "alice");
  CHECK(endpoint.password == "pw/2");

  config.redis_url = "unix:///run/redis.sock?db=2";
  REQUIRE(RedisEndpointOf(config, &endpoint).ok());
  CHECK(endpoint.unix_path == "/run/redis.sock");
  CHECK(endpoint.host.empty());
  CHECK(endpoint.password == "pw-1");  // a URL without one takes redis_password
  CHECK(endpoint.db == 2);
  config.redis_password.clear();
  REQUIRE(RedisEndpointOf(config, &endpoint).ok());
  CHECK(endpoint.password.empty());

  // From flags and the old environment names, through ParseInvocation.
  const Parsed p = Parse({"--redis-db=7"}, {"REDIS_HOST=old-host", "REDIS_PASSWORD=old-pw"});
  REQUIRE(p.status.ok());
  REQUIRE(RedisEndpointOf(p.inv.config, &endpoint).ok());
  CHECK(endpoint.Describe() == "old-host:6379 db 7");
  CHECK(endpoint.password == "old-pw");

  // Errors name the key, never the password.
  config = Config();
  config.redis_url = "redis://:pw-secret-9@h/x";
  Status status = RedisEndpointOf(config, &endpoint);
  CHECK(status.IsInvalidArgument());
  CHECK(Contains(status.message(), "redis_url: must have a db that is a non-negative integer"));
  CHECK(!Contains(status.message(), "pw-secret-9"));
  config = Config();
  config.redis_host = "ho st";
  CHECK(Contains(RedisEndpointOf(config, &endpoint).message(), "redis_host = 'ho st': must be"));
  config = Config();
  config.redis_port = 0;
  CHECK(RedisEndpointOf(config, &endpoint).message() ==
        "redis_port = 0: must be between 1 and 65535");
  config = Config();
  config.redis_db = -1;
  CHECK(RedisEndpointOf(config, &endpoint).message() ==
        "redis_db = -1: must be between 0 and 1000000");
}

#ifndef OTPD_REDIS
TEST_CASE("config store = redis: refused by a build without Redis, from every source") {
  CHECK_FALSE(BuiltWithRedis());
  const std::string message =
      "store = 'redis': this otpd was built without Redis; rebuild it with make REDIS=1";
  Config config;
  config.store = "redis";
  const Status status = ValidateConfig(config);
  CHECK(status.IsInvalidArgument());
  CHECK(status.message() == message);
  CHECK(Parse({"--store=redis"}).status.message() == message);
  CHECK(Parse({}, {"OTPD_STORE=redis"}).status.message() == message);
  CHECK(ParseFile("store = \"redis\"\n").status.message() == message);
  CHECK(Parse({"check-config", "--store=redis"}).status.message() == message);
  // A flag still repairs it.
  CHECK(Parse({"--store=sqlite"}, {"OTPD_STORE=redis"}).status.ok());
}
#else
TEST_CASE("config store = redis: accepted by a build with Redis") {
  CHECK(BuiltWithRedis());
  Config config;
  config.store = "redis";
  CHECK(ValidateConfig(config).ok());
  const Parsed p = Parse({"--store=redis", "--redis-url=redis://10.0.0.5:6379/0"});
  REQUIRE_MESSAGE(p.status.ok(), p.status.ToString());
  CHECK(p.inv.config.store == "redis");
  CHECK(Parse({}, {"OTPD_STORE=redis"}).status.ok());
  CHECK(ParseFile("store = \"redis\"\n").status.ok());
}
#endif

}  // namespace
}  // namespace otpd
