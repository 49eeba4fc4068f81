// Voice and WhatsApp through the service and the HTTP API (issue 18):
// the unchanged SMS answer, the 422s, the channel answers, the limits
// every channel shares and the ones each has, and replace-on-switch.
#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include "otp/channel_options.h"
#include "otp_stack.h"

namespace otpd {
namespace {

OtpOptions WithChannels() {
  OtpOptions o;
  o.channels.voice.enabled = true;
  o.channels.whatsapp.enabled = true;
  return o;
}

std::string SendJson(const std::string& user, const std::string& channel) {
  return R"({"user_id":")" + user + R"(","channel":")" + channel + R"("})";
}

SendResult SendOn(OtpStack& s, const std::string& user, Channel channel) {
  SendResult r;
  REQUIRE(s.service->SendCode(user, "127.0.0.1", channel, &r).ok());
  return r;
}

VerifyOutcome VerifyOutcomeOf(OtpStack& s, const std::string& user, const std::string& code) {
  VerifyCodeResult r;
  REQUIRE(s.service->VerifyCode(user, code, "127.0.0.1", &r).ok());
  return r.store.outcome;
}

const char kSmsAnswer[] =
    R"({"message":"OTP sent successfully via SMS","user_id":"abc","phone":"+1*******111"})";

}  // namespace

TEST_CASE("Channels: no channel field, or sms, answers exactly as before") {
  OtpStack s(WithChannels());
  HttpAnswer a = s.Post("/send-code", R"({"user_id":"abc"})");
  CHECK(a.status == 200);
  CHECK(a.body == kSmsAnswer);
  s.clock.AdvanceSeconds(30);
  a = s.Post("/send-code", SendJson("abc", "sms"));
  CHECK(a.body == kSmsAnswer);
  s.clock.AdvanceSeconds(30);
  a = s.Post("/send-code", R"({"user_id":"abc","channel":null})");
  CHECK(a.body == kSmsAnswer);
  REQUIRE(s.sms.count() == 3);
  for (const auto& m : s.sms.messages()) CHECK(m.channel == Channel::kSms);
}

TEST_CASE("Channels: an unknown or disabled channel is a 422 naming the enabled ones") {
  OtpStack s;  // SMS only
  const std::string only_sms =
      R"({"detail":[{"loc":["body","channel"],"msg":"value is not a valid enumeration member; )"
      R"(permitted: 'sms'","type":"type_error.enum","ctx":{"enum_values":["sms"]}}]})";
  for (const char* body :
       {R"({"user_id":"abc","channel":"voice"})", R"({"user_id":"abc","channel":"fax"})",
        R"({"user_id":"abc","channel":"SMS"})", R"({"user_id":"abc","channel":5})",
        R"({"user_id":"abc","channel":["sms"]})"}) {
    CAPTURE(body);
    HttpAnswer a = s.Post("/send-code", body);
    CHECK(a.status == 422);
    CHECK(a.body == only_sms);
  }
  CHECK(s.sms.count() == 0);

  OtpOptions voice_only;
  voice_only.channels.voice.enabled = true;
  OtpStack v(voice_only);
  HttpAnswer a = v.Post("/send-code", R"({"channel":"whatsapp"})");
  CHECK(a.status == 422);
  CHECK(
      a.body ==
      R"({"detail":[{"loc":["body","user_id"],"msg":"field required","type":"value_error.missing"},)"
      R"({"loc":["body","channel"],"msg":"value is not a valid enumeration member; )"
      R"(permitted: 'sms', 'voice'","type":"type_error.enum","ctx":{"enum_values":["sms","voice"]}}]})");
}

TEST_CASE("Channels: a channel the sender cannot deliver on is not enabled") {
  OtpStack s(WithChannels());
  s.sms.voice_supported = false;
  CHECK_FALSE(s.service->ChannelEnabled(Channel::kVoice));
  CHECK(s.service->ChannelEnabled(Channel::kWhatsApp));
  CHECK(s.Post("/send-code", SendJson("abc", "voice")).status == 422);
  SendResult r;
  CHECK(s.service->SendCode("abc", "127.0.0.1", Channel::kVoice, &r).IsInvalidArgument());
  CHECK(s.sms.count() == 0);
}

