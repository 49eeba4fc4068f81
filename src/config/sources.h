// Where values come from and how they merge: the config file (TOML, read by
// toml++ under otpd's strict layer), the environment, and the flags the
// command line collected. Every source writes into one map key -> winning
// value, in the order file, environment, flags, so a later source replaces
// an earlier one. Only the winning value of a key is converted and checked
// (ApplySettings), so a flag can repair a bad value in the file; syntax
// errors, unknown keys and wrong TOML types in the file always fail.
#ifndef OTPD_CONFIG_SOURCES_H_
#define OTPD_CONFIG_SOURCES_H_

#include <map>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/keys.h"
#include "core/status.h"

namespace otpd {

enum class Origin { kFile, kEnv, kFlag };

// One key's winning value and where it came from.
struct Setting {
  std::string value;  // as text: "6", "true", "1,44"
  Origin origin = Origin::kFile;
  std::string where;  // file path, variable name, or "--flag"
  int line = 0;       // kFile only: where the value starts
  int column = 0;
};

using Settings = std::map<std::string, Setting>;  // key name -> winning value

// Reads the TOML file at `path`: its top-level keys into *settings, its
// [users] and [templates] tables into config->users and config->templates.
// Unknown keys (with a "did you mean"), values of the wrong TOML type,
// duplicates, other tables and TOML syntax errors are InvalidArgument
// "config file PATH: ... (line L, column C)". A key with a list (list in
// the table) may be an array of strings, joined with ",".
Status ReadConfigFile(const std::string& path, Settings* settings, Config* config);

// The same for the text of a file (`path` only names it in messages).
Status ReadConfigText(const std::string& path, const std::string& text, Settings* settings,
                      Config* config);

using EnvMap = std::map<std::string, std::string>;

// `env` ("NAME=value" strings), or the process's environment when null.
// The first of two equal names wins, as getenv.
EnvMap ReadEnvironment(const std::vector<std::string>* env);

// OTPD_<KEY> for every key, after the old service's name where there is
// one, so OTPD_TWILIO_AUTH_TOKEN beats TWILIO_AUTH_TOKEN. Other OTPD_*
// variables are ignored on purpose: other tools share the prefix.
void AddEnvSettings(const EnvMap& env, Settings* settings);

// Converts and checks each winning value into *config, in the table's
// order. InvalidArgument names the source and the key.
Status ApplySettings(const Settings& settings, Config* config);

}  // namespace otpd

#endif  // OTPD_CONFIG_SOURCES_H_
