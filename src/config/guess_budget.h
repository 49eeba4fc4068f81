// The brute-force budget a configuration allows: how many wrong codes one
// user, and one client, can try in an hour. `otpd check-config` prints it
// so an operator sees what their limits add up to. Pure functions.
#ifndef OTPD_GUESS_BUDGET_H_
#define OTPD_GUESS_BUDGET_H_

#include <cstdint>
#include <string>

#include "config/config.h"

namespace otpd {

struct GuessBudget {
  // Guesses at one user's codes in any hour; -1: no limit bounds it.
  int64_t per_user = -1;
  // Requests (so guesses) one client (IPv4 address, IPv6 /64) can make
  // in any hour; -1: no limit bounds it.
  int64_t per_client = -1;
  // The chance that per_user guesses hit one user's code, 0..1
  // (1 when per_user is unbounded).
  double per_user_chance = 1;
};

// From verify_failure_cap and its window, max_attempts times the codes a
// user can be sent in an hour (send_user_cap, send_cooldown), and the
// request limit (ip_requests_per_minute, ip_burst).
GuessBudget ComputeGuessBudget(const Config& config);

// "# brute-force budget: one user can be guessed at most N times an hour
// (chance P of finding a 6-digit code), one IP M times", one comment line.
std::string DescribeGuessBudget(const Config& config);

}  // namespace otpd

#endif  // OTPD_GUESS_BUDGET_H_