TEST_CASE("Channels: voice and WhatsApp answers name the channel, and the code verifies") {
  OtpStack s(WithChannels());
  HttpAnswer a = s.Post("/send-code", SendJson("ABC", "voice"));
  CHECK(a.status == 200);
  CHECK(a.body == R"({"message":"OTP sent successfully via voice call","user_id":"abc",)"
                  R"("phone":"+1*******111","channel":"voice"})");
  REQUIRE(s.sms.count() == 1);
  const auto call = s.sms.messages()[0];
  CHECK(call.channel == Channel::kVoice);
  const std::string code = s.sms.LastCode();
  REQUIRE(code.size() == 6);
  std::string spoken;
  for (char c : code) spoken += std::string(spoken.empty() ? "" : ", ") + c;
  CHECK(call.body == code + " Your otpd code is " + spoken + ".");
  CHECK(call.locale == "en-US");
  CHECK(VerifyOutcomeOf(s, "abc", code) == VerifyOutcome::kOk);

  s.clock.AdvanceSeconds(30);
  a = s.Post("/send-code", SendJson("abc", "whatsapp"));
  CHECK(a.body == R"({"message":"OTP sent successfully via WhatsApp","user_id":"abc",)"
                  R"("phone":"+1*******111","channel":"whatsapp"})");
  CHECK(s.sms.messages()[1].channel == Channel::kWhatsApp);
  CHECK(VerifyOutcomeOf(s, "abc", s.sms.LastCode()) == VerifyOutcome::kOk);
}

TEST_CASE("Channels: a failed voice call answers 500 sms_failed naming the channel") {
  OtpStack s(WithChannels());
  s.failing.FailWith(13224);
  HttpAnswer a = s.Post("/send-code", SendJson("abc", "voice"));
  CHECK(a.status == 500);
  CHECK(a.body ==
        R"({"detail":{"success":false,"message":"Failed to send the code via voice call",)"
        R"("user_id":"abc","error_type":"sms_failed","channel":"voice","provider_code":13224}})");
}

TEST_CASE("Channels: a send on another channel replaces the code, under the same cooldown") {
  OtpStack s(WithChannels());
  CHECK(SendOn(s, "abc", Channel::kSms).outcome == SendOutcome::kSent);
  const std::string by_sms = s.sms.LastCode();
  // The cooldown counts every channel: switching at once is refused.
  SendResult early = SendOn(s, "abc", Channel::kVoice);
  CHECK(early.outcome == SendOutcome::kRateLimited);
  CHECK(early.limit == SendLimit::kCooldown);
  CHECK(s.sms.count() == 1);
  s.clock.AdvanceSeconds(30);
  CHECK(SendOn(s, "abc", Channel::kVoice).outcome == SendOutcome::kSent);
  const std::string by_voice = s.sms.LastCode();
  REQUIRE(by_voice != by_sms);
  CHECK(VerifyOutcomeOf(s, "abc", by_sms) == VerifyOutcome::kInvalid);
  CHECK(VerifyOutcomeOf(s, "abc", by_voice) == VerifyOutcome::kOk);
}

TEST_CASE("Channels: the per-user cap counts sends on every channel together") {
  OtpOptions o = WithChannels();
  o.send_limits.per_user = 2;
  OtpStack s(o);
  CHECK(SendOn(s, "abc", Channel::kSms).outcome == SendOutcome::kSent);
  s.clock.AdvanceSeconds(30);
  CHECK(SendOn(s, "abc", Channel::kVoice).outcome == SendOutcome::kSent);
  s.clock.AdvanceSeconds(30);
  SendResult third = SendOn(s, "abc", Channel::kWhatsApp);
  CHECK(third.outcome == SendOutcome::kRateLimited);
  CHECK(third.limit == SendLimit::kUser);
  CHECK(s.sms.count() == 2);
}

TEST_CASE("Channels: each channel spends its own budget") {
  OtpOptions o = WithChannels();
  o.channels.voice.budget = 1;
  o.send_limits.global = 2;
  OtpStack s(o);
  REQUIRE(s.users->Upsert("def", "+12015552222").ok());
  REQUIRE(s.users->Upsert("ghi", "+12015553333").ok());
  CHECK(SendOn(s, "abc", Channel::kVoice).outcome == SendOutcome::kSent);
  SendResult second_call = SendOn(s, "def", Channel::kVoice);
  CHECK(second_call.outcome == SendOutcome::kRateLimited);
  CHECK(second_call.limit == SendLimit::kGlobal);
  // The voice budget is spent; the SMS one is not touched by it.
  CHECK(SendOn(s, "def", Channel::kSms).outcome == SendOutcome::kSent);
  CHECK(SendOn(s, "ghi", Channel::kSms).outcome == SendOutcome::kSent);
  s.clock.AdvanceSeconds(30);
  SendResult third_sms = SendOn(s, "abc", Channel::kSms);
  CHECK(third_sms.outcome == SendOutcome::kRateLimited);
  CHECK(third_sms.limit == SendLimit::kGlobal);
  // WhatsApp has a budget of its own still.
  CHECK(SendOn(s, "abc", Channel::kWhatsApp).outcome == SendOutcome::kSent);
}

TEST_CASE("Channels: the region allow-list is per channel, and a refusal spends nothing") {
  OtpOptions o = WithChannels();
  o.channels.voice.allowed_regions = {"CA"};
  OtpStack s(o);
  SendResult call = SendOn(s, "abc", Channel::kVoice);  // +1 201: US
  CHECK(call.outcome == SendOutcome::kRateLimited);
  CHECK(call.limit == SendLimit::kNone);
  CHECK(s.sms.count() == 0);
  // Nothing was reserved: no cooldown stands in the way of an SMS now.
  CHECK(SendOn(s, "abc", Channel::kSms).outcome == SendOutcome::kSent);
  CHECK(s.service->CountryAllowed("+12015551111", Channel::kWhatsApp, nullptr));
  CHECK_FALSE(s.service->CountryAllowed("+12015551111", Channel::kVoice, nullptr));
  CHECK(s.service->CountryAllowed("+14165550123", Channel::kVoice, nullptr));
}

