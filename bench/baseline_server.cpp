// The ceiling of the HTTP layer: a minimal cpp-httplib server configured as
// otpd configures it (TCP_NODELAY, the same worker pool, keep-alive and
// backlog), answering a POST with a tiny JSON body. Prints its port.
#include <otpd_httplib.h>
#include <sys/socket.h>

#include <cstdio>
#include <cstdlib>

namespace {

class ListeningServer : public httplib::Server {
 public:
  int listening_fd() const { return svr_sock_; }
};

}  // namespace

int main(int argc, char** argv) {
  const size_t threads = argc > 1 ? static_cast<size_t>(atoi(argv[1])) : 128;
  ListeningServer server;
  server.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  server.set_tcp_nodelay(true);
  server.set_keep_alive_max_count(100);
  server.set_keep_alive_timeout(5);
  server.set_read_timeout(5, 0);
  server.set_write_timeout(5, 0);
  server.Post(".*", [](const httplib::Request&, httplib::Response& res) {
    res.set_content(R"({"ok":true})", "application/json");
  });
  const int port = server.bind_to_any_port("127.0.0.1");
  if (port <= 0 || ::listen(server.listening_fd(), 1024) != 0) return 1;
  printf("%d\n", port);
  fflush(stdout);
  server.listen_after_bind();
  return 0;
}
