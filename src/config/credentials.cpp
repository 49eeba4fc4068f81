#include "config/credentials.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

namespace otpd {

const char kTwilioTokenCredential[] = "twilio_auth_token";

namespace {

bool HasControl(const std::string& s) {
  for (unsigned char c : s) {
    if (c < 0x20 || c == 0x7f) return true;
  }
  return false;
}

}  // namespace

Status ReadSystemdCredentials(const std::string& credentials_dir, Config* config) {
  if (credentials_dir.empty()) return Status::OK();
  if (!config->twilio_auth_token.empty() || !config->twilio_auth_token_file.empty()) {
    return Status::OK();
  }
  const std::string path = credentials_dir + "/" + kTwilioTokenCredential;
  struct stat st;
  if (stat(path.c_str(), &st) != 0 && errno == ENOENT) return Status::OK();
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::IOError("credential " + path + ": " + strerror(errno));
  std::ostringstream text;
  text << in.rdbuf();
  std::string token = text.str();
  while (!token.empty() && (token.back() == '\n' || token.back() == '\r')) token.pop_back();
  if (token.empty()) return Status::OK();
  if (HasControl(token)) {
    return Status::InvalidArgument("credential " + path + ": must hold the Twilio token on one line");
  }
  config->twilio_auth_token = std::move(token);
  return Status::OK();
}

}  // namespace otpd
