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
    d = std::max(d, std::fabs(static_cast<double>(i) / a.size() - static_cast<double>(j) / b.size()));
  }
  return d;
}

}  // namespace

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
