#include "core/random.h"

#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "test_util.h"

namespace otpd {
namespace {

// Chi-square statistic of `counts` against a uniform expectation.
double ChiSquare(const std::vector<int>& counts, double expected) {
  double chi = 0;
  for (int c : counts) chi += (c - expected) * (c - expected) / expected;
  return chi;
}

// Returns all-ones bytes for the first `bad_draws` 8-byte draws (a value
// the rejection step must refuse), then zeros.
class RiggedRandom : public RandomSource {
 public:
  explicit RiggedRandom(int bad_draws) : bad_draws_(bad_draws) {}
  Status Fill(uint8_t* buf, size_t n) override {
    draws_++;
    memset(buf, draws_ <= bad_draws_ ? 0xff : 0x00, n);
    return Status::OK();
  }
  int draws_ = 0;

 private:
  int bad_draws_;
};

}  // namespace

TEST_CASE("GenerateCode gives exactly `length` digits, leading zeros included") {
  SeededRandom random(1);
  bool saw_leading_zero = false;
  for (int length = 4; length <= 10; length++) {
    for (int i = 0; i < 200; i++) {
      std::string code;
      REQUIRE(GenerateCode(&random, length, &code).ok());
      REQUIRE(code.size() == static_cast<size_t>(length));
      CHECK(code.find_first_not_of("0123456789") == std::string::npos);
      saw_leading_zero |= code[0] == '0';
    }
  }
  CHECK(saw_leading_zero);
}

TEST_CASE("GenerateCode rejects the biased top of the 64-bit range") {
  RiggedRandom random(2);
  std::string code;
  REQUIRE(GenerateCode(&random, 6, &code).ok());
  CHECK(random.draws_ == 3);  // two draws refused, the third taken
  CHECK(code == "000000");
}

TEST_CASE("GenerateCode is uniform over every code of a length (chi-square)") {
  // 4 digits: 10 000 codes, 400 000 draws, about 40 per code. The 0.1%
  // critical value of chi-square with 9 999 degrees of freedom is ~10 535.
  for (RandomSource* random : {static_cast<RandomSource*>(new SeededRandom(7)), OpenSslRandom()}) {
    std::vector<int> counts(10000, 0);
    std::vector<int> first_digit(10, 0);
    int failed = 0;  // counted here, asserted once below
    for (int i = 0; i < 400000; i++) {
      std::string code;
      if (!GenerateCode(random, 4, &code).ok() || code.size() != 4) {
        failed++;
        continue;
      }
      counts[static_cast<size_t>(std::stoi(code))]++;
      first_digit[static_cast<size_t>(code[0] - '0')]++;
    }
    REQUIRE(failed == 0);
    CHECK(ChiSquare(counts, 40.0) < 10535);
    CHECK(ChiSquare(first_digit, 40000.0) < 27.88);  // 9 dof, p = 0.001
    if (random != OpenSslRandom()) delete random;
  }
}

TEST_CASE("GenerateCode refuses lengths it cannot draw without bias") {
  SeededRandom random(1);
  std::string code;
  CHECK(GenerateCode(&random, 0, &code).IsInvalidArgument());
  CHECK(GenerateCode(&random, 19, &code).IsInvalidArgument());
}

TEST_CASE("RandomHex gives 2n hex characters and differs between draws") {
  std::string a, b;
  REQUIRE(RandomHex(OpenSslRandom(), 32, &a).ok());
  REQUIRE(RandomHex(OpenSslRandom(), 32, &b).ok());
  CHECK(a.size() == 64);
  CHECK(a.find_first_not_of("0123456789abcdef") == std::string::npos);
  CHECK(a != b);
}

}  // namespace otpd
