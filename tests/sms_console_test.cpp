#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>

#include "otp/sms.h"
#include "test_util.h"

namespace otpd {

TEST_CASE("RenderSmsTemplate fills {code}, {minutes} and {app}") {
  CHECK(RenderSmsTemplate("Your {app} code is {code}. It expires in {minutes} minutes.", "012345",
                          5, "Acme") == "Your Acme code is 012345. It expires in 5 minutes.");
  CHECK(RenderSmsTemplate("{code}{code} {unknown} {", "1", 2, "a") == "11 {unknown} {");
}

TEST_CASE("Console sender appends one line per message to sms_log_file, 0600") {
  TempDir dir;
  const std::string path = dir.File("sms.log");
  std::unique_ptr<SmsSender> sender;
  REQUIRE(NewConsoleSmsSender(path, &sender).ok());
  SmsReceipt r1, r2;
  REQUIRE(sender->Send("+12015551111", "code 123456", &r1).ok());
  REQUIRE(sender->Send("+12025552222", "two\nlines", &r2).ok());
  CHECK(r1.provider_id != r2.provider_id);
  std::ifstream in(path);
  std::stringstream all;
  all << in.rdbuf();
  CHECK(all.str() == "+12015551111 code 123456\n+12025552222 two lines\n");
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
}

TEST_CASE("Console sender reports an sms_log_file it cannot open") {
  std::unique_ptr<SmsSender> sender;
  Status s = NewConsoleSmsSender("/nonexistent-dir/sms.log", &sender);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("sms_log_file") != std::string::npos);
}

}  // namespace otpd
