#include "otp/channel.h"

namespace otpd {

const char* ChannelName(Channel channel) {
  switch (channel) {
    case Channel::kSms:
      return "sms";
    case Channel::kVoice:
      return "voice";
    case Channel::kWhatsApp:
      return "whatsapp";
  }
  return "sms";
}

bool ParseChannel(const std::string& name, Channel* channel) {
  for (Channel c : {Channel::kSms, Channel::kVoice, Channel::kWhatsApp}) {
    if (name == ChannelName(c)) {
      *channel = c;
      return true;
    }
  }
  return false;
}

}  // namespace otpd
