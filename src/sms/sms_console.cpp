// The development SMS sender: prints messages instead of sending them.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <mutex>

#include "core/phone.h"
#include "otp/sms.h"

namespace otpd {
namespace {

class ConsoleSmsSender : public SmsSender {
 public:
  explicit ConsoleSmsSender(int log_fd) : log_fd_(log_fd) {}
  ~ConsoleSmsSender() override {
    if (log_fd_ >= 0) close(log_fd_);
  }

  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override {
    return Print(to, "", body, receipt);
  }

  // Every channel: a developer reads the code whichever one was asked for.
  bool Supports(Channel) const override { return true; }

  Status SendCode(const std::string& to, const CodeMessage& message, SmsReceipt* receipt) override {
    if (message.channel == Channel::kSms) return Send(to, message.text, receipt);
    return Print(to, std::string(" (") + ChannelName(message.channel) + ")", message.text, receipt);
  }

 private:
  Status Print(const std::string& to, const std::string& how, const std::string& body,
               SmsReceipt* receipt) {
    // This sender exists to show the code to a developer: the message,
    // code included, goes to the console on purpose.
    std::string line = "to " + MaskPhone(to) + how + ": " + OneLine(body) + "\n";
    std::string file_line = to + " " + OneLine(body) + "\n";
    std::lock_guard<std::mutex> lock(mu_);
    ssize_t ignored = write(STDERR_FILENO, line.data(), line.size());
    (void)ignored;
    if (log_fd_ >= 0 && write(log_fd_, file_line.data(), file_line.size()) !=
                            static_cast<ssize_t>(file_line.size())) {
      return Status::IOError(std::string("cannot append to sms_log_file: ") + strerror(errno));
    }
    receipt->provider = "console";
    receipt->provider_id = "console-" + std::to_string(++sent_);
    return Status::OK();
  }

  // One message per line, whatever the template holds.
  static std::string OneLine(std::string s) {
    for (char& c : s) {
      if (c == '\n' || c == '\r') c = ' ';
    }
    return s;
  }

  std::mutex mu_;
  int log_fd_;
  uint64_t sent_ = 0;
};

}  // namespace

Status NewConsoleSmsSender(const std::string& log_file, std::unique_ptr<SmsSender>* sender) {
  int fd = -1;
  if (!log_file.empty()) {
    fd = open(log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) {
      return Status::IOError("cannot open sms_log_file " + log_file + ": " + strerror(errno));
    }
  }
  sender->reset(new ConsoleSmsSender(fd));
  return Status::OK();
}

std::string RenderSmsTemplate(const std::string& tmpl, const std::string& code, int minutes,
                              const std::string& app) {
  std::string out;
  out.reserve(tmpl.size() + 16);
  for (size_t i = 0; i < tmpl.size();) {
    if (tmpl.compare(i, 6, "{code}") == 0) {
      out += code;
      i += 6;
    } else if (tmpl.compare(i, 9, "{minutes}") == 0) {
      out += std::to_string(minutes);
      i += 9;
    } else if (tmpl.compare(i, 5, "{app}") == 0) {
      out += app;
      i += 5;
    } else {
      out.push_back(tmpl[i++]);
    }
  }
  return out;
}

}  // namespace otpd
