// The handlers of the otpd executable's commands: serve, users
// add/remove/list/import/export, audit, backup, sms test, check-config.
// Their names, help and arguments are the table in config.h (Commands(),
// the way ninja lists its tools); this table gives each its handler.
// RunCommand runs the one the command line picked.
//
// Every handler writes to the streams in CommandEnv, so tests run them in
// process against a temporary database and read what they printed.
#ifndef OTPD_APP_ADMIN_COMMANDS_H_
#define OTPD_APP_ADMIN_COMMANDS_H_

#include <cstdio>
#include <iostream>
#include <string>
#include <vector>

#include "app/daemon.h"
#include "config/config.h"
#include "core/clock.h"
#include "otp/audit.h"
#include "otp/sms.h"
#include "otp/users.h"

namespace otpd {

// What a command reads and writes, and the clock `audit --since` counts from.
struct CommandEnv {
  const Invocation* inv = nullptr;
  std::istream* in = &std::cin;  // users import -
  FILE* out = stdout;
  FILE* err = stderr;
  Clock* clock = SystemClock();
  ConfigReader reread;  // serve: re-reads the config on SIGHUP
};

using CommandHandler = int (*)(const CommandEnv& env);

struct AdminCommand {
  Command command;
  CommandHandler run;
};

// A handler for every command of Commands(), in its order.
const std::vector<AdminCommand>& AdminCommands();

// Runs env.inv->command (not kExit) and returns the process's exit code:
// 0, 1 when the command failed (one line on env.err), 2 for a bad argument.
int RunCommand(const CommandEnv& env);

// The parts of the commands, for tests. Each returns the exit code.
// users import FILE ("-": env.in): every bad line is reported, and then
// nothing is written; otherwise all users are upserted in one transaction.
int ImportUsers(const std::string& path, UserDirectory* users, const CommandEnv& env);
// users add/remove/list/import/export, by env.inv->command.
int RunUsersCommand(UserDirectory* users, const CommandEnv& env);
// audit: args = {user, since}; tab-separated lines, oldest first.
int RunAuditCommand(AuditLog* audit, const CommandEnv& env);
// sms test PHONE through `sms` (made from the config by the handler).
int RunSmsTest(const Config& c, const std::string& phone, SmsSender* sms, const CommandEnv& env);
// The same on `channel` (otpd sms test --channel): a voice call reads the
// sample code 123456 with voice_template; WhatsApp sends the template with it.
int RunSmsTest(const Config& c, const std::string& phone, Channel channel, SmsSender* sms,
               const CommandEnv& env);

}  // namespace otpd

#endif  // OTPD_APP_ADMIN_COMMANDS_H_
