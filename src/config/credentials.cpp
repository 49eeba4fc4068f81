#include "config/credentials.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace otpd {

const char kTwilioTokenCredential[] = "twilio_auth_token";
const char kVonageSecretCredential[] = "vonage_api_secret";

namespace {

bool HasControl(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

// Reads credentials_dir/name into *value unless `skip`. A missing or empty
// file changes nothing.
Status ReadCredential(const std::string& credentials_dir, const char* name, const char* what,
                      bool skip, std::string* value) {
  if (skip) return Status::OK();
  const std::string path = credentials_dir + "/" + name;
  struct stat st;
  if (stat(path.c_str(), &st) != 0 && errno == ENOENT) return Status::OK();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("credential " + path + ": " + strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string secret = text.str();
  while (!secret.empty() && (secret.back() == '\n' || secret.back() == '\r')) secret.pop_back();
  if (secret.empty()) return Status::OK();
  if (HasControl(secret)) {
    return Status::InvalidArgument("credential " + path + ": must hold the " + what +
                                   " on one line");
  }
  *value = std::move(secret);
  return Status::OK();
}

}  // namespace

Status ReadSystemdCredentials(const std::string& credentials_dir, Config* config) {
  if (credentials_dir.empty()) return Status::OK();
  Status s =
      ReadCredential(credentials_dir, kTwilioTokenCredential, "Twilio token",
                     !config->twilio_auth_token.empty() || !config->twilio_auth_token_file.empty(),
                     &config->twilio_auth_token);
  if (!s.ok()) return s;
  return ReadCredential(
      credentials_dir, kVonageSecretCredential, "Vonage secret",
      !config->vonage_api_secret.empty() || !config->vonage_api_secret_file.empty(),
      &config->vonage_api_secret);
}

}  // namespace otpd
