#include "config/config_path.h"

#include <sys/stat.h>

#include <cerrno>

#ifndef OTPD_DEFAULT_CONFIG
#define OTPD_DEFAULT_CONFIG "/etc/otpd/otpd.conf"
#endif

namespace otpd {

const char kDefaultConfigPath[] = OTPD_DEFAULT_CONFIG;

std::string DefaultConfigFile(const char* override_path) {
  const std::string path = override_path != nullptr ? override_path : kDefaultConfigPath;
  if (path.empty()) return "";
  struct stat st;
  if (stat(path.c_str(), &st) != 0 && (errno == ENOENT || errno == ENOTDIR)) return "";
  return path;
}

}  // namespace otpd
