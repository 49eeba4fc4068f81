#include "http/api_keys.h"

#include <doctest/doctest.h>
#include <sys/stat.h>

#include <fstream>

#include "test_util.h"

namespace otpd {
namespace {

const char kKeyA[] = "aaaaaaaaaaaaaaaa0001";
const char kKeyB[] = "bbbbbbbbbbbbbbbb0002";

std::string WriteKeys(const TempDir& dir, const std::string& text, mode_t mode) {
  const std::string path = dir.File("keys");
  std::ofstream(path) << text;
  REQUIRE(chmod(path.c_str(), mode) == 0);
  return path;
}

}  // namespace

TEST_CASE("ApiKeys: no keys configured requires nothing") {
  ApiKeys keys;
  REQUIRE(ApiKeys::Load("", "", &keys).ok());
  CHECK(keys.empty());
}

TEST_CASE("ApiKeys: only Bearer with an exact configured key is allowed") {
  ApiKeys keys;
  REQUIRE(ApiKeys::Load(std::string(kKeyA) + " , " + kKeyB, "", &keys).ok());
  CHECK_FALSE(keys.empty());
  CHECK(keys.Allows(std::string("Bearer ") + kKeyA));
  CHECK(keys.Allows(std::string("bearer ") + kKeyB));
  CHECK_FALSE(keys.Allows(kKeyA));  // no scheme
  CHECK_FALSE(keys.Allows(std::string("Basic ") + kKeyA));
  CHECK_FALSE(keys.Allows(std::string("Bearer ") + kKeyA + "x"));            // longer
  CHECK_FALSE(keys.Allows(std::string("Bearer ") + "aaaaaaaaaaaaaaaa000"));  // prefix
  CHECK_FALSE(keys.Allows(std::string("Bearer  ") + kKeyA));                 // extra space
  CHECK_FALSE(keys.Allows("Bearer "));
  CHECK_FALSE(keys.Allows(""));
}

TEST_CASE("ApiKeys: bad keys in the list are refused without echoing them") {
  for (const char* bad :
       {"short", "has space in the middle!", "aaaaaaaaaaaaaaaa,", ",", "aaaaaaaaaaaaaaaa\x01zzz"}) {
    INFO(bad);
    CHECK(ApiKeys::CheckList(bad).IsInvalidArgument());
    ApiKeys keys;
    Status s = ApiKeys::Load(bad, "", &keys);
    CHECK(s.IsInvalidArgument());
    CHECK(s.message().find(bad) == std::string::npos);
  }
  CHECK(ApiKeys::CheckList(std::string(kKeyA) + "," + kKeyB).ok());
}

TEST_CASE("ApiKeys: the file holds one key per line and must be 0600") {
  TempDir dir;
  ApiKeys keys;
  const std::string text = std::string("# otpd keys\n\n") + kKeyA + "\r\n" + kKeyB + "\n";
  REQUIRE(ApiKeys::Load("", WriteKeys(dir, text, 0600), &keys).ok());
  CHECK(keys.Allows(std::string("Bearer ") + kKeyB));
  CHECK(keys.Allows(std::string("Bearer ") + kKeyA));

  ApiKeys untouched;
  Status s = ApiKeys::Load("", WriteKeys(dir, text, 0640), &untouched);
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("chmod 600") != std::string::npos);
  CHECK(untouched.empty());
  s = ApiKeys::Load("", WriteKeys(dir, "# nothing\n", 0600), &untouched);
  CHECK(s.message().find("holds no key") != std::string::npos);
  s = ApiKeys::Load("", WriteKeys(dir, std::string(kKeyA) + "\nshort\n", 0600), &untouched);
  CHECK(s.message().find("line 2") != std::string::npos);
  CHECK(ApiKeys::Load("", dir.File("missing"), &untouched).code() == Status::Code::kIOError);
  CHECK(untouched.empty());
}

}  // namespace otpd
