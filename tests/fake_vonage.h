// FakeVonage: an in-process HTTPS server on 127.0.0.1 that answers like
// Vonage's SMS API (POST /sms/json), records every request and can hang or
// answer anything a test sets. Thread-safe.
#ifndef OTPD_TESTS_FAKE_VONAGE_H_
#define OTPD_TESTS_FAKE_VONAGE_H_

#include <otpd_httplib.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "test_tls.h"

namespace otpd {

// Vonage's answer for one message with `status` ("0" is success).
inline std::string VonageAnswer(const std::string& status, const std::string& id = "0C0000001") {
  if (status == "0") {
    return R"({"message-count":"1","messages":[{"to":"15551234567","message-id":")" + id +
           R"(","status":"0","remaining-balance":"15.5","message-price":"0.03","network":"1"}]})";
  }
  return R"({"message-count":"1","messages":[{"status":")" + status +
         R"(","error-text":"refused for the test"}]})";
}

class FakeVonage {
 public:
  using Responder = std::function<void(int n, httplib::Response& res)>;

  explicit FakeVonage(const PemFiles& pem) : server_(pem.cert.c_str(), pem.key.c_str()) {
    server_.set_keep_alive_max_count(1000);
    server_.set_tcp_nodelay(true);
    server_.Post("/sms/json", [this](const httplib::Request& req, httplib::Response& res) {
      std::map<std::string, std::string> form;
      for (const auto& [k, v] : req.params) form[k] = v;
      std::unique_lock<std::mutex> lock(mu_);
      const int n = static_cast<int>(requests_.size());
      requests_.push_back(form);
      if (hang_) cv_.wait_for(lock, std::chrono::seconds(10), [this] { return !hang_; });
      Responder responder = responder_;
      lock.unlock();
      res.status = 200;
      res.set_content(VonageAnswer("0"), "application/json");
      if (responder) responder(n, res);
    });
    port_ = server_.bind_to_any_port("127.0.0.1");
    thread_ = std::thread([this] { server_.listen_after_bind(); });
    server_.wait_until_ready();
  }
  ~FakeVonage() {
    Release();
    server_.stop();
    thread_.join();
  }
  void Respond(Responder r) {
    std::lock_guard<std::mutex> lock(mu_);
    responder_ = std::move(r);
  }
  void Hang() {
    std::lock_guard<std::mutex> lock(mu_);
    hang_ = true;
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    hang_ = false;
    cv_.notify_all();
  }
  std::string base() const { return "https://127.0.0.1:" + std::to_string(port_); }
  std::vector<std::map<std::string, std::string>> requests() {
    std::lock_guard<std::mutex> lock(mu_);
    return requests_;
  }

 private:
  httplib::SSLServer server_;
  std::thread thread_;
  int port_ = 0;
  std::mutex mu_;
  std::condition_variable cv_;
  bool hang_ = false;
  Responder responder_;
  std::vector<std::map<std::string, std::string>> requests_;
};

}  // namespace otpd

#endif  // OTPD_TESTS_FAKE_VONAGE_H_
