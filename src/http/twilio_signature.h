// Twilio's request signature (X-Twilio-Signature) and the form bodies its
// callbacks carry.
//
// Twilio signs each callback with the account's auth token (the primary
// one; API keys never sign): HMAC-SHA1 over the full URL it requested
// (scheme, host, port if any, path and query, exactly as configured in
// StatusCallback) followed by every POST parameter sorted by name, each
// written as name then value with no separator, then base64. Pure
// functions; thread-safe.
#ifndef OTPD_TWILIO_SIGNATURE_H_
#define OTPD_TWILIO_SIGNATURE_H_

#include <string>
#include <utility>
#include <vector>

#include "core/status.h"

namespace otpd {

using FormFields = std::vector<std::pair<std::string, std::string>>;

// Decodes application/x-www-form-urlencoded text ('+' is a space, %XX a
// byte). InvalidArgument on a bad escape; names may repeat.
Status ParseFormBody(const std::string& body, FormFields* fields);

// The signature Twilio would send for `url` and `params` (base64).
std::string TwilioSignature(const std::string& auth_token, const std::string& url,
                            const FormFields& params);

// Whether `header` is that signature, compared in constant time. False for
// an empty header or token.
bool TwilioSignatureValid(const std::string& auth_token, const std::string& url,
                          const FormFields& params, const std::string& header);

}  // namespace otpd

#endif  // OTPD_TWILIO_SIGNATURE_H_
