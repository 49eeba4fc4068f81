#include "log.h"

#include <doctest/doctest.h>

namespace otpd {

TEST_CASE("FormatLogLine writes logfmt and quotes what needs it") {
  CHECK(FormatLogLine(LogLevel::kInfo, "started", {{"port", "8000"}}) ==
        "level=info msg=started port=8000\n");
  CHECK(FormatLogLine(LogLevel::kWarn, "two words", {{"k", "a=b"}, {"e", ""}}) ==
        "level=warn msg=\"two words\" k=\"a=b\" e=\"\"\n");
}

TEST_CASE("FormatLogLine escapes control characters: no forged lines") {
  std::string line = FormatLogLine(LogLevel::kError, "x", {{"user_id", "a\nlevel=info msg=forged"}});
  CHECK(line.find('\n') == line.size() - 1);
  CHECK(line.find("\\n") != std::string::npos);
  CHECK(FormatLogLine(LogLevel::kInfo, "x", {{"v", std::string("\x01\"\\", 3)}}) ==
        "level=info msg=x v=\"\\x01\\\"\\\\\"\n");
}

TEST_CASE("ParseLogLevel and SetLogLevel filter levels") {
  LogLevel level = LogLevel::kInfo;
  CHECK(ParseLogLevel("debug", &level));
  CHECK(level == LogLevel::kDebug);
  CHECK_FALSE(ParseLogLevel("verbose", &level));
  SetLogLevel(LogLevel::kWarn);
  CHECK_FALSE(LogEnabled(LogLevel::kInfo));
  CHECK(LogEnabled(LogLevel::kError));
  SetLogLevel(LogLevel::kInfo);
  CHECK(LogEnabled(LogLevel::kInfo));
}

}  // namespace otpd
