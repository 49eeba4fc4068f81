// Redis for tests: a real redis-server child on a loopback port, a tiny
// RESP client to look inside it, and the one server a test process shares.
//
// Compiled in every build and needs no hiredis: the client speaks RESP over
// a plain socket, so tests check what otpd's store left in Redis without
// going through the code under test. Everything talks to 127.0.0.1 only.
//
// TestStoreIsRedis() (test_util.h) says whether this run keeps codes in
// Redis. Not thread-safe except where noted: a RedisServer is started,
// stopped and restarted by one test thread. RedisCall is safe from any
// thread.
#ifndef OTPD_TESTS_REDIS_SERVER_H_
#define OTPD_TESTS_REDIS_SERVER_H_

#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "test_util.h"

namespace otpd {

struct RedisServerOptions {
  // The port to listen on; 0 picks a free one at the first start. Restart()
  // always comes back on the port the server had.
  int port = 0;
  // Append-only file with appendfsync always, so a stopped (or killed)
  // server restarts with every write it acknowledged. Off: nothing is kept.
  bool persistent = false;
  // Non-empty: --requirepass; url() and Call() then carry it.
  std::string password;
};

// What a RedisServer's RESP client got back.
struct RedisReply {
  enum class Type { kNone, kStatus, kError, kInteger, kString, kNil, kArray };
  Type type = Type::kNone;           // kNone: no answer (no connection, timeout, garbage)
  std::string str;                   // kStatus, kError, kString; kNone: what went wrong
  int64_t integer = 0;               // kInteger
  std::vector<RedisReply> elements;  // kArray

  bool ok() const { return type != Type::kNone && type != Type::kError; }
  // The reply as redis-cli would print it, on one line (for messages).
  std::string ToString() const;
};

// Sends one command to the Redis on 127.0.0.1:`port` on a fresh connection
// (after AUTH when `password` is non-empty) and returns the reply. Waits at
// most 5 s. Thread-safe.
RedisReply RedisCall(int port, const std::vector<std::string>& command,
                     const std::string& password = "");

// A TCP port on 127.0.0.1 that nothing listens on right now (bind to port 0
// and let go): for a server that a test starts later on purpose.
int FreeLoopbackPort();

// A redis-server child process, started by the constructor (throws
// std::runtime_error with the server's log when it does not answer, its
// data loaded, within 60 s) and stopped by PID in Stop() and the destructor. Its data
// directory is a TempDir that lives as long as the object, so a persistent
// server keeps its data across Restart(). $REDIS_SERVER_BIN overrides the
// redis-server found on $PATH.
class RedisServer {
 public:
  explicit RedisServer(const RedisServerOptions& options = RedisServerOptions());
  ~RedisServer();
  RedisServer(const RedisServer&) = delete;
  RedisServer& operator=(const RedisServer&) = delete;

  // Starts the server when it is not running; returns once it answers
  // with its data loaded.
  // Throws std::runtime_error when it cannot start.
  void Start();
  // SIGTERM and waitpid (SIGKILL after 60 s). No-op when not running. A
  // persistent server has fsynced every acknowledged write by then.
  void Stop();
  // Stop() then Start() on the same port.
  void Restart();
  // SIGSTOP: the server keeps its connections and port but answers nothing
  // (a hung Redis) until Resume() (SIGCONT). Stop() resumes it first.
  void Pause();
  void Resume();

  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }
  int port() const { return port_; }
  // "redis://127.0.0.1:PORT/0", or "redis://:PASSWORD@127.0.0.1:PORT/0".
  std::string url() const;
  // The same server on its Unix socket: "unix:///dir/redis.sock?db=0".
  std::string unix_url() const;
  const std::string& unix_path() const { return unix_path_; }
  const std::string& dir() const { return dir_.path(); }
  // The server's own log (stdout and stderr), for failure messages.
  std::string Log() const;

  // RedisCall on this server, with its password.
  RedisReply Call(const std::vector<std::string>& command) const;

 private:
  bool Launch(int port, std::string* error);
  bool WaitUntilReady(int port, std::string* error);

  RedisServerOptions options_;
  TempDir dir_;
  std::string unix_path_;
  int port_ = 0;
  pid_t pid_ = -1;
};

// One server per test process, started on first use and stopped at process
// exit; each user isolates itself with UniqueRedisPrefix(). Thread-safe.
const RedisServer& SharedTestRedis();

// "t<pid>-<n>:", a different n on every call. Thread-safe.
std::string UniqueRedisPrefix();

}  // namespace otpd

#endif  // OTPD_TESTS_REDIS_SERVER_H_
