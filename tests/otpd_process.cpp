#include "otpd_process.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

extern char** environ;

namespace otpd {

namespace {

using SteadyClock = std::chrono::steady_clock;

// The phones of the users every black-box config defines.
const char* const kTestPhones[] = {"+12015551111", "+12025552222"};

std::string Binary() {
  const char* bin = getenv("OTPD_BIN");
  return bin && *bin ? bin : "./otpd";
}

// The test's environment with `added` ("NAME=value") in place of any entry
// of the same name. Unless `added` names one, no default config file: the
// machine's /etc/otpd/otpd.conf stays out of the tests.
std::vector<std::string> ChildEnvironment(std::vector<std::string> added) {
  if (std::none_of(added.begin(), added.end(),
                   [](const std::string& a) { return a.rfind("OTPD_DEFAULT_CONFIG=", 0) == 0; })) {
    added.push_back("OTPD_DEFAULT_CONFIG=");
  }
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; e++) {
    const std::string entry = *e;
    const std::string name = entry.substr(0, entry.find('=') + 1);  // "NAME="
    const bool replaced = std::any_of(added.begin(), added.end(), [&name](const std::string& a) {
      return a.compare(0, name.size(), name) == 0;
    });
    if (!replaced) env.push_back(entry);
  }
  env.insert(env.end(), added.begin(), added.end());
  return env;
}

// Everything exec needs, built before fork: the child of a threaded process
// (a test may run servers on threads) may only make async-signal-safe calls.
struct ExecArgs {
  std::string binary = Binary();
  std::vector<std::string> args, env;
  std::string out, err;  // "": keep the test's
  std::vector<char*> argv, envp;

  void Seal() {
    args.insert(args.begin(), binary);
    for (std::string& a : args) argv.push_back(&a[0]);
    for (std::string& e : env) envp.push_back(&e[0]);
    argv.push_back(nullptr);
    envp.push_back(nullptr);
  }
};

void Redirect(const std::string& path, int target) {
  if (path.empty()) return;
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) dup2(fd, target);
}

// In the forked child: redirects, leaves the test's other descriptors
// behind (a listening socket kept open in otpd would accept connections for
// a server the test already stopped) and execs. Never returns.
[[noreturn]] void Exec(const ExecArgs& e) {
  Redirect(e.out, 1);
  if (e.err == e.out) {
    if (!e.out.empty()) dup2(1, 2);  // one file, one offset: lines do not overwrite
  } else {
    Redirect(e.err, 2);
  }
  syscall(SYS_close_range, 3U, ~0U, 0U);
  execve(e.binary.c_str(), e.argv.data(), e.envp.data());
  _exit(127);
}

// Starts otpd with `args`; its stdout to the file `out`, stderr to `err`
// (the same path: one file for both).
pid_t Spawn(const std::vector<std::string>& args, const std::vector<std::string>& env,
            const std::string& out, const std::string& err) {
  ExecArgs e;
  e.args = args;
  e.env = ChildEnvironment(env);
  e.out = out;
  e.err = err;
  e.Seal();
  const pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) Exec(e);
  return pid;
}

int ExitCode(int status) {
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

// The exit code of `pid` once it exits; after `seconds` it is killed and
// reaped instead: -1.
int WaitForExit(pid_t pid, int seconds) {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(seconds);
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) != pid) {
    if (SteadyClock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, nullptr, 0);
      return -1;
    }
    usleep(5000);
  }
  return ExitCode(status);
}

bool IsSmsLog(const std::string& name) {
  return name == "sms.log" || (name.size() > 4 && name.compare(name.size() - 4, 4, ".sms") == 0);
}

// The codes and the phones in the SMS logs of `dir`.
void ReadSmsLogs(const TempDir& dir, std::set<std::string>* codes, std::set<std::string>* phones) {
  for (const auto& entry : std::filesystem::directory_iterator(dir.path())) {
    if (!IsSmsLog(entry.path().filename().string())) continue;
    std::istringstream lines(ReadFile(entry.path()));
    for (std::string line; std::getline(lines, line);) {
      const size_t space = line.find(' ');
      if (line.empty() || line[0] != '+' || space == std::string::npos) continue;
      const std::string code = FindCode(line.substr(space + 1));
      if (!code.empty()) codes->insert(code);
      phones->insert(line.substr(0, space));
    }
  }
}

// See ~OtpdProcess.
void CheckLogIsClean(const TempDir& dir, const std::string& log) {
  std::set<std::string> codes, phones(std::begin(kTestPhones), std::end(kTestPhones));
  ReadSmsLogs(dir, &codes, &phones);
  std::string secret = ReadFile(dir.File("otpd.secret"));
  if (!secret.empty() && secret.back() == '\n') secret.pop_back();
  std::istringstream lines(ReadFile(log));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind("to +", 0) == 0) continue;
    // Under journald each line starts with its priority: "<6>level=info ...".
    if (line.size() > 3 && line[0] == '<' && line[2] == '>') line.erase(0, 3);
    // Plain ifs: a check per line and code would be millions of assertions.
    if (line.rfind("ts=", 0) != 0 && line.rfind("level=", 0) != 0) {
      FAIL_CHECK("not logfmt: " << line);
    }
    for (const std::string& run : DigitRuns(line)) {
      if (codes.count(run) != 0) FAIL_CHECK("a code in the log: " << line);
    }
    for (const std::string& phone : phones) {
      if (line.find(phone) != std::string::npos) FAIL_CHECK("a phone in the log: " << line);
    }
    if (!secret.empty() && line.find(secret) != std::string::npos) {
      FAIL_CHECK("the secret: " << line);
    }
  }
}

