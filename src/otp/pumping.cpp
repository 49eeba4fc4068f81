#include "otp/pumping.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

#include "core/log.h"
#include "core/phone.h"

namespace otpd {
namespace {

// The calling code of `e164` whose regions include `region` ("" if none).
std::string CountryCodeOf(const std::string& e164, const std::string& region) {
  for (size_t len = 1; len <= 3 && len + 1 < e164.size(); ++len) {
    const std::vector<std::string> regions = RegionsOfCountryCode(e164.substr(1, len));
    if (std::find(regions.begin(), regions.end(), region) != regions.end()) {
      return e164.substr(1, len);
    }
  }
  return "";
}

std::string Fixed(double v, int decimals) {
  char buf[32];
  snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

int64_t Percent(int64_t part, int64_t whole) { return whole <= 0 ? 0 : part * 100 / whole; }

}  // namespace

std::vector<std::string> PumpingKeys(const std::string& phone, int prefix_digits) {
  PhoneInfo info;
  if (!ParsePhone(phone, &info).ok()) return {};
  return PumpingKeysOf(info, prefix_digits);
}

std::vector<std::string> PumpingKeysOf(const PhoneInfo& info, int prefix_digits) {
  if (info.region.empty() || info.e164.empty()) return {};
  std::vector<std::string> keys = {info.region};
  if (prefix_digits <= 0) return keys;
  const std::string cc = CountryCodeOf(info.e164, info.region);
  if (cc.empty()) return keys;
  const std::string national = info.e164.substr(1 + cc.size());
  keys.push_back("+" + cc + "-" + national.substr(0, static_cast<size_t>(prefix_digits)));
  return keys;
}

bool IsPrefixKey(const std::string& key) { return !key.empty() && key[0] == '+'; }

Status ParsePumpingKey(const std::string& text, int prefix_digits, std::string* key) {
  if (text.size() == 2 && std::isalpha(static_cast<unsigned char>(text[0])) &&
      std::isalpha(static_cast<unsigned char>(text[1]))) {
    std::vector<std::string> regions;
    Status s = ParseRegions(text, &regions);
    if (!s.ok()) return s;
    *key = regions.front();
    return Status::OK();
  }
  const size_t dash = text.find('-');
  const bool digits_only =
      text.size() > 3 && text[0] == '+' && dash != std::string::npos && dash > 1 &&
      dash + 1 < text.size() &&
      std::all_of(text.begin() + 1, text.end(),
                  [](char c) { return c == '-' || std::isdigit(static_cast<unsigned char>(c)); }) &&
      text.find('-', dash + 1) == std::string::npos;
  if (!digits_only || RegionsOfCountryCode(text.substr(1, dash - 1)).empty()) {
    return Status::InvalidArgument("'" + text +
                                   "' is neither a region (JM) nor a prefix (+1-876: calling "
                                   "code, '-', national digits)");
  }
  if (prefix_digits > 0 && text.size() - dash - 1 != static_cast<size_t>(prefix_digits)) {
    return Status::InvalidArgument("prefix '" + text + "' must have " +
                                   std::to_string(prefix_digits) +
                                   " national digits (pumping_prefix_digits)");
  }
  *key = text;
  return Status::OK();
}

double ExpectedPerWindow(const RegionCounts& c, int64_t now_ms, const PumpingOptions& o) {
  if (c.first_seen_ms <= 0 || o.window_ms <= 0) return 0;
  const int64_t window_start = now_ms - o.window_ms;
  int64_t span = std::min(o.baseline_ms - o.window_ms, window_start - c.first_seen_ms);
  span = std::max(span, o.window_ms);
  return static_cast<double>(c.baseline_sent) * static_cast<double>(o.window_ms) /
         static_cast<double>(span);
}

bool IsSpike(const RegionCounts& c, int64_t now_ms, const PumpingOptions& o, std::string* why) {
  const double expected = ExpectedPerWindow(c, now_ms, o);
  const int64_t conversion = Percent(c.window_verified, c.window_sent);
  *why = std::to_string(c.window_sent) + " sends in " + std::to_string(o.window_ms / 1000) +
         " s, baseline " + Fixed(expected, 1) + ", conversion " + std::to_string(conversion) + "%";
  if (c.window_sent < o.min_sends) return false;
  if (static_cast<double>(c.window_sent) <= static_cast<double>(o.multiple) * expected) {
    return false;
  }
  return o.conversion_below >= 100 || conversion < o.conversion_below;
}

PumpingGuard::PumpingGuard(RegionStore* store, Clock* clock, AuditLog* audit,
                           const PumpingOptions& options)
    : store_(store), clock_(clock), audit_(audit), options_(options) {}

std::vector<std::string> PumpingGuard::KeysOf(const PhoneInfo& info) const {
  const PumpingOptions& o = options_.Get();
  return o.enabled ? PumpingKeysOf(info, o.prefix_digits) : std::vector<std::string>();
}

PumpingVerdict PumpingGuard::Check(const std::string& phone) {
  return Check(PumpingKeys(phone, options_.Get().prefix_digits));
}

PumpingVerdict PumpingGuard::CountSend(const std::string& phone, const std::string& user_id,
                                       const std::string& client_ip) {
  return CountSend(PumpingKeys(phone, options_.Get().prefix_digits), user_id, client_ip);
}

PumpingVerdict PumpingGuard::Check(const std::vector<std::string>& keys) {
  PumpingVerdict v;
  if (!options_.Get().enabled || keys.empty()) return v;
  const int64_t now = clock_->NowMillis();
  int64_t until = 0;
  Status s = store_->PausedUntil(keys, now, &v.key, &until);
  if (!s.ok()) {
    Log(LogLevel::kWarn, "pumping check failed; sending", {{"error", s.ToString()}});
    return v;
  }
  if (until > now) {
    v.allowed = false;
    v.retry_after_ms = until - now;
  }
  return v;
}

PumpingVerdict PumpingGuard::CountSend(const std::vector<std::string>& keys,
                                       const std::string& user_id, const std::string& client_ip) {
  PumpingVerdict v;
  const PumpingOptions& o = options_.Get();
  if (!o.enabled || keys.empty()) return v;
  Remember(user_id, keys);
  const int64_t now = clock_->NowMillis();
  std::vector<RegionCounts> counts;
  Status s = store_->AddSend(keys, now, o.window_ms, o.baseline_ms, &counts);
  if (!s.ok() || counts.size() != keys.size()) {
    Log(LogLevel::kWarn, "pumping count failed; sending", {{"error", s.ToString()}});
    return v;
  }
  metrics_.Set(counts[0].key, counts[0].window_sent, counts[0].window_verified, false);
  // The broadest spike only: a region's pause covers its prefixes, and
  // one `otpd regions unpause JM` then lifts it.
  for (const RegionCounts& c : counts) {
    std::string why;
    if (!IsSpike(c, now, o, &why)) continue;
    bool started = false;
    s = store_->Pause(c.key, now, now + o.pause_ms, now - o.window_ms, why, &started);
    if (!s.ok()) {
      Log(LogLevel::kError, "cannot pause a pumping spike",
          {{"key", c.key}, {"error", s.ToString()}});
      continue;
    }
    if (started) Started(c, why, user_id, client_ip);
    for (const RegionCounts& other : counts) {
      if (other.key == c.key) continue;
      s = store_->DropWindow(other.key, now - o.window_ms);
      if (!s.ok()) Log(LogLevel::kWarn, "pumping reset failed", {{"error", s.ToString()}});
    }
    v.allowed = false;
    v.key = c.key;
    v.retry_after_ms = o.pause_ms;
    break;
  }
  return v;
}

void PumpingGuard::Started(const RegionCounts& c, const std::string& why,
                           const std::string& user_id, const std::string& client_ip) {
  const bool prefix = IsPrefixKey(c.key);
  metrics_.CountPause(prefix);
  if (!prefix) metrics_.Set(c.key, 0, 0, true);
  Log(LogLevel::kWarn, "sms pumping suspected; sends paused",
      {{"key", c.key}, {"seen", why}, {"pause_s", std::to_string(options_.Get().pause_ms / 1000)}});
  if (audit_ == nullptr) return;
  Status s = audit_->Record(AuditEvent{0, user_id, "", client_ip, "pumping", "paused:" + c.key});
  if (!s.ok()) Log(LogLevel::kWarn, "cannot write audit record", {{"error", s.ToString()}});
}

void PumpingGuard::CountVerified(const std::string& phone) {
  const PumpingOptions& o = options_.Get();
  if (!o.enabled) return;
  CountVerifiedKeys(PumpingKeys(phone, o.prefix_digits));
}

void PumpingGuard::CountVerifiedUser(const std::string& user_id,
                                     const std::function<std::string()>& phone_of) {
  if (!options_.Get().enabled) return;
  std::vector<std::string> keys;
  {
    std::lock_guard<std::mutex> lock(sent_mu_);
    auto it = sent_keys_.find(user_id);
    if (it != sent_keys_.end()) {
      keys = std::move(it->second);
      sent_keys_.erase(it);  // one verified code per send
    }
  }
  if (!keys.empty()) return CountVerifiedKeys(keys);
  const std::string phone = phone_of();
  if (!phone.empty()) CountVerified(phone);
}

// Enough for the users verifying within a few minutes on a busy service;
// some 100 bytes each.
constexpr size_t kRememberedUsers = 1 << 16;

void PumpingGuard::Remember(const std::string& user_id, const std::vector<std::string>& keys) {
  std::lock_guard<std::mutex> lock(sent_mu_);
  if (sent_keys_.size() >= kRememberedUsers) sent_keys_.clear();
  sent_keys_[user_id] = keys;
}

void PumpingGuard::CountVerifiedKeys(const std::vector<std::string>& keys) {
  const int64_t now = clock_->NowMillis();
  for (const std::string& key : keys) {
    Status s = store_->AddVerified(key, now);
    if (!s.ok()) Log(LogLevel::kWarn, "pumping count failed", {{"error", s.ToString()}});
  }
}

Status PumpingGuard::List(std::vector<RegionCounts>* out) {
  const PumpingOptions& o = options_.Get();
  return store_->List(clock_->NowMillis(), o.window_ms, o.baseline_ms, out);
}

Status PumpingGuard::Pause(const std::string& key, int64_t pause_ms, bool* started) {
  const int64_t now = clock_->NowMillis();
  return store_->Pause(key, now, now + pause_ms, now - options_.Get().window_ms,
                       "paused by an operator", started);
}

Status PumpingGuard::Unpause(const std::string& key, bool* was_paused) {
  return store_->Unpause(key, clock_->NowMillis(), was_paused);
}

Status PumpingGuard::Refresh() {
  std::vector<RegionCounts> rows;
  const int64_t now = clock_->NowMillis();
  Status s = List(&rows);
  if (!s.ok()) return s;
  for (const RegionCounts& c : rows) {
    if (IsPrefixKey(c.key)) continue;
    metrics_.Set(c.key, c.window_sent, c.window_verified, c.paused_until_ms > now);
  }
  return store_->Purge(now - options_.Get().baseline_ms);
}

}  // namespace otpd
