// The checks of the channel keys (channels, voice_*, whatsapp_*): value
// checks for the key table, and the cross-key check ValidateConfig runs.
// Each answers "" when fine, else the reason.
#ifndef OTPD_CONFIG_CHANNEL_KEYS_H_
#define OTPD_CONFIG_CHANNEL_KEYS_H_

#include <map>
#include <string>
#include <vector>

namespace otpd {

struct Config;

// "sms,voice": names among sms, voice and whatsapp, sms among them (a
// client that names no channel gets SMS, so it cannot be turned off).
std::string CheckChannels(const std::string& value);

// The names in a valid `channels` value, trimmed, in order.
std::vector<std::string> ChannelList(const std::string& value);

// A language tag such as en-US.
std::string CheckVoiceLanguage(const std::string& value);

// [voice_templates]: the same rules as [templates].
std::string CheckVoiceTemplates(const std::map<std::string, std::string>& templates);

// With the Twilio backend: voice needs twilio_phone_number as a number
// (+E.164; calls cannot come from a sender ID or a Messaging Service);
// WhatsApp needs whatsapp_content_sid and a sender (whatsapp_from or
// twilio_phone_number).
std::string CheckChannelSettings(const Config& config);

}  // namespace otpd

#endif  // OTPD_CONFIG_CHANNEL_KEYS_H_
