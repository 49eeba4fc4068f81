// systemd credentials: `LoadCredential=twilio_auth_token:/etc/otpd/...` in
// the unit makes systemd copy that file, readable by otpd only, into the
// directory named by $CREDENTIALS_DIRECTORY. ParseInvocation reads it
// before validating, so a Twilio setup whose token is only in the
// credential starts.
#ifndef OTPD_CONFIG_CREDENTIALS_H_
#define OTPD_CONFIG_CREDENTIALS_H_

#include <string>

#include "config/config.h"
#include "core/status.h"

namespace otpd {

// The credential file names otpd reads from the credentials directory.
extern const char kTwilioTokenCredential[];   // "twilio_auth_token"
extern const char kVonageSecretCredential[];  // "vonage_api_secret"

// When `credentials_dir` is not empty, holds a non-empty
// kTwilioTokenCredential file, and neither twilio_auth_token nor
// twilio_auth_token_file is set by another source, sets
// config->twilio_auth_token to its first line (trailing CR/LF removed). An
// empty or missing file changes nothing (`make install` creates it empty
// for installs that use the console sender). IOError naming the file when
// it exists but cannot be read; InvalidArgument when it holds more than one
// line or a control character. Never echoes the token. The same for
// kVonageSecretCredential and vonage_api_secret (unless it or
// vonage_api_secret_file is set).
Status ReadSystemdCredentials(const std::string& credentials_dir, Config* config);

}  // namespace otpd

#endif  // OTPD_CONFIG_CREDENTIALS_H_
