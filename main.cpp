// otpd: wiring only. Parse the command line and the config, set up logging
// and signals, and run the chosen command (src/app/admin_commands.h).
#include <cstdio>

#include "app/admin_commands.h"
#include "app/daemon.h"
#include "app/options.h"
#include "app/systemd_service.h"
#include "config/config.h"
#include "core/log.h"

namespace otpd {
namespace {

int Main(int argc, char** argv) {
  Status s = DisableCoreDumps();  // before any secret is read
  if (!s.ok()) fprintf(stderr, "otpd: warning: core dumps stay on: %s\n", s.message().c_str());
  Invocation inv;
  s = ParseInvocation(argc, argv, nullptr, &inv);
  if (!s.ok()) {
    fprintf(stderr, "otpd: %s\n", s.message().c_str());
    return 2;  // a bad command line or configuration
  }
  if (inv.command == Command::kExit) {
    fputs(inv.output.c_str(), inv.exit_code == 0 ? stdout : stderr);
    return inv.exit_code;
  }
  CommandEnv env;
  env.inv = &inv;
  env.reread = [argc, argv](Invocation* next) {
    return ParseInvocation(argc, argv, nullptr, next);
  };
  if (inv.command == Command::kCheckConfig) return RunCommand(env);
  if (inv.command == Command::kServe && !inv.config.log_file.empty()) {
    s = OpenLogFile(inv.config.log_file);
    if (!s.ok()) {
      fprintf(stderr, "otpd: log_file: %s\n", s.message().c_str());
      return 1;
    }
  }
  LogLevel level = LogLevel::kInfo;
  ParseLogLevel(inv.config.log_level, &level);
  SetLogLevel(level);
  BlockStopSignals();  // before any thread starts
  return RunCommand(env);
}

}  // namespace
}  // namespace otpd

int main(int argc, char** argv) { return otpd::Main(argc, argv); }
