#include "redis_server.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <thread>

namespace otpd {

namespace {

// ---------------------------------------------------------------------------
// RESP over a plain socket

std::string Encode(const std::vector<std::string>& command) {
  std::string out = "*" + std::to_string(command.size()) + "\r\n";
  for (const std::string& arg : command) {
    out += "$" + std::to_string(arg.size()) + "\r\n" + arg + "\r\n";
  }
  return out;
}

// Reads RESP2 replies from a socket.
class RespReader {
 public:
  explicit RespReader(int fd) : fd_(fd) {}

  bool Read(RedisReply* reply) {
    std::string line;
    if (!Line(&line) || line.empty()) return Fail(reply, "connection closed or timed out");
    const std::string rest = line.substr(1);
    switch (line[0]) {
      case '+':
        reply->type = RedisReply::Type::kStatus;
        reply->str = rest;
        return true;
      case '-':
        reply->type = RedisReply::Type::kError;
        reply->str = rest;
        return true;
      case ':':
        reply->type = RedisReply::Type::kInteger;
        reply->integer = std::stoll(rest);
        return true;
      case '$':
        return Bulk(std::stoll(rest), reply);
      case '*':
        return Array(std::stoll(rest), reply);
      default:
        return Fail(reply, "not RESP: " + line);
    }
  }

 private:
  static bool Fail(RedisReply* reply, const std::string& why) {
    reply->type = RedisReply::Type::kNone;
    reply->str = why;
    return false;
  }

  bool Bulk(int64_t n, RedisReply* reply) {
    if (n < 0) {
      reply->type = RedisReply::Type::kNil;
      return true;
    }
    std::string data;
    if (!Bytes(static_cast<size_t>(n) + 2, &data)) return Fail(reply, "short bulk string");
    reply->type = RedisReply::Type::kString;
    reply->str = data.substr(0, static_cast<size_t>(n));
    return true;
  }

  bool Array(int64_t n, RedisReply* reply) {
    if (n < 0) {
      reply->type = RedisReply::Type::kNil;
      return true;
    }
    reply->type = RedisReply::Type::kArray;
    reply->elements.resize(static_cast<size_t>(n));
    for (RedisReply& element : reply->elements) {
      if (!Read(&element)) return Fail(reply, element.str);
    }
    return true;
  }

  bool Line(std::string* line) {
    for (;;) {
      const size_t end = buf_.find("\r\n");
      if (end != std::string::npos) {
        *line = buf_.substr(0, end);
        buf_.erase(0, end + 2);
        return true;
      }
      if (!Fill()) return false;
    }
  }

  bool Bytes(size_t n, std::string* out) {
    while (buf_.size() < n) {
      if (!Fill()) return false;
    }
    *out = buf_.substr(0, n);
    buf_.erase(0, n);
    return true;
  }

  bool Fill() {
    char chunk[16384];
    const ssize_t got = recv(fd_, chunk, sizeof chunk, 0);
    if (got <= 0) return false;
    buf_.append(chunk, static_cast<size_t>(got));
    return true;
  }

  int fd_;
  std::string buf_;
};

std::string ReadFileText(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ---------------------------------------------------------------------------
// The child process

// Everything exec needs, built before fork: the child of a threaded process
// may only make async-signal-safe calls.
struct ExecArgs {
  std::string binary;
  std::vector<std::string> args;
  std::string log;
  bool die_with_parent = false;
  pid_t parent = 0;
};

[[noreturn]] void ExecRedis(const ExecArgs& e, char* const* argv) {
  const int log = open(e.log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0600);
  if (log >= 0) {
    dup2(log, 1);
    dup2(log, 2);
  }
  const int null = open("/dev/null", O_RDONLY);
  if (null >= 0) dup2(null, 0);
  // Leave the test's sockets behind: a listening socket kept open in the
  // child would accept connections for a server the test already stopped.
  syscall(SYS_close_range, 3U, ~0U, 0U);
  // Should the test process die without stopping us, so do we.
  if (e.die_with_parent) {
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != e.parent) _exit(127);  // it died before prctl
  }
  execvp(e.binary.c_str(), argv);
  _exit(127);
}

bool Exited(pid_t pid) {
  int status = 0;
  return waitpid(pid, &status, WNOHANG) == pid;
}

}  // namespace

std::string RedisReply::ToString() const {
  switch (type) {
    case Type::kNone:
      return "(no answer: " + str + ")";
    case Type::kStatus:
      return str;
    case Type::kError:
      return "(error) " + str;
    case Type::kInteger:
      return "(integer) " + std::to_string(integer);
    case Type::kString:
      return "\"" + str + "\"";
    case Type::kNil:
      return "(nil)";
    case Type::kArray: {
      std::string out = "[";
      for (size_t i = 0; i < elements.size(); i++) {
        out += (i ? ", " : "") + elements[i].ToString();
      }
      return out + "]";
    }
  }
  return "?";
}

RedisReply RedisCall(int port, const std::vector<std::string>& command,
                     const std::string& password) {
  RedisReply reply;
  const int fd = ConnectToLoopback(port, 5);
  if (fd < 0) {
    reply.str = "cannot connect to 127.0.0.1:" + std::to_string(port);
    return reply;
  }
  std::string request = password.empty() ? "" : Encode({"AUTH", password});
  request += Encode(command);
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    close(fd);
    reply.str = "send failed";
    return reply;
  }
  RespReader reader(fd);
  if (!password.empty()) {
    RedisReply auth;
    if (!reader.Read(&auth) || !auth.ok()) {
      close(fd);
      return auth;
    }
  }
  reader.Read(&reply);
  close(fd);
  return reply;
}

