// FailoverSmsSender (otp/sms.h): providers in order, one circuit breaker
// each, one deadline for the whole send.
#include <algorithm>
#include <set>
#include <utility>

#include "core/log.h"
#include "core/phone.h"
#include "core/provider_metrics.h"
#include "otp/sms.h"
#include "sms/circuit_breaker.h"

namespace otpd {

using Steady = std::chrono::steady_clock;
using Millis = std::chrono::milliseconds;
using Result = ProviderMetrics::Result;

namespace {

// Less than this left: no provider is worth starting.
constexpr Millis kMinSlice(20);

}  // namespace

struct FailoverSmsSender::Impl {
  struct Entry {
    std::string name;
    std::unique_ptr<SmsSender> sender;
    std::unique_ptr<CircuitBreaker> breaker;
  };
  FailoverOptions options;
  std::vector<Entry> entries;
  ProviderMetrics metrics;

  // The deadline provider `i` gets: its share of what is left.
  Deadline Slice(size_t i, Deadline deadline);
  void Fault(Entry& e, const Status& s, bool next_left);
  void Success(Entry& e);
};

SmsSender::Deadline FailoverSmsSender::Impl::Slice(size_t i, Deadline deadline) {
  size_t after = 0;
  for (size_t j = i + 1; j < entries.size(); ++j) {
    if (!entries[j].breaker->Blocked()) ++after;
  }
  const Steady::time_point now = Steady::now();
  if (after == 0 || deadline <= now) return deadline;
  return now + (deadline - now) / static_cast<int64_t>(after + 1);
}

void FailoverSmsSender::Impl::Success(Entry& e) {
  const bool was_open = e.breaker->state() != CircuitBreaker::State::kClosed;
  e.breaker->RecordSuccess();
  if (was_open) {
    metrics.SetCircuitOpen(e.name, false);
    Log(LogLevel::kInfo, "sms provider circuit closed", {{"provider", e.name}});
  }
}

void FailoverSmsSender::Impl::Fault(Entry& e, const Status& s, bool next_left) {
  metrics.RecordAttempt(e.name, Result::kProviderFault);
  if (next_left) metrics.RecordFailover(e.name);
  Log(LogLevel::kWarn, "sms provider failed",
      {{"provider", e.name},
       {"next", next_left ? "the next provider" : "none left"},
       {"error", s.message()}});
  if (e.breaker->RecordFault()) {
    metrics.SetCircuitOpen(e.name, true);
    Log(LogLevel::kWarn, "sms provider circuit opened",
        {{"provider", e.name}, {"cooloff_ms", std::to_string(options.breaker_cooloff_ms)}});
  }
}

FailoverSmsSender::FailoverSmsSender(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
FailoverSmsSender::~FailoverSmsSender() = default;

Status FailoverSmsSender::New(std::vector<SmsProvider> providers, const FailoverOptions& options,
                              Clock* clock, std::unique_ptr<FailoverSmsSender>* sender) {
  if (providers.empty()) return Status::InvalidArgument("sms_backend names no provider");
  if (options.timeout_ms < 1 || options.breaker_failures < 1 || options.breaker_cooloff_ms < 1) {
    return Status::InvalidArgument("sms failover timeouts and breaker settings must be positive");
  }
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  std::set<std::string> names;
  for (SmsProvider& p : providers) {
    if (p.sender == nullptr)
      return Status::InvalidArgument("sms provider " + p.name + ": no sender");
    if (!names.insert(p.name).second) {
      return Status::InvalidArgument("sms_backend names " + p.name + " twice");
    }
    impl->entries.push_back(
        Impl::Entry{p.name, std::move(p.sender),
                    std::make_unique<CircuitBreaker>(clock, options.breaker_failures,
                                                     options.breaker_cooloff_ms)});
    impl->metrics.SetCircuitOpen(p.name, false);
  }
  sender->reset(new FailoverSmsSender(std::move(impl)));
  return Status::OK();
}

Status FailoverSmsSender::Send(const std::string& to, const std::string& body,
                               SmsReceipt* receipt) {
  return SendBy(to, body, Steady::now() + Millis(impl_->options.timeout_ms), receipt);
}

Status FailoverSmsSender::SendBy(const std::string& to, const std::string& body, Deadline deadline,
                                 SmsReceipt* receipt) {
  deadline = std::min(deadline, Steady::now() + Millis(impl_->options.timeout_ms));
  *receipt = SmsReceipt();
  Status last = Status::Unavailable("every SMS provider's circuit is open (cooling off)");
  std::string failed;  // the providers that failed, for the log line
  std::vector<Impl::Entry>& entries = impl_->entries;
  for (size_t i = 0; i < entries.size(); ++i) {
    Impl::Entry& e = entries[i];
    if (deadline - Steady::now() < kMinSlice) {
      // The last provider's own failure says more, when there was one.
      if (failed.empty()) last = Status::Unavailable("sms send deadline passed");
      break;
    }
    if (!e.breaker->Allow()) {
      impl_->metrics.RecordAttempt(e.name, Result::kCircuitOpen);
      continue;
    }
    SmsReceipt r;
    Status s = e.sender->SendBy(to, body, impl_->Slice(i, deadline), &r);
    if (r.provider.empty()) r.provider = e.name;
    *receipt = r;
    if (s.ok() || r.number_refused) {
      impl_->Success(e);
      impl_->metrics.RecordAttempt(e.name, s.ok() ? Result::kAccepted : Result::kNumberRefused);
      if (s.ok() && !failed.empty()) {
        Log(LogLevel::kInfo, "sms sent after failover",
            {{"to", MaskPhone(to)}, {"provider", e.name}, {"failed", failed}});
      }
      return s;
    }
    impl_->Fault(e, s, i + 1 < entries.size());
    failed += (failed.empty() ? "" : ",") + e.name;
    last = s;
  }
  return last;
}

bool FailoverSmsSender::Supports(Channel channel) const {
  for (const Impl::Entry& e : impl_->entries) {
    if (e.sender->Supports(channel)) return true;
  }
  return false;
}

Status FailoverSmsSender::SendCode(const std::string& to, const CodeMessage& message,
                                   SmsReceipt* receipt) {
  if (message.channel == Channel::kSms) return Send(to, message.text, receipt);
  for (Impl::Entry& e : impl_->entries) {
    if (!e.sender->Supports(message.channel)) continue;
    Status s = e.sender->SendCode(to, message, receipt);
    if (receipt->provider.empty()) receipt->provider = e.name;
    return s;
  }
  return SmsSender::SendCode(to, message, receipt);
}

std::vector<SmsProviderState> FailoverSmsSender::ProviderStates() {
  std::vector<SmsProviderState> out;
  for (Impl::Entry& e : impl_->entries) {
    out.push_back({e.name, CircuitBreaker::StateName(e.breaker->state())});
  }
  return out;
}

std::string FailoverSmsSender::RenderMetrics() { return impl_->metrics.Render(); }

const ProviderMetrics& FailoverSmsSender::metrics() const { return impl_->metrics; }

}  // namespace otpd
