// The command line (config.h: ParseInvocation): CLI11 reads the flags and
// the command; the flags join the other sources (sources.h) as the last and
// strongest. CLI11's own config-file reader is not used: measured on
// Debian's CLI11 2.1.2 it lets the file win over environment variables and
// misreads quoting (see sources.cpp for what reads the file instead).
#include <CLI/CLI.hpp>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "config/config_path.h"
#include "config/credentials.h"
#include "config/keys.h"
#include "config/sources.h"

#ifndef OTPD_VERSION
#define OTPD_VERSION "0.0.0"
#endif

namespace otpd {

const std::vector<CommandSpec>& Commands() {
  static const std::vector<CommandSpec> kCommands = {
      {Command::kServe, nullptr, "serve", "Answer HTTP requests (the default command)", {}},
      {Command::kUsersAdd,
       "users",
       "add",
       "Add a user with a phone number",
       {{"ID", "User ID (case-insensitive)"},
        {"PHONE", "Phone number: +14155550123, or written as \"+1 (415) 555-0123\""},
        {"--locale", "Language tag choosing the SMS template: es, pt-BR; unset: kept"}}},
      {Command::kUsersRemove,
       "users",
       "remove",
       "Remove a user",
       {{"ID", "User ID (case-insensitive)"}}},
      {Command::kUsersList, "users", "list", "List the users, their phones and locales", {}},
      {Command::kUsersImport,
       "users",
       "import",
       "Add or update users from a CSV file (user_id,phone,locale), all or nothing",
       {{"FILE", "CSV file, or - for standard input"}}},
      {Command::kUsersExport,
       "users",
       "export",
       "Print every user as CSV (user_id,phone,locale)",
       {}},
      {Command::kCheckConfig,
       nullptr,
       "check-config",
       "Validate the configuration and print the effective settings, secrets redacted",
       {}},
      {Command::kBackup,
       nullptr,
       "backup",
       "Copy the live database to FILE, consistently",
       {{"FILE", "Where to write the copy (must not exist)"}}},
      {Command::kSmsTest,
       "sms",
       "test",
       "Send one test message with the configured backend and print the answer",
       {{"PHONE", "Phone number: +14155550123, or written as \"+1 (415) 555-0123\""},
        {"--channel",
         "sms, voice (a call reading the sample code 123456) or whatsapp (the template with "
         "123456)",
         "sms"},
        {"--provider",
         "Only this provider of sms_backend: twilio or vonage (its settings "
         "must be complete); unset: the configured backend, failover included"}}},
      {Command::kAudit,
       nullptr,
       "audit",
       "Print the audit trail of sends and verifications",
       {{"--user", "Only this user ID (case-insensitive)"},
        {"--since",
         "From this UTC time (2026-11-24T01:02:03Z), date (2026-11-24) or age (30m, 12h, 7d); "
         "default 24h",
         "24h"}}},
      {Command::kRegionsList,
       "regions",
       "list",
       "List regions and number prefixes: window sends, conversion, baseline, pauses "
       "(also plain 'otpd regions')",
       {}},
      {Command::kRegionsPause,
       "regions",
       "pause",
       "Refuse sends to a region or prefix (429) for a while",
       {{"KEY", "Region (JM) or prefix (+1-876: calling code, '-', national digits)"},
        {"--for", "Seconds; default pumping_pause"}}},
      {Command::kRegionsUnpause,
       "regions",
       "unpause",
       "Lift the pause of a region or prefix; counting starts over",
       {{"KEY", "Region (JM) or prefix (+1-876)"}}},
  };
  return kCommands;
}

namespace {

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
  // Parallel to Commands(): each command's CLI11 app and its arguments.
  std::vector<CLI::App*> commands = std::vector<CLI::App*>(Commands().size());
  std::vector<std::vector<std::string>> args =
      std::vector<std::vector<std::string>>(Commands().size());
  std::map<std::string, CLI::App*> groups;  // "users", "sms"
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

// "otpd users: missing command; use 'otpd users add ID PHONE', ... or
// 'otpd users export'", from the table.
std::string MissingCommand(const std::string& group) {
  std::vector<std::string> uses;
  for (const CommandSpec& spec : Commands()) {
    if (spec.group == nullptr || group != spec.group) continue;
    std::string use = "'otpd " + group + " " + spec.name;
    for (const CommandArg& arg : spec.args) {
      if (arg.name[0] != '-') use += std::string(" ") + arg.name;
    }
    uses.push_back(use + "'");
  }
  std::string out = "otpd " + group + ": missing command; use ";
  for (size_t i = 0; i < uses.size(); ++i) {
    out += (i == 0 ? "" : i + 1 == uses.size() ? " or " : ", ") + uses[i];
  }
  return out;
}

CLI::App* GroupApp(CommandLine* cl, const char* group, const char* footer) {
  CLI::App*& app = cl->groups[group];
  if (app == nullptr) {
    const std::string name = group;
    app = cl->app.add_subcommand(group, name == "users"     ? "Edit the users in the database"
                                        : name == "regions" ? "SMS-pumping pauses by region"
                                                            : "Check the SMS backend");
    app->require_subcommand(0, 1)->footer(footer);
  }
  return app;
}

void AddCommands(CommandLine* cl) {
  const char kGlobal[] =
      "Every otpd option (otpd --help) may also come before or after the command.";
  cl->app.require_subcommand(0, 1);
  for (size_t i = 0; i < Commands().size(); ++i) {
    const CommandSpec& spec = Commands()[i];
    CLI::App* parent = spec.group == nullptr ? &cl->app : GroupApp(cl, spec.group, kGlobal);
    CLI::App* app = parent->add_subcommand(spec.name, spec.help);
    cl->args[i].resize(spec.args.size());
    for (size_t j = 0; j < spec.args.size(); ++j) {
      CLI::Option* opt = app->add_option(spec.args[j].name, cl->args[i][j], spec.args[j].help);
      if (spec.args[j].name[0] != '-') opt->required();
    }
    if (spec.command != Command::kServe) app->footer(kGlobal);
    cl->commands[i] = app;
  }
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
      "the option name with underscores: code_length = 6. --code_length works as a flag too.\n"
      "Exit codes: 0 success, 1 runtime failure (database, network, SMS provider, files),\n"
      "2 bad command line or configuration. See otpd(8) and otpd.conf(5).");
  cl->config_option =
      app.add_option("--config", cl->config_path,
                     std::string("TOML config file, see otpd.conf.example; default: ") +
                         kDefaultConfigPath + " when it exists [env OTPD_CONFIG]");
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
    inv->output = cl->commands[0]->parsed() ? cl->app.get_formatter()->make_help(
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

// The command the line named (serve when none), and its arguments, an
// option's default where it was not given.
Status ReadCommand(const CommandLine& cl, Invocation* inv) {
  inv->command = Command::kServe;
  for (size_t i = 0; i < Commands().size(); ++i) {
    if (!cl.commands[i]->parsed()) continue;
    const CommandSpec& spec = Commands()[i];
    inv->command = spec.command;
    inv->args = cl.args[i];
    for (size_t j = 0; j < spec.args.size(); ++j) {
      if (inv->args[j].empty() && spec.args[j].fallback != nullptr) {
        inv->args[j] = spec.args[j].fallback;
      }
    }
    return Status::OK();
  }
  for (const auto& [group, app] : cl.groups) {
    if (!app->parsed()) continue;
    // `otpd regions` alone lists; the other groups need their command.
    if (group == "regions") {
      inv->command = Command::kRegionsList;
      inv->args.clear();
      return Status::OK();
    }
    return Status::InvalidArgument(MissingCommand(group));
  }
  return Status::OK();
}

void AddFlagSettings(const CommandLine& cl, Settings* settings) {
  for (size_t i = 0; i < Keys().size(); ++i) {
    if (cl.options[i]->count() == 0) continue;
    const char* name = Keys()[i].name;
    (*settings)[name] = Setting{cl.values[i], Origin::kFlag, "--" + Dashed(name), 0, 0};
  }
}

// --config (even empty, which means "no file") beats OTPD_CONFIG; without
// either, the installed config when it exists (config_path.h).
std::string ConfigPath(const CommandLine& cl, const EnvMap& env) {
  if (cl.config_option->count() > 0) return cl.config_path;
  const auto it = env.find("OTPD_CONFIG");
  if (it != env.end()) return it->second;
  const auto override_path = env.find("OTPD_DEFAULT_CONFIG");
  return DefaultConfigFile(override_path == env.end() ? nullptr : override_path->second.c_str());
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
  const auto credentials = env_map.find("CREDENTIALS_DIRECTORY");
  if (credentials != env_map.end()) {
    status = ReadSystemdCredentials(credentials->second, &inv->config);
    if (!status.ok()) return status;
  }
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

}  // namespace otpd
