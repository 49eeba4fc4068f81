// The daemon's decisions without a process: what a reload changes and
// reports, and which code store a start with Redis down ends up using.
#include "app/daemon.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "config/keys.h"
#include "core/log.h"
#include "otp_stack.h"

namespace otpd {
namespace {

TEST_CASE("ChooseStore: Redis when it answers, the fallback only when it is unreachable") {
  CHECK(ChooseStore(Status::OK(), true) == StoreChoice::kRedis);
  CHECK(ChooseStore(Status::OK(), false) == StoreChoice::kRedis);
  CHECK(ChooseStore(Status::Unavailable("connection refused"), true) ==
        StoreChoice::kSqliteFallback);
  CHECK(ChooseStore(Status::Unavailable("connection refused"), false) == StoreChoice::kRedisDown);
  // A refused password is not a Redis that is down: the start stops.
  CHECK(ChooseStore(Status::IOError("WRONGPASS invalid password"), true) == StoreChoice::kFail);
  CHECK(ChooseStore(Status::Internal("bad reply"), false) == StoreChoice::kFail);
}

// An OtpStack with the parts a reload touches.
struct Live {
  Live() : parts{stack.service.get(), stack.api.get(), stack.users.get(), Config(), ApiKeys()} {
    REQUIRE(NewSqliteRegionStore(stack.db, &regions).ok());
    pumping.reset(new PumpingGuard(regions.get(), &stack.clock, nullptr));
    parts.pumping = pumping.get();
  }
  ~Live() { SetLogLevel(LogLevel::kInfo); }
  OtpStack stack;
  LiveParts parts;
  std::unique_ptr<RegionStore> regions;
  std::unique_ptr<PumpingGuard> pumping;
};

TEST_CASE("a reload applies the live keys and names the changed restart keys") {
  Live live;
  Config next = live.parts.running;
  next.code_length = 8;
  next.expiry = 120;
  next.port = 9000;
  next.database = "/tmp/other.db";
  const ReloadReport report = Reload(Status::OK(), next, &live.parts);
  REQUIRE(report.status.ok());
  CHECK(live.stack.service->options().code_length == 8);
  CHECK(live.stack.service->options().expiry_ms == 120000);
  CHECK(report.restart == std::vector<std::string>{"port", "database"});
  CHECK(report.applied == std::vector<std::string>{"code_length", "expiry"});
  // The new length is what the next send uses.
  live.stack.Post("/send-code", R"({"user_id":"abc"})");
  CHECK(live.stack.sms.LastCode().size() == 8);
}

TEST_CASE("a reload that failed to read keeps the running config") {
  Live live;
  Config next = live.parts.running;
  next.code_length = 8;
  const ReloadReport report = Reload(
      Status::InvalidArgument("code_length = 11: must be between 4 and 10"), next, &live.parts);
  CHECK(report.status.code() == Status::Code::kInvalidArgument);
  CHECK(report.restart.empty());
  CHECK(live.stack.service->options().code_length == OtpOptions().code_length);
}

TEST_CASE("a reload re-syncs the file's [users], and a bad one keeps everything") {
  Live live;
  Config next = live.parts.running;
  next.config_file = "/etc/otpd/otpd.conf";
  next.users = {{"zed", "+12125553009"}};
  next.code_length = 7;
  ReloadReport report = Reload(Status::OK(), next, &live.parts);
  REQUIRE(report.status.ok());
  CHECK(report.users == 1);
  User user;
  REQUIRE(live.stack.users->Lookup("ZED", &user).ok());
  CHECK(user.phone == "+12125553009");

  next.users = {{"zed", "not a phone"}};
  next.code_length = 9;
  report = Reload(Status::OK(), next, &live.parts);
  CHECK_FALSE(report.status.ok());
  CHECK(live.stack.service->options().code_length == 7);
  REQUIRE(live.stack.users->Lookup("zed", &user).ok());
  CHECK(user.phone == "+12125553009");
}

// Everything a reload can change in the running parts, as text: the
// service's and the API's options, the log level, and the log file.
std::string PartsState(Live* live) {
  const OtpOptions& o = live->stack.service->options();
  std::string s =
      std::to_string(o.code_length) + "|" + std::to_string(o.expiry_ms) + "|" +
      std::to_string(o.max_attempts) + "|" + std::to_string(o.expired_grace_ms) + "|" + o.app_name +
      "|" + o.message_template + "|" + o.webotp_domain + "|" +
      std::to_string(o.send_limits.cooldown_ms) + "|" + std::to_string(o.send_limits.per_user) +
      "|" + std::to_string(o.send_limits.per_phone) + "|" + std::to_string(o.send_limits.per_ip) +
      "|" + std::to_string(o.send_limits.global) + "|" + std::to_string(o.max_failures) + "|" +
      std::to_string(o.failure_window_ms) + "|" + (o.conceal_unknown_users ? "conceal" : "404") +
      "|" + std::to_string(o.conceal_initial_wait_us) + "|";
  const PumpingOptions& p = live->pumping->options();
  s += std::string(p.enabled ? "pumping" : "off") + "|" + std::to_string(p.window_ms) + "|" +
       std::to_string(p.baseline_ms) + "|" + std::to_string(p.multiple) + "|" +
       std::to_string(p.min_sends) + "|" + std::to_string(p.conversion_below) + "|" +
       std::to_string(p.pause_ms) + "|" + std::to_string(p.prefix_digits) + "|";
  for (const std::string& c : o.allowed_country_codes) s += c + ",";
  for (const std::string& r : o.allowed_regions) s += r + ",";
  for (PhoneType t : o.refused_phone_types) s += std::string(PhoneTypeName(t)) + ",";
  for (const auto& [locale, text] : o.templates) s += locale + "=" + text + ",";
  const ChannelOptions& ch = o.channels;
  s += std::string("|") + (ch.voice.enabled ? "voice" : "") + (ch.whatsapp.enabled ? "wa" : "") +
       std::to_string(ch.voice.budget) + "," + std::to_string(ch.whatsapp.budget) + "," +
       ch.voice_template + "," + ch.voice_language + ",";
  for (const std::string& r : ch.voice.allowed_regions) s += r + ",";
  s += "|";
  for (const std::string& r : ch.whatsapp.allowed_regions) s += r + ",";
  const HttpApiOptions& a = live->stack.api->options();
  s += std::string("|") + (a.expose_full_phone ? "full" : "masked") + "|" + a.base_path + "|" +
       (a.api_keys_enabled ? "keys" : "") + "|";
  for (LogLevel level : {LogLevel::kDebug, LogLevel::kInfo, LogLevel::kWarn}) {
    s += LogEnabled(level) ? "1" : "0";
  }
  return s;
}

// A valid value for `key` that differs from the one in `c`.
void ChangeKey(const KeySpec& key, const std::string& log_file, Config* c) {
  if (key.IsBool()) {
    c->*key.flag = !(c->*key.flag);
  } else if (key.IsInteger()) {
    const int64_t now = key.i32 != nullptr ? c->*key.i32 : c->*key.i64;
    const int64_t other = now == key.min ? key.max : key.min;
    if (key.i32 != nullptr) c->*key.i32 = static_cast<int>(other);
    if (key.i64 != nullptr) c->*key.i64 = other;
  } else {
    static const std::map<std::string, std::string> kSamples = {
        {"expose_phone", "full"},
        {"log_level", "debug"},
        {"app_name", "Acme"},
        {"message_template", "Code {code}"},
        {"webotp_domain", "example.com"},
        {"allowed_country_codes", "44"},
        {"listen", "::1"},
        {"store", "redis"},
        {"allowed_regions", "GB"},
        {"refuse_phone_types", "toll_free"},
        {"channels", "sms,voice"},
        {"voice_allowed_regions", "GB"},
        {"whatsapp_allowed_regions", "GB"},
        {"voice_template", "Code {code}"},
        {"voice_language", "es-ES"},
    };
    const auto it = kSamples.find(key.name);
    c->*key.str = key.name == std::string("log_file") ? log_file
                  : it != kSamples.end()              ? it->second
                                                      : c->*key.str + "x";
  }
}

// stderr into a file for the life of the object, so a test reads the log.
class CapturedLog {
 public:
  explicit CapturedLog(const std::string& path) : path_(path), saved_(dup(2)) {
    REQUIRE(OpenLogFile(path).ok());
  }
  ~CapturedLog() {
    dup2(saved_, 2);
    close(saved_);
  }
  std::string Text() const {
    std::ifstream in(path_);
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
  }

