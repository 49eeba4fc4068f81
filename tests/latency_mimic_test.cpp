// Concealed sends must take as long as real ones, in distribution: a
// two-sample Kolmogorov-Smirnov check of the answer times, on the fake
// clock's monotonic time (no wall clock, no sleeping).
#include "otp/latency_mimic.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "otp_stack.h"

namespace otpd {
namespace {

// An SMS provider whose sends take a skewed, wide spread of times
// (log-normal around 300 ms, as real provider round trips are).
class SlowSms : public SmsSender {
 public:
  SlowSms(SmsSender* target, FakeClock* clock) : target_(target), clock_(clock) {}
  Status Send(const std::string& to, const std::string& body, SmsReceipt* receipt) override {
    const int64_t took = static_cast<int64_t>(std::exp(dist_(rng_)) * 1000);
    took_.push_back(took);
    clock_->AdvanceMonotonicMicros(took);
    return target_->Send(to, body, receipt);
  }
  std::vector<int64_t> took_;

 private:
  SmsSender* target_;
  FakeClock* clock_;
  std::mt19937_64 rng_{7};
  std::normal_distribution<double> dist_{std::log(300.0), 0.6};
};

// The two-sample Kolmogorov-Smirnov statistic: the largest gap between
// the two empirical distribution functions.
double KsStatistic(std::vector<int64_t> a, std::vector<int64_t> b) {
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t i = 0, j = 0;
  double d = 0;
  while (i < a.size() && j < b.size()) {
    const int64_t x = std::min(a[i], b[j]);
    while (i < a.size() && a[i] <= x) i++;
    while (j < b.size() && b[j] <= x) j++;
    d = std::max(d,
                 std::fabs(static_cast<double>(i) / a.size() - static_cast<double>(j) / b.size()));
  }
  return d;
}

// The one-sample Kolmogorov-Smirnov statistic of `a` against the uniform
// distribution over [low, high].
double KsUniform(std::vector<int64_t> a, double low, double high) {
  std::sort(a.begin(), a.end());
  double d = 0;
  for (size_t i = 0; i < a.size(); i++) {
    const double f = std::clamp((static_cast<double>(a[i]) - low) / (high - low), 0.0, 1.0);
    d = std::max({d, std::fabs(f - static_cast<double>(i) / a.size()),
                  std::fabs(f - static_cast<double>(i + 1) / a.size())});
  }
  return d;
}

}  // namespace

TEST_CASE("LatencyMimic with a prior: unfilled slots draw from it, real times take over") {
  LatencyMimic mimic(4);
  SeededRandom random(3);
  std::vector<int64_t> drawn;
  for (int i = 0; i < 400; i++) drawn.push_back(mimic.Sample(&random, 1000, 3000));
  // Nothing recorded: all from the prior, spread over it.
  CHECK(*std::min_element(drawn.begin(), drawn.end()) >= 1000);
  CHECK(*std::max_element(drawn.begin(), drawn.end()) <= 3000);
  CHECK(KsUniform(drawn, 1000, 3000) < 1.95 / std::sqrt(400.0));
  // One slot of four is real: about a quarter of the draws are it.
  mimic.Record(7);
  int sevens = 0;
  for (int i = 0; i < 400; i++) sevens += mimic.Sample(&random, 1000, 3000) == 7 ? 1 : 0;
  CHECK(sevens > 60);
  CHECK(sevens < 140);
  // Full: the prior is never used again.
  for (int64_t v : {8, 9, 10}) mimic.Record(v);
  for (int i = 0; i < 100; i++) CHECK(mimic.Sample(&random, 1000, 3000) <= 10);
}

TEST_CASE("concealed sends before any real send wait like a provider round trip (KS check)") {
  OtpOptions options;
  options.conceal_unknown_users = true;
  options.send_limits = SendLimits{0, 0, 0, 0, 0, 3600 * 1000};
  options.conceal_initial_wait_us = 300 * 1000;
  OtpStack stack(options);
  OtpService service(options, stack.storage.get(), stack.users.get(), &stack.sms, &stack.clock,
                     &stack.random, &stack.hasher);
  constexpr int kRounds = 200;
  std::vector<int64_t> waits;
  for (int i = 0; i < kRounds; i++) {
    const int64_t slept = stack.clock.slept_micros();
    SendResult r;
    REQUIRE(service.SendCode("nobody" + std::to_string(i), "192.0.2.1", &r).ok());
    REQUIRE(r.concealed);
    waits.push_back(stack.clock.slept_micros() - slept);
  }
  CHECK(stack.sms.count() == 0);
  // Not an instant answer (the tell before this prior existed), and spread
  // like uniform [150 ms, 450 ms], not a constant.
  CHECK(*std::min_element(waits.begin(), waits.end()) >= 150 * 1000);
  CHECK(*std::max_element(waits.begin(), waits.end()) <= 450 * 1000);
  const double critical = 1.95 / std::sqrt(static_cast<double>(kRounds));
  CHECK(KsUniform(waits, 150e3, 450e3) < critical);
  std::vector<int64_t> constant(kRounds, 300 * 1000);
  CHECK(KsUniform(constant, 150e3, 450e3) > critical);
}

TEST_CASE("LatencyMimic draws only recorded values, the last `capacity` of them") {
  LatencyMimic mimic(3);
  SeededRandom random(1);
  CHECK(mimic.Sample(&random) == 0);  // nothing recorded yet
  for (int64_t v : {5, 6, 7, 8}) mimic.Record(v);
  CHECK(mimic.size() == 3);
  std::vector<int> seen(10, 0);
  for (int i = 0; i < 300; i++) seen[static_cast<size_t>(mimic.Sample(&random))]++;
  CHECK(seen[5] == 0);  // pushed out by 8
  CHECK(seen[6] > 50);
  CHECK(seen[7] > 50);
  CHECK(seen[8] > 50);
}

TEST_CASE("concealed sends wait like real sends: the same distribution (KS check)") {
  OtpOptions options;
  options.conceal_unknown_users = true;
  options.send_limits = SendLimits{0, 0, 0, 0, 0, 3600 * 1000};
  OtpStack stack(options);
  SlowSms slow(&stack.sms, &stack.clock);
  OtpService service(options, stack.storage.get(), stack.users.get(), &slow, &stack.clock,
                     &stack.random, &stack.hasher);
  constexpr int kRounds = 200;
  std::vector<int64_t> concealed;
  for (int i = 0; i < kRounds; i++) {
    SendResult r;
    REQUIRE(service.SendCode("abc", "192.0.2.1", &r).ok());
    REQUIRE(r.outcome == SendOutcome::kSent);
    const int64_t slept = stack.clock.slept_micros();
    REQUIRE(service.SendCode("nobody" + std::to_string(i), "192.0.2.1", &r).ok());
    REQUIRE(r.concealed);
    concealed.push_back(stack.clock.slept_micros() - slept);
  }
  REQUIRE(slow.took_.size() == kRounds);
  // Critical value at alpha = 0.001 for two samples of 200: 1.95 * sqrt(2/200).
  const double critical = 1.95 * std::sqrt(2.0 / kRounds);
  const double d = KsStatistic(slow.took_, concealed);
  CAPTURE(d);
  CHECK(d < critical);
  // A constant wait (a moving average) is far off: the check can fail.
  std::vector<int64_t> average(kRounds, 300 * 1000);
  CHECK(KsStatistic(slow.took_, average) > critical);
}

}  // namespace otpd