int FreeLoopbackPort() {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw std::runtime_error("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    throw std::runtime_error("cannot bind a loopback port");
  }
  close(fd);
  return ntohs(addr.sin_port);
}

RedisServer::RedisServer(const RedisServerOptions& options)
    : options_(options), unix_path_(dir_.File("redis.sock")), port_(options.port) {
  Start();
}

RedisServer::~RedisServer() { Stop(); }

void RedisServer::Start() {
  if (pid_ > 0) return;
  std::string error;
  // A port picked here may be taken by someone else before redis-server
  // binds it; then try another. A port we were given is the only one.
  const int tries = port_ == 0 ? 5 : 1;
  for (int i = 0; i < tries; i++) {
    const int port = port_ != 0 ? port_ : FreeLoopbackPort();
    if (Launch(port, &error) && WaitUntilReady(port, &error)) {
      port_ = port;
      return;
    }
    Stop();
  }
  throw std::runtime_error("redis-server did not start: " + error + "\n" + Log());
}

bool RedisServer::Launch(int port, std::string* error) {
  const char* bin = getenv("REDIS_SERVER_BIN");
  ExecArgs e;
  e.binary = bin && *bin ? bin : "redis-server";
  // clang-format off
  e.args = {e.binary, "--daemonize", "no", "--bind", "127.0.0.1", "--port", std::to_string(port),
            "--dir", dir_.path(), "--unixsocket", unix_path_, "--unixsocketperm", "700",
            // On disk only what the test asks for.
            "--save", "", "--appendonly", options_.persistent ? "yes" : "no",
            "--appendfsync", "always"};
  // clang-format on
  if (!options_.password.empty()) {
    e.args.push_back("--requirepass");
    e.args.push_back(options_.password);
  }
  e.log = dir_.File("redis.log");
  // PR_SET_PDEATHSIG fires when the forking *thread* ends: only the main
  // thread lives as long as the process.
  e.die_with_parent = syscall(SYS_gettid) == getpid();
  std::vector<char*> argv;
  for (std::string& a : e.args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  e.parent = getpid();
  pid_ = fork();
  if (pid_ < 0) {
    *error = "fork failed";
    return false;
  }
  if (pid_ == 0) ExecRedis(e, argv.data());
  return true;
}

bool RedisServer::WaitUntilReady(int port, std::string* error) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (Exited(pid_)) {
      pid_ = -1;
      *error = "redis-server exited at start";
      return false;
    }
    // PING answers while an append-only file is still loading: wait for
    // the data too.
    RedisReply info = RedisCall(port, {"INFO", "persistence"}, options_.password);
    if (info.type == RedisReply::Type::kString && info.str.find("loading:0") != std::string::npos) {
      return true;
    }
    *error = info.ToString();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  *error = "not ready within 60 s: " + *error;
  return false;
}

void RedisServer::Stop() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  kill(pid_, SIGCONT);  // a paused server acts on SIGTERM only once resumed
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (!Exited(pid_)) {
    if (std::chrono::steady_clock::now() >= deadline) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  pid_ = -1;
}

void RedisServer::Restart() {
  Stop();
  Start();
}

void RedisServer::Pause() {
  if (pid_ > 0) kill(pid_, SIGSTOP);
}

void RedisServer::Resume() {
  if (pid_ > 0) kill(pid_, SIGCONT);
}

std::string RedisServer::url() const {
  const std::string auth = options_.password.empty() ? "" : ":" + options_.password + "@";
  return "redis://" + auth + "127.0.0.1:" + std::to_string(port_) + "/0";
}

std::string RedisServer::unix_url() const {
  const std::string auth = options_.password.empty() ? "" : ":" + options_.password + "@";
  return "unix://" + auth + unix_path_ + "?db=0";
}

std::string RedisServer::Log() const { return ReadFileText(dir_.File("redis.log")); }

RedisReply RedisServer::Call(const std::vector<std::string>& command) const {
  return RedisCall(port_, command, options_.password);
}

const RedisServer& SharedTestRedis() {
  static RedisServer server;
  return server;
}

std::string UniqueRedisPrefix() {
  static std::atomic<int> counter{0};
  return "t" + std::to_string(getpid()) + "-" + std::to_string(++counter) + ":";
}

}  // namespace otpd
