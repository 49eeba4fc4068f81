#include "fake_twilio.h"

namespace otpd {

const char kFakeTwilioCreated[] =
    R"({"sid":"SM0123456789abcdef0123456789abcdef","status":"queued"})";

std::string TwilioErrorJson(int code, int status) {
  return "{\"code\":" + std::to_string(code) +
         ",\"message\":\"The 'To' number +12135554567 is not valid\",\"more_info\":"
         "\"https://www.twilio.com/docs/errors/" +
         std::to_string(code) + "\",\"status\":" + std::to_string(status) + "}";
}

}  // namespace otpd
