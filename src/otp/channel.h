// Channel: how a code reaches the user. SMS is the default and the only
// channel an old client (one that sends no `channel` field) ever uses.
#ifndef OTPD_CHANNEL_H_
#define OTPD_CHANNEL_H_

#include <string>

namespace otpd {

enum class Channel { kSms, kVoice, kWhatsApp };

// "sms", "voice", "whatsapp": the names the API, the config, the store and
// the metrics use.
const char* ChannelName(Channel channel);

// The channel named `name` (exactly one of ChannelName's answers). false,
// *channel unchanged, for anything else.
bool ParseChannel(const std::string& name, Channel* channel);

}  // namespace otpd

#endif  // OTPD_CHANNEL_H_
