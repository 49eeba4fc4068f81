// FakeTwilio: an in-process HTTPS server on 127.0.0.1 that answers like
// Twilio's Messages and Calls endpoints, records every request and counts the TCP
// connections it accepted. Thread-safe.
#ifndef OTPD_TESTS_FAKE_TWILIO_H_
#define OTPD_TESTS_FAKE_TWILIO_H_

#include <otpd_httplib.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "test_tls.h"

namespace otpd {

// 201 body with a message sid, as Twilio answers.
extern const char kFakeTwilioCreated[];

// Twilio's error body: {"code":..,"message":..,"more_info":..,"status":..}.
std::string TwilioErrorJson(int code, int status);

struct Recorded {
  std::string method, path, authorization, content_type, body;
  std::map<std::string, std::string> form;
};

// A fake Twilio. `respond` answers request number n (0-based); by default
// every request gets 201. Records each request and each TCP connection
// (distinct client ports seen by the logger).
class FakeTwilio {
 public:
  using Responder = std::function<void(int n, httplib::Response& res)>;

  explicit FakeTwilio(const PemFiles& pem) : server_(pem.cert.c_str(), pem.key.c_str()) {
    server_.set_keep_alive_max_count(1000);
    server_.set_keep_alive_timeout(1);
    server_.set_tcp_nodelay(true);
    server_.Post(R"(/2010-04-01/Accounts/([^/]+)/Messages\.json)",
                 [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    // Voice: the Calls API answers like Messages (201 and a sid).
    server_.Post(R"(/2010-04-01/Accounts/([^/]+)/Calls\.json)",
                 [this](const httplib::Request& req, httplib::Response& res) { Handle(req, res); });
    server_.set_logger([this](const httplib::Request& req, const httplib::Response&) {
      std::lock_guard<std::mutex> lock(mu_);
      ports_.insert(req.remote_port);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    server_.wait_until_ready();
  }

  ~FakeTwilio() {
    Release();
    server_.stop();
    thread_.join();
  }

  void Respond(Responder r) {
    std::lock_guard<std::mutex> lock(mu_);
    responder_ = std::move(r);
  }
  // Handlers block until Release (or 10 s).
  void Hang() {
    std::lock_guard<std::mutex> lock(mu_);
    hang_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    hang_ = false;
    cv_.notify_all();
  }

  int port() const { return port_; }
  std::string base() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::vector<Recorded> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }
  size_t connections() {
    std::lock_guard<std::mutex> lock(mu_);
    return ports_.size();
  }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res) {
    Recorded r{req.method,
               req.path,
               req.get_header_value("Authorization"),
               req.get_header_value("Content-Type"),
               req.body,
               {}};
    for (const auto& [k, v] : req.params) r.form[k] = v;
    std::unique_lock<std::mutex> lock(mu_);
    const int n = static_cast<int>(requests_.size());
    requests_.push_back(r);
    if (hang_) cv_.wait_for(lock, std::chrono::seconds(10), [this] { return !hang_; });
    Responder responder = responder_;
    lock.unlock();
    res.status = 201;
    res.set_content(kFakeTwilioCreated, "application/json");
    if (responder) responder(n, res);
  }

  httplib::SSLServer server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool hang_ = false;
  Responder responder_;
  std::vector<Recorded> requests_;
  std::set<int> ports_;
};

}  // namespace otpd

#endif  // OTPD_TESTS_FAKE_TWILIO_H_
