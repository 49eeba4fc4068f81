// The parts of Twilio's voice and WhatsApp requests that are pure text,
// for twilio_channels.cpp and its tests: the TwiML a call reads, and the
// form fields of a call and of a WhatsApp template message.
#ifndef OTPD_SMS_TWILIO_CHANNELS_H_
#define OTPD_SMS_TWILIO_CHANNELS_H_

#include <string>
#include <utility>
#include <vector>

namespace otpd {

using TwilioForm = std::vector<std::pair<std::string, std::string>>;

// `text` with &, <, >, " and ' as XML entities, and control characters
// other than tab and newline dropped (they are not allowed in XML 1.0).
std::string XmlEscape(const std::string& text);

// <Response> that says `script` in `language` (a <Say> language tag),
// pauses, and says it again. Everything escaped.
std::string VoiceTwiml(const std::string& script, const std::string& language);

// {"1":"<code>"}: the ContentVariables of an authentication template
// whose variable {{1}} is the code.
std::string WhatsAppVariables(const std::string& code);

// "whatsapp:+14155550123" for "+14155550123"; an address that already has
// the prefix is kept.
std::string WhatsAppAddress(const std::string& number);

// The Calls.json form: To, From, Twiml.
TwilioForm VoiceCallForm(const std::string& to, const std::string& from, const std::string& twiml);

// The Messages.json form for WhatsApp: To, From (both whatsapp:),
// ContentSid, ContentVariables, and StatusCallback when not empty.
TwilioForm WhatsAppForm(const std::string& to, const std::string& from,
                        const std::string& content_sid, const std::string& code,
                        const std::string& status_callback);

}  // namespace otpd

#endif  // OTPD_SMS_TWILIO_CHANNELS_H_