 private:
  std::string path_;
  int saved_;
};

// The value of field `name` in the last log line with msg=`msg`.
std::string LoggedField(const std::string& log, const std::string& msg, const std::string& name) {
  std::string value;
  std::istringstream lines(log);
  for (std::string line; std::getline(lines, line);) {
    if (line.find("msg=" + msg) == std::string::npos) continue;
    const size_t at = line.find(" " + name + "=");
    value = at == std::string::npos ? "" : line.substr(at + name.size() + 2);
    value = value.substr(0, value.find(' '));
  }
  return value == "\"\"" ? "" : value;  // an empty value is logged as ""
}

TEST_CASE("reload applies exactly the live keys of the table, and logs what it applied") {
  TempDir dir;
  size_t live_keys = 0, restart_keys = 0;
  for (const KeySpec& key : Keys()) {
    const std::string name = key.name;
    CAPTURE(name);
    Live live;
    Config next = live.parts.running;
    ChangeKey(key, dir.File("otpd.log"), &next);
    const std::string before = PartsState(&live);
    ReloadReport report;
    std::string log;
    {
      CapturedLog captured(dir.File(std::string("reload-") + key.name + ".log"));
      report = Reload(Status::OK(), next, &live.parts);
      log = captured.Text();
    }
    // A new log_file takes the lines after it is opened, "reloaded" too.
    std::ifstream moved(dir.File("otpd.log"));
    std::stringstream moved_text;
    moved_text << moved.rdbuf();
    log += moved_text.str();
    REQUIRE(report.status.ok());
    const std::vector<std::string> just = {key.name};
    if (key.live) {
      ++live_keys;
      CHECK(report.applied == just);
      CHECK(report.restart.empty());
      CHECK(LoggedField(log, "reloaded", "applied") == key.name);
      CHECK(LoggedField(log, "\"changed settings take effect at the next restart\"", "keys") == "");
      // It took effect: the parts differ, or (log_file) the file was opened.
      if (key.name == std::string("log_file")) {
        CHECK(std::ifstream(dir.File("otpd.log")).good());
      } else {
        CHECK(PartsState(&live) != before);
      }
    } else {
      ++restart_keys;
      CHECK(report.applied.empty());
      CHECK(report.restart == just);
      CHECK(LoggedField(log, "reloaded", "applied") == "");
      CHECK(LoggedField(log, "\"changed settings take effect at the next restart\"", "keys") ==
            key.name);
      CHECK(PartsState(&live) == before);  // nothing of it took effect
      CHECK(ValueText(key, live.parts.running) != ValueText(key, next));
    }
  }
  CHECK(live_keys >= 10);
  CHECK(restart_keys >= 10);
}

TEST_CASE("a restart key changed back needs no restart; a live key stays applied") {
  Live live;
  Config next = live.parts.running;
  next.port = 9000;
  next.code_length = 8;
  REQUIRE(Reload(Status::OK(), next, &live.parts).restart == std::vector<std::string>{"port"});
  next.port = live.parts.running.port;
  const ReloadReport again = Reload(Status::OK(), next, &live.parts);
  CHECK(again.restart.empty());
  CHECK(again.applied.empty());
  CHECK(live.stack.service->options().code_length == 8);
}

std::string FileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// The key names in `text` between `from` and `to`: `backticked` or bare
// snake_case words.
std::set<std::string> NamesBetween(const std::string& text, const std::string& from,
                                   const std::string& to) {
  const size_t begin = text.find(from);
  REQUIRE(begin != std::string::npos);
  const size_t end = text.find(to, begin + from.size());
  REQUIRE(end != std::string::npos);
  std::set<std::string> names;
  std::string word;
  for (size_t i = begin + from.size(); i <= end; ++i) {
    const char c = i < end ? text[i] : ' ';
    if ((c >= 'a' && c <= 'z') || c == '_') {
      word += c;
      continue;
    }
    if (word.find('_') != std::string::npos || FindKey(word) != nullptr) names.insert(word);
    word.clear();
  }
  return names;
}

TEST_CASE("README and otpd.conf.example list the keys a reload applies: the table's") {
  std::set<std::string> live;
  for (const KeySpec& key : Keys()) {
    if (key.live) live.insert(key.name);
  }
  REQUIRE(live.size() >= 10);
  const std::string readme = FileText("README.md");
  CHECK(NamesBetween(readme, "(tests/daemon_test.cpp) -->", "The log line") ==
        std::set<std::string>(live.begin(), live.end()));
  CHECK(NamesBetween(FileText("otpd.conf.example"), "(reload-live-keys):", "at once") == live);
}

}  // namespace
}  // namespace otpd
