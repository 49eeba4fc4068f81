// SmsSender: how a code reaches the user's phone.
//
// Implementations: sms_console.cpp (development: prints the message and
// optionally appends it to a file), later sms_twilio.cpp. Thread-safe: the
// service calls Send from many request threads at once.
#ifndef OTPD_SMS_H_
#define OTPD_SMS_H_

#include <memory>
#include <string>

#include "status.h"

namespace otpd {

struct SmsReceipt {
  std::string provider_id;  // the provider's message ID, when it gave one
  int provider_code = 0;    // the provider's numeric error code on failure
};

class SmsSender {
 public:
  virtual ~SmsSender() = default;
  // Sends `body` to `to` (E.164). OK only when the provider took the
  // message; on failure `receipt` may carry the provider's error code.
  virtual Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) = 0;
};

// Prints "to <masked phone>: <body>" on stderr and, when `log_file` is not
// empty, appends "<phone> <body>" lines to it (opened 0600, flushed per
// line) so scripts and tests can read codes.
Status NewConsoleSmsSender(const std::string& log_file, std::unique_ptr<SmsSender>* sender);

// Fills {code}, {minutes} and {app} in `tmpl`; other text is kept as is.
std::string RenderSmsTemplate(const std::string& tmpl, const std::string& code, int minutes,
                              const std::string& app);

}  // namespace otpd

#endif  // OTPD_SMS_H_
