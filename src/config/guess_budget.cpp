#include "config/guess_budget.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace otpd {
namespace {

constexpr int64_t kHour = 3600;

// At most `cap` events in any rolling `window_s`: how many fit in an hour.
// A window shorter than the hour lets the cap be used again as each event
// ages out.
int64_t PerHour(int64_t cap, int64_t window_s) {
  if (window_s >= kHour) return cap;
  return cap * ((kHour + window_s - 1) / window_s);
}

// The smaller of two bounds, -1 meaning none.
int64_t Tighter(int64_t a, int64_t b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return std::min(a, b);
}

std::string Bound(int64_t n) { return n < 0 ? "without limit" : std::to_string(n) + " times"; }

}  // namespace

GuessBudget ComputeGuessBudget(const Config& c) {
  GuessBudget b;
  // Failures across codes in the rolling window.
  const int64_t by_failures =
      c.verify_failure_cap > 0 ? PerHour(c.verify_failure_cap, c.verify_failure_window) : -1;
  // Codes a user can get in an hour, each taking max_attempts guesses.
  int64_t codes = c.send_user_cap > 0 ? c.send_user_cap : -1;
  if (c.send_cooldown > 0) {
    codes = Tighter(codes, (kHour + c.send_cooldown - 1) / c.send_cooldown);
  }
  // The code live at the start of the hour can be guessed too.
  const int64_t by_codes = codes < 0 ? -1 : (codes + 1) * c.max_attempts;
  b.per_user = Tighter(by_failures, by_codes);
  if (c.ip_requests_per_minute > 0) {
    b.per_client = int64_t{c.ip_requests_per_minute} * 60 + c.ip_burst;
  }
  if (b.per_user >= 0) {
    // Each wrong guess rules one value out of 10^code_length.
    b.per_user_chance =
        std::min(1.0, static_cast<double>(b.per_user) / std::pow(10.0, c.code_length));
  }
  return b;
}

std::string DescribeGuessBudget(const Config& c) {
  const GuessBudget b = ComputeGuessBudget(c);
  char chance[64];
  snprintf(chance, sizeof(chance), "%.2g", b.per_user_chance);
  return "# brute-force budget: with these settings one user can be guessed at most " +
         Bound(b.per_user) + " an hour (chance " + chance + " of finding a " +
         std::to_string(c.code_length) + "-digit code), one IP (IPv6: one /64) " +
         Bound(b.per_client) + "\n";
}

}  // namespace otpd
