// The real otpd binary in black-box tests: ./otpd (or $OTPD_BIN) run to
// completion as a command, or started as a server and spoken to over HTTP
// on the loopback port it picked, plus the files it leaves in a test's
// TempDir (SMS logs, its log).
//
// Every running otpd is checked when it goes: its log must be logfmt and
// hold no texted code, no full phone and not the secret (see ~OtpdProcess).
//
// The console SMS sender's log files are the ones named "sms.log" or
// "<anything>.sms", one message a line: "<E.164 phone> <message>".
//
// Not thread-safe, except where noted: a process is started, stopped and
// checked by one test thread.
#ifndef OTPD_TESTS_OTPD_PROCESS_H_
#define OTPD_TESTS_OTPD_PROCESS_H_

#include <otpd_httplib.h>
#include <sys/types.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "test_util.h"

namespace otpd {

// The whole file ("" when it cannot be read).
std::string ReadFile(const std::string& path);

// Replaces the file's contents with `text`.
void WriteFile(const std::string& path, const std::string& text);

// The last code texted to `phone`, from a console sender's log file ("" when
// none).
std::string LastCode(const std::string& sms_log, const std::string& phone);

// Every code texted in the SMS logs of `dir`.
std::set<std::string> TextedCodes(const TempDir& dir);

// Every maximal run of digits in `text`, in order: the candidates for a
// leaked code.
std::vector<std::string> DigitRuns(const std::string& text);

// What a command wrote and how it ended.
struct CommandResult {
  int exit_code = -1;  // 128 + N when killed by signal N; -1: still running after 60 s
  std::string out;     // stdout
  std::string err;     // stderr

  // Both, stdout first: for checks that care only whether a text was shown.
  std::string output() const { return out + err; }
};

// Runs otpd with `args` and `env` ("NAME=value") added to the environment,
// waits for it to exit and returns what it wrote (through the files
// cmd.out and cmd.err in `dir`). A run still going after 60 s is killed and
// reported with exit_code -1.
CommandResult RunOtpd(const TempDir& dir, const std::vector<std::string>& args,
                      const std::vector<std::string>& env = {});

// A running otpd server: started by the constructor, killed by PID at the
// latest by the destructor, which then checks its log.
class OtpdProcess {
 public:
  // Starts otpd with `args` (a server's: "serve", or a config without a
  // command) and `env` ("NAME=value") added to the environment, stdout and
  // stderr to `<name>.log` in `dir`, and returns once the log says "otpd
  // started" (it then accepts connections). Fails the test (REQUIRE) when
  // otpd exits first or has not started within 60 s; it is not left
  // running then.
  // REQUIRES: `dir` outlives this object.
  OtpdProcess(const TempDir& dir, const std::string& name, const std::vector<std::string>& args,
              const std::vector<std::string>& env = {});
  // SIGKILL if still running (Terminate() first for a clean stop), then
  // checks the log: every line logfmt, and none with a code or a phone
  // texted in any SMS log of `dir`, a test user's phone, or the secret in
  // `dir`/otpd.secret. The console sender's own "to <masked phone>: ..."
  // lines show codes on purpose (a development tool) and are skipped.
  // Failures are FAIL_CHECKs.
  ~OtpdProcess();
  OtpdProcess(const OtpdProcess&) = delete;
  OtpdProcess& operator=(const OtpdProcess&) = delete;

  // -1 once stopped.
  pid_t pid() const { return pid_; }
  // The port it listens on and the code store in effect ("sqlite",
  // "redis"), from the "otpd started" line.
  int port() const { return port_; }
  const std::string& store() const { return store_; }
  // The log file's path, and its contents so far.
  const std::string& log() const { return log_; }
  std::string ReadLog() const;
  // A client for 127.0.0.1:port(): connect timeout 5 s, read timeout 10 s.
  // Thread-safe.
  httplib::Client Client() const;

  // SIGKILL: no cleanup of any kind, as in a crash. No-op once stopped.
  void Kill9();
  // SIGTERM, then the exit code (128 + N when killed by signal N). One that
  // has not exited within 60 s is killed: -1. No-op once stopped: -1.
  int Terminate();

 private:
  void WaitForStart();

  const TempDir& dir_;
  std::string log_;
  pid_t pid_ = -1;
  int port_ = 0;
  std::string store_;
};

// Fires `n` wrong guesses at `user`'s `code` at once, spread over `servers`
// in turn, each on a connection of its own; returns the count per HTTP
// status (-1: no answer).
std::map<int, int> ConcurrentWrongGuesses(const std::vector<const OtpdProcess*>& servers,
                                          const std::string& user, int n, const std::string& code);

}  // namespace otpd

#endif  // OTPD_TESTS_OTPD_PROCESS_H_