// The last "otpd started" line of `log` ("" when none yet).
std::string StartLine(const std::string& log) {
  std::istringstream lines(log);
  std::string found;
  for (std::string line; std::getline(lines, line);) {
    if (line.find("msg=\"otpd started\"") != std::string::npos) found = line;
  }
  return found;
}

// The unquoted value of ` key=` in a log line ("" when absent).
std::string Field(const std::string& line, const std::string& key) {
  const size_t at = line.find(" " + key + "=");
  if (at == std::string::npos) return "";
  const size_t start = at + key.size() + 2;
  return line.substr(start, line.find(' ', start) - start);
}

}  // namespace

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFile(const std::string& path, const std::string& text) { std::ofstream(path) << text; }

std::string LastCode(const std::string& sms_log, const std::string& phone) {
  std::istringstream lines(ReadFile(sms_log));
  std::string line, code;
  while (std::getline(lines, line)) {
    if (line.rfind(phone + " ", 0) == 0) code = FindCode(line.substr(phone.size()));
  }
  return code;
}

std::set<std::string> TextedCodes(const TempDir& dir) {
  std::set<std::string> codes, phones;
  ReadSmsLogs(dir, &codes, &phones);
  return codes;
}

std::vector<std::string> DigitRuns(const std::string& text) {
  std::vector<std::string> runs;
  std::string run;
  for (char c : text + " ") {
    if (c >= '0' && c <= '9') {
      run.push_back(c);
    } else if (!run.empty()) {
      runs.push_back(run);
      run.clear();
    }
  }
  return runs;
}

CommandResult RunOtpd(const TempDir& dir, const std::vector<std::string>& args,
                      const std::vector<std::string>& env) {
  const std::string out = dir.File("cmd.out"), err = dir.File("cmd.err");
  CommandResult r;
  r.exit_code = WaitForExit(Spawn(args, env, out, err), 60);
  r.out = ReadFile(out);
  r.err = ReadFile(err);
  return r;
}

OtpdProcess::OtpdProcess(const TempDir& dir, const std::string& name,
                         const std::vector<std::string>& args, const std::vector<std::string>& env)
    : dir_(dir), log_(dir.File(name + ".log")) {
  pid_ = Spawn(args, env, log_, log_);
  WaitForStart();
}

OtpdProcess::~OtpdProcess() {
  Kill9();
  CheckLogIsClean(dir_, log_);
}

std::string OtpdProcess::ReadLog() const { return ReadFile(log_); }

httplib::Client OtpdProcess::Client() const {
  httplib::Client c("127.0.0.1", port_);
  c.set_connection_timeout(5);
  c.set_read_timeout(10);
  return c;
}

void OtpdProcess::Kill9() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  waitpid(pid_, nullptr, 0);
  pid_ = -1;
}

int OtpdProcess::Terminate() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  const int code = WaitForExit(pid_, 60);
  pid_ = -1;
  return code;
}

// otpd logs "otpd started ... port=N ... store=S" once it accepts
// connections.
void OtpdProcess::WaitForStart() {
  const auto deadline = SteadyClock::now() + std::chrono::seconds(60);
  std::string line;
  while (line.empty() && SteadyClock::now() < deadline) {
    line = StartLine(ReadLog());
    int status = 0;
    if (line.empty() && waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      FAIL("otpd exited at start: " << ReadLog());
    }
    if (line.empty()) usleep(10000);
  }
  port_ = atoi(Field(line, "port").c_str());
  store_ = Field(line, "store");
  if (port_ <= 0) Kill9();  // the destructor will not run: stop it here
  REQUIRE_MESSAGE(port_ > 0, (line.empty() ? "otpd did not start within 60 s: " : "no port: ")
                                 << ReadLog());
}

std::map<int, int> ConcurrentWrongGuesses(const std::vector<const OtpdProcess*>& servers,
                                          const std::string& user, int n, const std::string& code) {
  std::atomic<bool> go{false};
  std::atomic<int> ready{0};
  std::vector<int> statuses(static_cast<size_t>(n), 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < n; i++) {
    threads.emplace_back([&, i] {
      httplib::Client cli = servers[static_cast<size_t>(i) % servers.size()]->Client();
      ready++;
      while (!go) std::this_thread::yield();
      auto res = cli.Post("/verify-code", VerifyJson(user, WrongCode(code)), "application/json");
      statuses[static_cast<size_t>(i)] = res ? res->status : -1;
    });
  }
  while (ready < n) std::this_thread::yield();
  go = true;
  for (auto& t : threads) t.join();
  std::map<int, int> counts;
  for (int s : statuses) counts[s]++;
  return counts;
}

}  // namespace otpd
