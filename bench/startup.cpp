// Time from exec to the first answered request: starts `otpd ARGS... --port
// P` on a free loopback port and polls GET /healthz until it answers 200.
// Prints the milliseconds, then stops otpd with SIGTERM. `--free-port`
// prints a free loopback port instead.
#include <arpa/inet.h>
#include <otpd_httplib.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

namespace {

int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: startup OTPD [ARGS...] | startup --free-port\n");
    return 2;
  }
  if (std::string(argv[1]) == "--free-port") {
    printf("%d\n", FreePort());
    return 0;
  }
  const int port = FreePort();
  const std::string port_text = std::to_string(port);
  std::vector<char*> args(argv + 1, argv + argc);
  std::string flag = "--port";
  args.push_back(&flag[0]);
  args.push_back(const_cast<char*>(port_text.c_str()));
  args.push_back(nullptr);
  const auto start = std::chrono::steady_clock::now();
  pid_t pid = fork();
  if (pid == 0) {
    execv(args[0], args.data());
    _exit(127);
  }
  double ms = -1;
  for (int i = 0; i < 20000 && ms < 0; i++) {
    httplib::Client cli("127.0.0.1", port);
    auto res = cli.Get("/healthz");
    if (res && res->status == 200) {
      ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
               .count();
    } else {
      usleep(200);
    }
  }
  kill(pid, SIGTERM);
  waitpid(pid, nullptr, 0);
  if (ms < 0) return 1;
  printf("%.1f\n", ms);
  return 0;
}
