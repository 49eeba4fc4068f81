// The channel keys (config/channel_keys.h): their values, the cross-key
// check, and what the service gets from them (app/options.h).
#include "config/channel_keys.h"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "app/options.h"
#include "config/config.h"

namespace otpd {
namespace {

Status Parse(std::vector<std::string> args, Invocation* inv) {
  args.insert(args.begin(), {"otpd", "--config="});
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  const std::vector<std::string> env;
  return ParseInvocation(static_cast<int>(argv.size() - 1), argv.data(), &env, inv);
}

}  // namespace

TEST_CASE("channel keys: channels names known channels, sms among them") {
  CHECK(CheckChannels("sms") == "");
  CHECK(CheckChannels("sms, voice,whatsapp") == "");
  CHECK(CheckChannels("voice") == "must include sms: clients that name no channel get SMS");
  CHECK(CheckChannels("sms,fax") == "'fax' is not a channel (sms, voice, whatsapp)");
  CHECK(CheckChannels("") == "'' is not a channel (sms, voice, whatsapp)");
  CHECK(ChannelList(" sms , voice") == std::vector<std::string>{"sms", "voice"});
  Invocation inv;
  Status s = Parse({"--channels", "voice"}, &inv);
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("channels") != std::string::npos);
}

TEST_CASE("channel keys: voice_language and [voice_templates] are checked") {
  CHECK(CheckVoiceLanguage("en-US") == "");
  CHECK(CheckVoiceLanguage("e") != "");
  CHECK(CheckVoiceLanguage("en US") != "");
  CHECK(CheckVoiceTemplates({{"es", "Su código es {code}"}}) == "");
  CHECK(CheckVoiceTemplates({{"es", "no code here"}}) ==
        "voice_templates: es: must contain {code}");
}

TEST_CASE("channel keys: Twilio voice needs a number, WhatsApp a template") {
  const std::vector<std::string> twilio = {"--twilio-account-sid", "AC0123", "--twilio-auth-token",
                                           "token-0123456789"};
  auto with = [&](std::vector<std::string> more) {
    std::vector<std::string> args = twilio;
    args.insert(args.end(), more.begin(), more.end());
    Invocation inv;
    return Parse(args, &inv);
  };
  CHECK(with({"--twilio-phone-number", "+12085551111", "--channels", "sms,voice"}).ok());
  Status s = with({"--twilio-messaging-service-sid", "MG0123", "--channels", "sms,voice"});
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("twilio_phone_number") != std::string::npos);
  s = with({"--twilio-phone-number", "+12085551111", "--channels", "sms,whatsapp"});
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("whatsapp_content_sid") != std::string::npos);
  CHECK(with({"--twilio-phone-number", "+12085551111", "--channels", "sms,whatsapp",
              "--whatsapp-content-sid", "HX0123"})
            .ok());
  // The console backend prints every channel: nothing more is needed.
  Invocation inv;
  CHECK(Parse({"--channels", "sms,voice,whatsapp"}, &inv).ok());
}

TEST_CASE("channel keys: the service's channel options, regions defaulting to allowed_regions") {
  Config c;
  ChannelOptions o;
  ChannelServiceOptions(c, &o);
  CHECK_FALSE(o.voice.enabled);
  CHECK_FALSE(o.whatsapp.enabled);
  CHECK(o.voice.budget == 100);
  CHECK(o.whatsapp.budget == 1000);
  CHECK(o.voice.allowed_regions.empty());

  c.channels = "sms,voice,whatsapp";
  c.allowed_regions = "US,CA";
  c.voice_allowed_regions = "CA";
  c.voice_budget_per_hour = 7;
  c.voice_templates = {{"es", "{code}"}};
  ChannelOptions p;
  ChannelServiceOptions(c, &p);
  CHECK(p.voice.enabled);
  CHECK(p.whatsapp.enabled);
  CHECK(p.voice.budget == 7);
  CHECK(p.voice.allowed_regions == std::vector<std::string>{"CA"});
  CHECK(p.whatsapp.allowed_regions == std::vector<std::string>{"US", "CA"});
  CHECK(p.voice_templates.size() == 1);
  CHECK(ServiceOptions(c).channels.voice.budget == 7);
  CHECK(ServiceOptions(c).send_limits.global == c.sms_budget_per_hour);
}

}  // namespace otpd
