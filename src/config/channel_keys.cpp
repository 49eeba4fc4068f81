#include "config/channel_keys.h"

#include <algorithm>

#include "config/config.h"
#include "config/keys.h"

namespace otpd {
namespace {

std::string Trimmed(const std::string& s) {
  const size_t b = s.find_first_not_of(" \t");
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(" \t") - b + 1);
}

bool Has(const std::vector<std::string>& names, const char* name) {
  return std::find(names.begin(), names.end(), name) != names.end();
}

}  // namespace

std::vector<std::string> ChannelList(const std::string& value) {
  std::vector<std::string> out;
  size_t start = 0;
  for (;;) {
    const size_t comma = value.find(',', start);
    out.push_back(Trimmed(value.substr(start, comma - start)));
    if (comma == std::string::npos) break;
    start = comma + 1;
  }
  return out;
}

std::string CheckChannels(const std::string& value) {
  const std::vector<std::string> names = ChannelList(value);
  for (const std::string& name : names) {
    if (name != "sms" && name != "voice" && name != "whatsapp") {
      return "'" + name + "' is not a channel (sms, voice, whatsapp)";
    }
  }
  if (!Has(names, "sms")) {
    return "must include sms: clients that name no channel get SMS";
  }
  return "";
}

std::string CheckVoiceLanguage(const std::string& value) {
  static const char kTagChars[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-";
  const bool ok = value.size() >= 2 && value.size() <= 35 &&
                  value.find_first_not_of(kTagChars) == std::string::npos;
  return ok ? "" : "must be a language tag such as en-US";
}

std::string CheckVoiceTemplates(const std::map<std::string, std::string>& templates) {
  const std::string what = CheckTemplates(templates);
  return what.empty() ? "" : "voice_" + what;
}

std::string CheckChannelSettings(const Config& config) {
  const std::vector<std::string> backends = SmsBackends(config);
  if (std::find(backends.begin(), backends.end(), "twilio") == backends.end()) return "";
  const std::vector<std::string> names = ChannelList(config.channels);
  if (Has(names, "voice") &&
      (config.twilio_phone_number.empty() || config.twilio_phone_number[0] != '+')) {
    return "channels = voice needs twilio_phone_number as a +E.164 number: Twilio places "
           "calls from a number, not a sender ID or a Messaging Service";
  }
  if (Has(names, "whatsapp") && config.whatsapp_content_sid.empty()) {
    return "channels = whatsapp needs whatsapp_content_sid (an approved template, README)";
  }
  if (Has(names, "whatsapp") && config.whatsapp_from.empty() &&
      config.twilio_phone_number.empty()) {
    return "channels = whatsapp needs whatsapp_from (or twilio_phone_number)";
  }
  return "";
}

}  // namespace otpd
