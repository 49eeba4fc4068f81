#include "test_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <thread>

namespace otpd {

Status SeededRandom::Fill(uint8_t* buf, size_t n) {
  for (size_t i = 0; i < n; i++) {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    buf[i] = static_cast<uint8_t>(z ^ (z >> 31));
  }
  return Status::OK();
}

Status FakeSmsSender::Send(const std::string& to, const std::string& body, SmsReceipt* receipt) {
  std::lock_guard<std::mutex> lock(mu_);
  messages_.push_back({to, body});
  receipt->provider_id = "fake-" + std::to_string(messages_.size());
  return Status::OK();
}

bool FakeSmsSender::Supports(Channel channel) const {
  return channel != Channel::kVoice || voice_supported.load();
}

Status FakeSmsSender::SendCode(const std::string& to, const CodeMessage& message,
                               SmsReceipt* receipt) {
  if (message.channel == Channel::kSms) return Send(to, message.text, receipt);
  std::lock_guard<std::mutex> lock(mu_);
  // The code itself as the body's first digits, so LastCode reads it.
  messages_.push_back({to, message.code + " " + message.text, message.channel, message.locale});
  receipt->provider_id = "fake-" + std::to_string(messages_.size());
  return Status::OK();
}

std::vector<FakeSmsSender::Message> FakeSmsSender::messages() {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_;
}

size_t FakeSmsSender::count() {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_.size();
}

std::string FakeSmsSender::LastCode() {
  std::lock_guard<std::mutex> lock(mu_);
  return messages_.empty() ? std::string() : FindCode(messages_.back().body);
}

Status FailingSmsSender::Send(const std::string& to, const std::string& body, SmsReceipt* receipt) {
  const int code = fail_code_.load();
  if (code != 0) {
    receipt->provider_code = code;
    return Status::Unavailable("injected SMS failure " + std::to_string(code));
  }
  return target_->Send(to, body, receipt);
}

Status FailingSmsSender::SendCode(const std::string& to, const CodeMessage& message,
                                  SmsReceipt* receipt) {
  const int code = fail_code_.load();
  if (code != 0) {
    receipt->provider_code = code;
    return Status::Unavailable("injected SMS failure " + std::to_string(code));
  }
  return target_->SendCode(to, message, receipt);
}

Status GatedSmsSender::Send(const std::string& to, const std::string& body, SmsReceipt* receipt) {
  std::unique_lock<std::mutex> lock(mu_);
  entered_ = true;
  cv_.notify_all();
  cv_.wait(lock, [this] { return open_; });
  lock.unlock();
  return target_->Send(to, body, receipt);
}

void GatedSmsSender::WaitEntered() {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait(lock, [this] { return entered_; });
}

void GatedSmsSender::Open() {
  std::lock_guard<std::mutex> lock(mu_);
  open_ = true;
  cv_.notify_all();
}

bool WaitUntil(const std::function<bool()>& done, int64_t guard_ms) {
  const auto guard = std::chrono::steady_clock::now() + std::chrono::milliseconds(guard_ms);
  while (!done()) {
    if (std::chrono::steady_clock::now() >= guard) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return true;
}

std::string WrongCode(const std::string& code) {
  std::string w = code;
  if (!w.empty()) w[0] = w[0] == '9' ? '0' : static_cast<char>(w[0] + 1);
  return w;
}

std::string VerifyJson(const std::string& user, const std::string& code) {
  return "{\"user_id\":\"" + user + "\",\"passcode\":\"" + code + "\"}";
}

std::string FindCode(const std::string& text) {
  size_t i = text.find_first_of("0123456789");
  if (i == std::string::npos) return std::string();
  size_t j = text.find_first_not_of("0123456789", i);
  return text.substr(i, j == std::string::npos ? std::string::npos : j - i);
}

bool TestStoreIsRedis() {
  const char* store = getenv("OTPD_TEST_STORE");
  return store != nullptr && std::string(store) == "redis";
}

int ConnectToLoopback(int port, int timeout_seconds) {
  const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  if (timeout_seconds > 0) {  // before connect: on Linux SO_SNDTIMEO bounds connect too
    const timeval tv{timeout_seconds, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
  }
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
  close(fd);
  return -1;
}

TempDir::TempDir() {
  const char* base = getenv("TMPDIR");
  std::string tmpl = std::string(base && *base ? base : "/tmp") + "/otpd_test.XXXXXX";
  if (mkdtemp(&tmpl[0]) == nullptr) throw std::runtime_error("mkdtemp failed");
  path_ = tmpl;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

bool ParsePrometheus(const std::string& text, std::map<std::string, double>* series,
                     std::string* error) {
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.empty() || line[0] == '#') continue;
    const size_t space = line.rfind(' ');
    const std::string name = space == std::string::npos ? "" : line.substr(0, space);
    char* value_end = nullptr;
    const std::string value = space == std::string::npos ? "" : line.substr(space + 1);
    const double v = strtod(value.c_str(), &value_end);
    const bool name_ok =
        !name.empty() && (name.find('{') == std::string::npos || name.back() == '}');
    if (!name_ok || value.empty() || *value_end != '\0' || !series->emplace(name, v).second) {
      *error = line;
      return false;
    }
  }
  return true;
}

}  // namespace otpd
