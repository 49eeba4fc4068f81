#include "core/code_hash.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <thread>
#include <vector>

#include "test_util.h"

namespace otpd {

TEST_CASE("CodeHasher: same input same hash; user, code and secret all matter") {
  CodeHasher h("secret-one-0123456789");
  CodeHasher other("secret-two-0123456789");
  const std::string a = h.Hash("abc", "123456");
  CHECK(a.size() == 32);
  CHECK(a == h.Hash("abc", "123456"));
  CHECK(a != h.Hash("abd", "123456"));
  CHECK(a != h.Hash("abc", "123457"));
  CHECK(a != other.Hash("abc", "123456"));
  CHECK(h.Hash("ab", "c1") != h.Hash("abc", "1"));  // the length prefix
  CHECK(a.find("123456") == std::string::npos);     // not the code itself
}

std::string Hex(const std::string& bytes) {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out.push_back(kDigits[c >> 4]);
    out.push_back(kDigits[c & 15]);
  }
  return out;
}

TEST_CASE("CodeHasher::Mac is HMAC-SHA256 (RFC 4231 test cases 1, 2 and 6)") {
  CHECK(Hex(CodeHasher(std::string(20, '\x0b')).Mac("Hi There")) ==
        "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
  CHECK(Hex(CodeHasher("Jefe").Mac("what do ya want for nothing?")) ==
        "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
  // A key longer than one block is hashed first.
  CHECK(Hex(CodeHasher(std::string(131, '\xaa'))
                .Mac("Test Using Larger Than Block-Size Key - Hash Key First")) ==
        "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
}

TEST_CASE("CodeHasher is safe to share between threads") {
  CodeHasher h("shared-secret-0123456789");
  const std::string expected = h.Hash("abc", "123456");
  std::vector<std::thread> threads;
  std::atomic<int> mismatches{0};
  for (int t = 0; t < 4; t++) {
    threads.emplace_back([&] {
      for (int i = 0; i < 2000; i++) {
        if (h.Hash("abc", "123456") != expected) mismatches++;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(mismatches == 0);
}

TEST_CASE("CodeHasher::Equal compares whole values") {
  CHECK(CodeHasher::Equal("abc", "abc"));
  CHECK_FALSE(CodeHasher::Equal("abc", "abd"));
  CHECK_FALSE(CodeHasher::Equal("abc", "abcd"));
  CHECK_FALSE(CodeHasher::Equal("", "a"));
}

TEST_CASE("LoadOrCreateSecret creates a 0600 file once and reads it back") {
  TempDir dir;
  const std::string path = dir.File("otpd.secret");
  std::string first, second;
  REQUIRE(LoadOrCreateSecret(path, OpenSslRandom(), &first).ok());
  CHECK(first.size() == 64);
  struct stat st;
  REQUIRE(stat(path.c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0600);
  REQUIRE(LoadOrCreateSecret(path, OpenSslRandom(), &second).ok());
  CHECK(first == second);
}

TEST_CASE("LoadOrCreateSecret: concurrent starters agree on one secret" *
          doctest::test_suite("tsan")) {
  TempDir dir;
  const std::string path = dir.File("otpd.secret");
  std::vector<std::string> got(8);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < got.size(); i++) {
    threads.emplace_back(
        [&, i] { CHECK(LoadOrCreateSecret(path, OpenSslRandom(), &got[i]).ok()); });
  }
  for (auto& t : threads) t.join();
  for (const auto& s : got) CHECK(s == got[0]);
}

TEST_CASE("LoadOrCreateSecret refuses a world-readable or short secret file") {
  TempDir dir;
  const std::string path = dir.File("otpd.secret");
  { std::ofstream(path) << "0123456789abcdef0123456789abcdef\n"; }
  chmod(path.c_str(), 0644);
  std::string secret;
  Status s = LoadOrCreateSecret(path, OpenSslRandom(), &secret);
  CHECK(s.IsInvalidArgument());
  CHECK(s.message().find("chmod 600") != std::string::npos);
  chmod(path.c_str(), 0600);
  CHECK(LoadOrCreateSecret(path, OpenSslRandom(), &secret).ok());
  { std::ofstream(path) << "short\n"; }
  CHECK(LoadOrCreateSecret(path, OpenSslRandom(), &secret).IsInvalidArgument());
}

TEST_CASE("LoadOrCreateSecret reports a directory it cannot write") {
  std::string secret;
  Status s = LoadOrCreateSecret("/nonexistent-dir/otpd.secret", OpenSslRandom(), &secret);
  CHECK_FALSE(s.ok());
  CHECK(s.message().find("/nonexistent-dir/otpd.secret") != std::string::npos);
}

TEST_CASE("CodeHasher::Fingerprint names the secret without showing it") {
  const CodeHasher a("fingerprint-secret-0123456789");
  const CodeHasher same("fingerprint-secret-0123456789");
  const CodeHasher other("fingerprint-secret-0123456780");
  CHECK(a.Fingerprint() == same.Fingerprint());
  CHECK(a.Fingerprint() != other.Fingerprint());
  CHECK(a.Fingerprint().size() == 32);
  CHECK(a.Fingerprint().find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a.Fingerprint().find("fingerprint-secret") == std::string::npos);
}

}  // namespace otpd
