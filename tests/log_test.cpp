#include "core/log.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "test_util.h"

namespace otpd {

TEST_CASE("FormatLogLine writes logfmt and quotes what needs it") {
  CHECK(FormatLogLine(LogLevel::kInfo, "started", {{"port", "8000"}}) ==
        "level=info msg=started port=8000\n");
  CHECK(FormatLogLine(LogLevel::kWarn, "two words", {{"k", "a=b"}, {"e", ""}}) ==
        "level=warn msg=\"two words\" k=\"a=b\" e=\"\"\n");
}

TEST_CASE("FormatLogLine escapes control characters: no forged lines") {
  std::string line =
      FormatLogLine(LogLevel::kError, "x", {{"user_id", "a\nlevel=info msg=forged"}});
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

namespace {

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

TEST_CASE("OpenLogFile sends stderr to a file and reopens it after a rename") {
  TempDir dir;
  const int saved = dup(STDERR_FILENO);
  REQUIRE(saved >= 0);
  const std::string path = dir.File("otpd.log");
  REQUIRE(OpenLogFile(path).ok());
  Log(LogLevel::kWarn, "first");
  REQUIRE(rename(path.c_str(), (path + ".1").c_str()) == 0);
  REQUIRE(OpenLogFile(path).ok());
  Log(LogLevel::kWarn, "second");
  const Status bad = OpenLogFile(dir.File("no/such/dir/otpd.log"));
  Log(LogLevel::kWarn, "third");
  dup2(saved, STDERR_FILENO);
  close(saved);
  CHECK(bad.code() == Status::Code::kIOError);
  CHECK(Slurp(path + ".1").find("msg=first") != std::string::npos);
  CHECK(Slurp(path + ".1").find("msg=second") == std::string::npos);
  CHECK(Slurp(path).find("msg=second") != std::string::npos);
  CHECK(Slurp(path).find("msg=third") != std::string::npos);  // a failed reopen keeps the file
}

TEST_CASE("IsJournalStream: only the device and inode of the descriptor's file") {
  TempDir dir;
  const std::string path = dir.File("stream");
  std::ofstream(path) << "";
  const int fd = open(path.c_str(), O_WRONLY);
  REQUIRE(fd >= 0);
  struct stat st;
  REQUIRE(fstat(fd, &st) == 0);
  const std::string dev = std::to_string(st.st_dev), ino = std::to_string(st.st_ino);
  CHECK(IsJournalStream((dev + ":" + ino).c_str(), fd));
  CHECK_FALSE(IsJournalStream((dev + ":" + std::to_string(st.st_ino + 1)).c_str(), fd));
  CHECK_FALSE(IsJournalStream((dev + ":" + ino + "x").c_str(), fd));
  CHECK_FALSE(IsJournalStream("8:12345", fd));
  CHECK_FALSE(IsJournalStream("", fd));
  CHECK_FALSE(IsJournalStream(nullptr, fd));
  close(fd);
}

TEST_CASE("JournalPrefix: syslog priorities, so journalctl -p err finds errors") {
  CHECK(JournalPrefix(LogLevel::kError) == "<3>");
  CHECK(JournalPrefix(LogLevel::kWarn) == "<4>");
  CHECK(JournalPrefix(LogLevel::kInfo) == "<6>");
  CHECK(JournalPrefix(LogLevel::kDebug) == "<7>");
}

}  // namespace otpd
