#include "otp/channel_options.h"

namespace otpd {

const char* ChannelLabel(Channel channel) {
  switch (channel) {
    case Channel::kSms:
      return "SMS";
    case Channel::kVoice:
      return "voice call";
    case Channel::kWhatsApp:
      return "WhatsApp";
  }
  return "SMS";
}

bool ChannelReaches(Channel channel, PhoneType type) {
  switch (channel) {
    case Channel::kSms:
      return true;
    case Channel::kVoice:
      return type != PhoneType::kPager && type != PhoneType::kVoicemail;
    case Channel::kWhatsApp:
      return type != PhoneType::kPager;
  }
  return false;
}

std::string SpokenDigits(const std::string& code) {
  std::string out;
  for (char c : code) {
    if (!out.empty()) out += ", ";
    out += c;
  }
  return out;
}

void FillVoiceScript(const ChannelOptions& options, const std::string& locale,
                     const std::string& code, int minutes, const std::string& app,
                     CodeMessage* message) {
  const std::string* tmpl = &options.voice_template;
  std::string language = options.voice_language;
  const std::string say = SayLanguage(locale);
  if (!say.empty()) {
    static const std::string kNone;
    const std::string& chosen = SelectSmsTemplate(options.voice_templates, kNone, locale);
    if (&chosen != &kNone) {
      tmpl = &chosen;
      language = say;
    }
  }
  message->text = RenderSmsTemplate(*tmpl, SpokenDigits(code), minutes, app);
  message->locale = language;
}

}  // namespace otpd
