#include "otp_stack.h"

#include <otpd_httplib.h>

#include <stdexcept>

#ifdef OTPD_REDIS
#include "core/redis_url.h"
#include "redis_server.h"
#endif

namespace otpd {

namespace {
void Check(const Status& s) {
  if (!s.ok()) throw std::runtime_error(s.ToString());
}

// The code store under test: SQLite in `db`, or with OTPD_TEST_STORE=redis
// the shared test Redis under a prefix of its own.
void OpenStorage(const OtpOptions& options, std::shared_ptr<SqliteDb> db, Clock* clock,
                 std::unique_ptr<Storage>* storage) {
  if (!TestStoreIsRedis()) return Check(NewSqliteStorage(db, clock, storage));
#ifdef OTPD_REDIS
  RedisOptions redis;
  Check(ParseRedisUrl(SharedTestRedis().url(), &redis.endpoint));
  redis.prefix = UniqueRedisPrefix();
  redis.expired_grace_ms = options.expired_grace_ms;
  Check(NewRedisStorage(redis, clock, storage));
#else
  (void)options;
  throw std::runtime_error("OTPD_TEST_STORE=redis needs the Redis build: make REDIS=1");
#endif
}
}  // namespace

OtpStack::OtpStack(const OtpOptions& options, const HttpApiOptions& api_options,
                   Transport transport) {
  SqliteOptions db_options;
  db_options.path = dir.File("otpd.db");
  Check(OpenSqliteDb(db_options, &db));
  OpenStorage(options, db, &clock, &storage);
  Check(NewSqliteUserDirectory(db, &users));
  Check(NewSqliteAuditLog(db, &clock, &audit));
  Check(users->Upsert("abc", "+12015551111"));
  service.reset(new OtpService(options, storage.get(), users.get(), &failing, &clock, &random,
                               &hasher, audit.get(), &metrics, &delivery_metrics));
  api.reset(new HttpApi(service.get(), api_options));
  if (transport == Transport::kHttp) {
    HttpServerOptions server_options;
    server_options.port = 0;
    server_options.threads = 8;
    server.reset(new HttpServer(server_options, api.get()));
    Check(server->Bind());
    server_thread = std::thread([this] { server->Run(); });
  }
}

OtpStack::~OtpStack() {
  if (server) {
    server->Stop();
    server_thread.join();
  }
}

HttpAnswer OtpStack::Request(const std::string& method, const std::string& path,
                             const std::string& body) {
  if (!server) return api->Handle(HttpRequest{method, path, body, "127.0.0.1"});
  httplib::Client cli("127.0.0.1", server->port());
  httplib::Result res = method == "POST"     ? cli.Post(path.c_str(), body, "application/json")
                        : method == "DELETE" ? cli.Delete(path.c_str())
                                             : cli.Get(path.c_str());
  if (!res) throw std::runtime_error("no answer over HTTP: " + httplib::to_string(res.error()));
  HttpAnswer a;
  a.status = res->status;
  a.body = res->body;
  for (const auto& h : res->headers) a.headers.emplace_back(h.first, h.second);
  return a;
}

std::string HeaderValue(const HttpAnswer& a, const std::string& name) {
  for (const auto& h : a.headers) {
    if (h.first == name) return h.second;
  }
  return "";
}

HttpAnswer OtpStack::Post(const std::string& path, const std::string& body) {
  return Request("POST", path, body);
}

HttpAnswer OtpStack::Get(const std::string& path) { return Request("GET", path); }

std::string OtpStack::SendAndRead(const std::string& user) {
  HttpAnswer a = Post("/send-code", "{\"user_id\":\"" + user + "\"}");
  if (a.status != 200) throw std::runtime_error("send-code answered " + a.body);
  return sms.LastCode();
}

}  // namespace otpd
