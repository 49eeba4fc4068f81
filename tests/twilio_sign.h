// Twilio request signatures computed independently of otpd: by a few lines
// of Python (hmac, hashlib, base64) run in a subprocess, so a test that
// compares them with otpd's own TwilioSignature checks two implementations
// against each other and against Twilio's documented rule.
#ifndef OTPD_TESTS_TWILIO_SIGN_H_
#define OTPD_TESTS_TWILIO_SIGN_H_

#include <string>
#include <utility>
#include <vector>

namespace otpd {

// base64(HMAC-SHA1(token, url + name1 + value1 + ...)) with the parameters
// sorted by name (then value). Throws std::runtime_error when python3 fails.
std::string PythonTwilioSignature(const std::string& token, const std::string& url,
                                  const std::vector<std::pair<std::string, std::string>>& params);

}  // namespace otpd

#endif  // OTPD_TESTS_TWILIO_SIGN_H_
