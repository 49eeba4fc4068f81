// ChannelOptions: what the service needs to send a code by voice or
// WhatsApp as well as by SMS: which channels are on, each one's budget and
// region allow-list, and the voice script. SMS keeps its own fields in
// OtpOptions (send_limits.global, allowed_regions, the templates), so an
// SMS-only setup reads exactly as before. Plain data and pure functions.
#ifndef OTPD_CHANNEL_OPTIONS_H_
#define OTPD_CHANNEL_OPTIONS_H_

#include <map>
#include <string>
#include <vector>

#include "core/phone.h"
#include "otp/channel.h"
#include "otp/sms.h"

namespace otpd {

struct ChannelPolicy {
  bool enabled = false;
  // Sends over all users per window on this channel (SendLimits::global
  // for its sends); 0 turns the cap off.
  int budget = 0;
  // ISO 3166 regions this channel may reach; empty: every region.
  std::vector<std::string> allowed_regions;
};

struct ChannelOptions {
  ChannelPolicy voice{false, 100, {}};
  ChannelPolicy whatsapp{false, 1000, {}};
  // What the call says, {code} read digit by digit; {app} and {minutes}
  // as in SMS templates. Read twice, with a pause between.
  std::string voice_template = "Your {app} code is {code}.";
  std::string voice_language = "en-US";  // the language voice_template is in
  // Locale -> voice template, used when Twilio's <Say> speaks the user's
  // language (SayLanguage); the call then speaks it.
  std::map<std::string, std::string> voice_templates;
};

// "SMS", "voice call", "WhatsApp": how the 200 answer's message names it.
const char* ChannelLabel(Channel channel);

// Whether a number of `type` can take a code on `channel`. Voice cannot
// call a pager or a voicemail access number; WhatsApp cannot run on a
// pager; SMS leaves the type to refuse_phone_types.
bool ChannelReaches(Channel channel, PhoneType type);

// "1, 2, 3, 4": the code as a text-to-speech engine reads it digit by
// digit, the commas making short pauses.
std::string SpokenDigits(const std::string& code);

// Fills message->text with the voice script for a user with `locale`: the
// per-locale template when <Say> speaks that language, else
// voice_template; message->locale becomes the <Say> language.
void FillVoiceScript(const ChannelOptions& options, const std::string& locale,
                     const std::string& code, int minutes, const std::string& app,
                     CodeMessage* message);

}  // namespace otpd

#endif  // OTPD_CHANNEL_OPTIONS_H_
