// toml++ (Debian's libtomlplusplus-dev, 3.3) as otpd uses it: no
// exceptions (parse returns a parse_result), no formatters, and its
// implementation compiled once, in toml_parser.cpp, so no library is
// linked and sanitizer and fuzz builds instrument the parser too. Include
// this, never <toml++/toml.h> directly: every file must agree on these.
#ifndef OTPD_CONFIG_TOML_PARSER_H_
#define OTPD_CONFIG_TOML_PARSER_H_

#define TOML_EXCEPTIONS 0
#define TOML_HEADER_ONLY 0
#define TOML_ENABLE_FORMATTERS 0
#define TOML_ENABLE_WINDOWS_COMPAT 0
#include <toml++/toml.h>

#endif  // OTPD_CONFIG_TOML_PARSER_H_