TEST_CASE(
    "Channels: voice to a number that cannot take calls is refused before anything is spent") {
  OtpOptions o = WithChannels();
  o.refused_phone_types.clear();  // only the channel's own rule is left
  OtpStack s(o);
  PhoneInfo info;
  REQUIRE(ParsePhone("+447640123456", &info).ok());
  REQUIRE(info.type == PhoneType::kPager);
  REQUIRE(s.users->Upsert("pager", "+447640123456").ok());
  std::string why;
  CHECK_FALSE(s.service->CountryAllowed("+447640123456", Channel::kVoice, &why));
  CHECK(why == "number type pager cannot take voice");
  SendResult call = SendOn(s, "pager", Channel::kVoice);
  CHECK(call.outcome == SendOutcome::kRateLimited);
  CHECK(s.sms.count() == 0);
  CHECK(SendOn(s, "pager", Channel::kSms).outcome == SendOutcome::kSent);
  CHECK(ChannelReaches(Channel::kVoice, PhoneType::kFixedLine));
  CHECK(ChannelReaches(Channel::kVoice, PhoneType::kMobile));
  CHECK_FALSE(ChannelReaches(Channel::kVoice, PhoneType::kVoicemail));
  CHECK_FALSE(ChannelReaches(Channel::kWhatsApp, PhoneType::kPager));
  CHECK(ChannelReaches(Channel::kWhatsApp, PhoneType::kFixedLine));
}

TEST_CASE("Channels: the voice script follows the user's locale where <Say> speaks it") {
  OtpOptions o = WithChannels();
  o.channels.voice_templates = {{"es", "Su código de {app} es {code}."},
                                {"tlh", "{code} {app} Qapla'"}};
  o.app_name = "Acme";
  OtpStack s(o);
  REQUIRE(s.users
              ->UpsertAll({User{"mx", "+12015552222", "es-MX"}, User{"es", "+12015553333", "es"},
                           User{"k", "+12015554444", "tlh"}})
              .ok());
  SendOn(s, "mx", Channel::kVoice);
  SendOn(s, "es", Channel::kVoice);
  SendOn(s, "k", Channel::kVoice);
  const auto m = s.sms.messages();
  REQUIRE(m.size() == 3);
  CHECK(m[0].locale == "es-MX");
  CHECK(m[0].body.find("Su código de Acme es ") != std::string::npos);
  CHECK(m[1].locale == "es-ES");
  // No <Say> voice for the language: the default script, in its language.
  CHECK(m[2].locale == "en-US");
  CHECK(m[2].body.find("Your Acme code is ") != std::string::npos);
}

TEST_CASE("Channels: /metrics and the audit carry the channel") {
  OtpStack s(WithChannels());
  CHECK(s.Post("/send-code", SendJson("abc", "voice")).status == 200);
  CHECK(s.service->channel_metrics().sends("voice", SendMetric::kSent) == 1);
  CHECK(s.service->channel_metrics().sends("sms", SendMetric::kSent) == 0);
  const std::string page = s.Get("/metrics").body;
  CHECK(page.find("otpd_channel_sends_total{channel=\"voice\",outcome=\"sent\"} 1\n") !=
        std::string::npos);
  CHECK(page.find("otpd_channel_sends_total{channel=\"sms\",outcome=\"sent\"} 0\n") !=
        std::string::npos);
  // The SMS family counts the voice send as a send, as before.
  CHECK(page.find("otpd_sends_total{outcome=\"sent\"} 1\n") != std::string::npos);
  CHECK(s.Post("/send-code", SendJson("abc", "voice")).status == 429);
  s.clock.AdvanceSeconds(30);
  CHECK(s.Post("/send-code", R"({"user_id":"abc"})").status == 200);
  std::vector<AuditEvent> events;
  REQUIRE(s.audit->Query(AuditQuery{"abc", 0, 10}, &events).ok());
  REQUIRE(events.size() == 3);
  CHECK(events[0].outcome == "sent;channel=voice");
  CHECK(events[1].outcome == "rate_limited:cooldown;channel=voice");
  CHECK(events[2].outcome == "sent");
}

TEST_CASE("Channels: SpokenDigits reads a code digit by digit") {
  CHECK(SpokenDigits("042") == "0, 4, 2");
  CHECK(SpokenDigits("") == "");
  CHECK(std::string(ChannelLabel(Channel::kVoice)) == "voice call");
  CHECK(std::string(ChannelLabel(Channel::kWhatsApp)) == "WhatsApp");
}

}  // namespace otpd
