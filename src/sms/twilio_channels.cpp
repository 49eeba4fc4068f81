// Voice calls and WhatsApp messages through Twilio (sms.h): the request
// text, and the sender that posts it over the shared provider client.
#include "sms/twilio_channels.h"

#include <cctype>
#include <nlohmann/json.hpp>
#include <utility>

#include "core/log.h"
#include "core/phone.h"
#include "otp/sms.h"
#include "sms/provider_client.h"

namespace otpd {
namespace {

std::string CanonicalTag(const std::string& locale) {
  std::string tag;
  for (char c : locale) {
    const auto u = static_cast<unsigned char>(c);
    tag += c == '_' ? '-' : static_cast<char>(tolower(u));
  }
  return tag;
}

// The languages Twilio's <Say> speaks with its standard voices; the first
// tag of each language is the one a bare language tag gets.
constexpr const char* kSayLanguages[] = {
    "en-US", "en-GB", "en-AU", "en-CA", "en-IN", "es-ES", "es-MX", "fr-FR", "fr-CA",
    "pt-BR", "pt-PT", "zh-CN", "zh-HK", "zh-TW", "ca-ES", "da-DK", "de-DE", "fi-FI",
    "it-IT", "ja-JP", "ko-KR", "nb-NO", "nl-NL", "pl-PL", "ru-RU", "sv-SE",
};

}  // namespace

std::string SayLanguage(const std::string& locale) {
  std::string tag = CanonicalTag(locale);
  if (tag == "no" || tag.compare(0, 3, "no-") == 0) tag = "nb" + tag.substr(2);
  for (const char* say : kSayLanguages) {
    if (CanonicalTag(say) == tag) return say;
  }
  const std::string language = tag.substr(0, tag.find('-'));
  if (language.empty()) return "";
  for (const char* say : kSayLanguages) {
    if (CanonicalTag(say).compare(0, language.size() + 1, language + "-") == 0) return say;
  }
  return "";
}

std::string XmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') break;
        out += c;
    }
  }
  return out;
}

std::string VoiceTwiml(const std::string& script, const std::string& language) {
  const std::string say =
      "<Say language=\"" + XmlEscape(language) + "\">" + XmlEscape(script) + "</Say>";
  return "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response><Pause length=\"1\"/>" + say +
         "<Pause length=\"2\"/>" + say + "</Response>";
}

