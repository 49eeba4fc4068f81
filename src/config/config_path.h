// Where otpd finds its config file when the command line names none: the
// installed one, so `sudo -u otpd otpd users list` works on an installed
// host without flags.
#ifndef OTPD_CONFIG_CONFIG_PATH_H_
#define OTPD_CONFIG_CONFIG_PATH_H_

#include <string>

namespace otpd {

// SYSCONFDIR/otpd/otpd.conf as the build was configured (the Makefile's
// OTPD_DEFAULT_CONFIG), "/etc/otpd/otpd.conf" by default.
extern const char kDefaultConfigPath[];

// The file to read when neither --config nor OTPD_CONFIG is given:
// `override_path` when not null (OTPD_DEFAULT_CONFIG, for tests and
// relocated installs), else kDefaultConfigPath; "" (no file) when that
// path does not exist. A path that exists but cannot be read is returned,
// so reading it reports the error.
std::string DefaultConfigFile(const char* override_path);

}  // namespace otpd

#endif  // OTPD_CONFIG_CONFIG_PATH_H_
