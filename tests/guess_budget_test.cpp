#include "config/guess_budget.h"

#include <doctest/doctest.h>

namespace otpd {

TEST_CASE("ComputeGuessBudget: the defaults allow 10 guesses per user, 18100 per client") {
  const Config c;
  const GuessBudget b = ComputeGuessBudget(c);
  CHECK(b.per_user == 10);  // verify_failure_cap per hour
  CHECK(b.per_client == 300 * 60 + 100);
  CHECK(b.per_user_chance == doctest::Approx(1e-5));
  CHECK(DescribeGuessBudget(c) ==
        "# brute-force budget: with these settings one user can be guessed at most 10 times an "
        "hour (chance 1e-05 of finding a 6-digit code), one IP (IPv6: one /64) 18100 times\n");
}

TEST_CASE("ComputeGuessBudget: the tightest limit wins; a short window refills") {
  Config c;
  c.verify_failure_cap = 0;  // then the codes a user can get bound it
  CHECK(ComputeGuessBudget(c).per_user == (5 + 1) * 3);
  c.send_user_cap = 0;
  c.send_cooldown = 600;  // 6 codes an hour, plus the live one
  CHECK(ComputeGuessBudget(c).per_user == (6 + 1) * 3);
  c.send_cooldown = 0;
  CHECK(ComputeGuessBudget(c).per_user == -1);
  CHECK(ComputeGuessBudget(c).per_user_chance == 1);
  c.verify_failure_cap = 4;
  c.verify_failure_window = 900;  // four windows an hour
  CHECK(ComputeGuessBudget(c).per_user == 16);
  c.ip_requests_per_minute = 0;
  CHECK(ComputeGuessBudget(c).per_client == -1);
  CHECK(DescribeGuessBudget(c).find("one IP (IPv6: one /64) without limit") != std::string::npos);
}

}  // namespace otpd