std::string WhatsAppVariables(const std::string& code) {
  return nlohmann::json{{"1", code}}.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

std::string WhatsAppAddress(const std::string& number) {
  static const std::string kPrefix = "whatsapp:";
  return number.compare(0, kPrefix.size(), kPrefix) == 0 ? number : kPrefix + number;
}

TwilioForm VoiceCallForm(const std::string& to, const std::string& from, const std::string& twiml) {
  return {{"To", to}, {"From", from}, {"Twiml", twiml}};
}

TwilioForm WhatsAppForm(const std::string& to, const std::string& from,
                        const std::string& content_sid, const std::string& code,
                        const std::string& status_callback) {
  TwilioForm form = {{"To", WhatsAppAddress(to)},
                     {"From", WhatsAppAddress(from)},
                     {"ContentSid", content_sid},
                     {"ContentVariables", WhatsAppVariables(code)}};
  if (!status_callback.empty()) form.emplace_back("StatusCallback", status_callback);
  return form;
}

namespace {

constexpr int kTooManyRequestsCode = 20429;

// Twilio error codes that refuse the number itself, so another provider
// would refuse it too: 21211 invalid To, 13224 not a number calls can go
// to, 21610 the user opted out, 63003 no WhatsApp account behind it.
bool RefusesNumber(int code) {
  return code == 21211 || code == 13224 || code == 21610 || code == 63003;
}

// One answer of the Calls or Messages API to a Status (STYLE §4). Only
// Twilio's numeric code goes into the message: its text may quote the
// number, and the request (TwiML, variables) carries the code.
Status TwilioChannelAnswer(const ProviderAnswer& answer, SmsReceipt* receipt, bool* retryable) {
  *receipt = SmsReceipt();
  receipt->provider = "twilio";
  const nlohmann::json j = nlohmann::json::parse(answer.body, nullptr, false);
  const bool object = j.is_object();
  if (answer.http_status == 201) {
    if (object && j.contains("sid") && j["sid"].is_string()) {
      receipt->provider_id = j["sid"].get<std::string>();
    }
    *retryable = false;
    return Status::OK();
  }
  int code = 0;
  if (object && j.contains("code") && j["code"].is_number_integer()) code = j["code"].get<int>();
  receipt->provider_code = code;
  receipt->number_refused = RefusesNumber(code);
  *retryable =
      answer.http_status == 429 || code == kTooManyRequestsCode || answer.http_status >= 500;
  const std::string text =
      "twilio error " + std::to_string(code) + " (HTTP " + std::to_string(answer.http_status) + ")";
  if (answer.http_status >= 400 && answer.http_status < 500 && !*retryable) {
    return Status::InvalidArgument(text);
  }
  return Status::Unavailable(text);
}

class TwilioChannelSender : public SmsSender {
 public:
  TwilioChannelSender(const TwilioOptions& twilio, const TwilioChannelOptions& channels,
                      std::unique_ptr<SmsSender> sms, std::unique_ptr<ProviderClient> client)
      : twilio_(twilio), channels_(channels), sms_(std::move(sms)), client_(std::move(client)) {
    const std::string account = "/2010-04-01/Accounts/" + twilio_.account_sid;
    calls_path_ = account + "/Calls.json";
    messages_path_ = account + "/Messages.json";
    whatsapp_from_ = channels_.whatsapp_from.empty() ? twilio_.from : channels_.whatsapp_from;
  }

  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override {
    return sms_->Send(to, body, receipt);
  }

  Status SendBy(const std::string& to, const std::string& body, Deadline deadline,
                SmsReceipt* receipt) override {
    return sms_->SendBy(to, body, deadline, receipt);
  }

  bool Supports(Channel channel) const override {
    switch (channel) {
      case Channel::kSms:
        return true;
      case Channel::kVoice:
        return !twilio_.from.empty() && twilio_.from[0] == '+';
      case Channel::kWhatsApp:
        return !channels_.whatsapp_content_sid.empty() && !whatsapp_from_.empty();
    }
    return false;
  }

  Status SendCode(const std::string& to, const CodeMessage& message, SmsReceipt* receipt) override {
    if (message.channel == Channel::kSms) return sms_->SendCode(to, message, receipt);
    if (!Supports(message.channel)) return SmsSender::SendCode(to, message, receipt);
    if (HasControlChar(to)) return Status::InvalidArgument("bad phone number");
    if (message.channel == Channel::kVoice) {
      const std::string twiml = VoiceTwiml(message.text, message.locale);
      return Post(calls_path_, FormEncode(VoiceCallForm(to, twilio_.from, twiml)), to, "call",
                  receipt);
    }
    return Post(messages_path_,
                FormEncode(WhatsAppForm(to, whatsapp_from_, channels_.whatsapp_content_sid,
                                        message.code, twilio_.status_callback)),
                to, "whatsapp", receipt);
  }

 private:
  // The log lines name the channel and the masked number, never the form.
  Status Post(const std::string& path, const std::string& form, const std::string& to,
              const char* what, SmsReceipt* receipt) {
    *receipt = SmsReceipt();
    receipt->provider = "twilio";
    const ProviderPost post{path, form, ProviderDeadlineIn(twilio_.timeout_ms), to};
    Status s = client_->PostForm(post, [receipt](const ProviderAnswer& a, bool* retryable) {
      return TwilioChannelAnswer(a, receipt, retryable);
    });
    if (!s.ok()) {
      Log(LogLevel::kError, std::string("twilio ") + what + " failed",
          {{"to", MaskPhone(to)},
           {"twilio_code", std::to_string(receipt->provider_code)},
           {"error", s.message()}});
      return s;
    }
    Log(LogLevel::kInfo, std::string("twilio ") + what + " accepted",
        {{"to", MaskPhone(to)}, {"sid", receipt->provider_id}});
    return s;
  }

  const TwilioOptions twilio_;
  const TwilioChannelOptions channels_;
  const std::unique_ptr<SmsSender> sms_;
  const std::unique_ptr<ProviderClient> client_;
  std::string calls_path_, messages_path_, whatsapp_from_;
};

}  // namespace

Status NewTwilioChannelSender(const TwilioOptions& twilio, const TwilioChannelOptions& channels,
                              std::unique_ptr<SmsSender> sms, std::unique_ptr<SmsSender>* sender) {
  for (const std::string* v : {&channels.whatsapp_from, &channels.whatsapp_content_sid}) {
    if (HasControlChar(*v)) {
      return Status::InvalidArgument("a whatsapp_* setting holds a control character");
    }
  }
  const bool key = !twilio.api_key_sid.empty() && !twilio.api_key_secret.empty();
  ProviderClientOptions c;
  c.name = "twilio";
  c.api_base = twilio.api_base;
  c.ca_file = twilio.ca_file;
  c.basic_user = key ? twilio.api_key_sid : twilio.account_sid;
  c.basic_password = key ? twilio.api_key_secret : twilio.auth_token;
  c.connect_timeout_ms = twilio.connect_timeout_ms;
  c.max_idle_connections = twilio.max_idle_connections;
  c.max_idle_ms = twilio.max_idle_ms;
  c.clock = twilio.clock;
  std::unique_ptr<ProviderClient> client;
  Status s = ProviderClient::New(c, &client);
  if (!s.ok()) return s;
  sender->reset(new TwilioChannelSender(twilio, channels, std::move(sms), std::move(client)));
  return Status::OK();
}

}  // namespace otpd
