#include "store/code_log.h"

#include <algorithm>

#include "core/phone.h"

namespace otpd {

void RecentEvents::Add(int64_t at, int64_t seq) {
  events_.push_back(Event{at, seq});
  // Usually already in order: one step at most.
  for (size_t i = events_.size() - 1; i > head_ && events_[i - 1].at > events_[i].at; i--) {
    std::swap(events_[i - 1], events_[i]);
  }
}

std::optional<int64_t> RecentEvents::NthRecent(int n) const {
  if (n <= 0 || static_cast<size_t>(n) > size()) return std::nullopt;
  return events_[events_.size() - static_cast<size_t>(n)].at;
}

void RecentEvents::Compact() {
  if (head_ == events_.size()) {
    events_.clear();
    head_ = 0;
  } else if (head_ > 16 && head_ * 2 > events_.size()) {
    events_.erase(events_.begin(), events_.begin() + static_cast<std::ptrdiff_t>(head_));
    head_ = 0;
  }
  if (events_.capacity() > 2 * events_.size() + 16) events_.shrink_to_fit();
}

std::string CodeLogState::Key(const std::string& user_id) { return NormalizeUserId(user_id); }

CodeLogState::History* CodeLogState::HistoryOf(UserState* user) {
  if (user->history == nullptr) user->history.reset(new History());
  return user->history.get();
}

void CodeLogState::DropCode(UserState* user) {
  if (!user->has_code) return;
  MarkDead(user->code_seq);
  user->has_code = false;
  user->code_hash.clear();
  user->code_hash.shrink_to_fit();
  user->expires_at = 0;
  user->attempts = 0;
  user->code_seq = 0;
  if (user->history != nullptr) {
    for (int64_t seq : user->history->held_attempts) MarkDead(seq);
    user->history->held_attempts.clear();
    user->history->held_attempts.shrink_to_fit();
  }
}

void CodeLogState::Apply(const LogRow& row) {
  UserState& user = users_[Key(row.user_id)];
  switch (row.kind) {
    case LogKind::kPut:
      DropCode(&user);
      user.has_code = true;
      user.code_hash = row.code_hash;
      user.expires_at = row.expires_at;
      user.attempts = row.n;
      user.code_seq = row.seq;
      return;
    case LogKind::kWrongGuess:
      if (user.has_code) user.attempts++;
      HistoryOf(&user)->failures.Add(row.at, row.seq);
      return;
    case LogKind::kConsume:
      DropCode(&user);
      if (user.history != nullptr) {
        user.history->failures.Clear([this](int64_t seq) { MarkDead(seq); });
      }
      MarkDead(row.seq);
      return;
    case LogKind::kDelete:
      DropCode(&user);
      MarkDead(row.seq);
      return;
    case LogKind::kSend:
      ApplySend(row, &user);
      return;
    case LogKind::kFailure:
      HistoryOf(&user)->failures.Add(row.at, row.seq);
      return;
  }
  MarkDead(row.seq);  // a kind this build does not know changes nothing
}

void CodeLogState::ApplySend(const LogRow& row, UserState* user) {
  HistoryOf(user)->sends.Add(row.at, row.seq);
  phones_[row.phone].Add(row.at, row.seq);
  if (!row.client_ip.empty()) ips_[row.client_ip].Add(row.at, row.seq);
  if (row.n != 0) channels_[row.channel].Add(row.at, row.seq);
}

void CodeLogState::Clear() {
  users_.clear();
  phones_.clear();
  ips_.clear();
  channels_.clear();
  dead_.clear();
}

VerifyState CodeLogState::ReadVerify(const std::string& user_id, const VerifyLimits& limits) const {
  VerifyState state;
  auto it = users_.find(Key(user_id));
  if (it == users_.end()) return state;
  const UserState& user = it->second;
  if (user.has_code) {
    state.code = CodeState{true, user.code_hash, user.expires_at, user.attempts};
  }
  if (user.history != nullptr && limits.max_failures > 0 && limits.failure_window_ms > 0) {
    state.nth_failure_at_ms = user.history->failures.NthRecent(limits.max_failures);
  }
  return state;
}

namespace {

std::optional<int64_t> NthOf(const std::unordered_map<std::string, RecentEvents>& map,
                             const std::string& key, int n, int64_t window_ms) {
  if (n <= 0 || window_ms <= 0) return std::nullopt;
  auto it = map.find(key);
  if (it == map.end()) return std::nullopt;
  return it->second.NthRecent(n);
}

}  // namespace

SendState CodeLogState::ReadSend(const SendRequest& request, const std::string& channel,
                                 const SendLimits& limits) const {
  SendState state;
  auto it = users_.find(Key(request.user_id));
  if (it != users_.end() && it->second.history != nullptr) {
    const RecentEvents& sends = it->second.history->sends;
    if (limits.cooldown_ms > 0) state.last_of_user = sends.NthRecent(1);
    if (limits.window_ms > 0) state.nth_of_user = sends.NthRecent(limits.per_user);
  }
  state.nth_to_phone = NthOf(phones_, request.phone, limits.per_phone, limits.window_ms);
  if (!request.client_ip.empty()) {
    state.nth_from_ip = NthOf(ips_, request.client_ip, limits.per_ip, limits.window_ms);
  }
  state.nth_overall = NthOf(channels_, channel, limits.global, limits.window_ms);
  return state;
}

bool CodeLogState::HasCode(const std::string& user_id, const std::string& code_hash) const {
  auto it = users_.find(Key(user_id));
  return it != users_.end() && it->second.has_code && it->second.code_hash == code_hash;
}

int64_t CodeLogState::Purge(int64_t now, int64_t grace_ms, int64_t history_ms) {
  const int64_t cutoff = now - history_ms;
  auto dead = [this](int64_t seq) { MarkDead(seq); };
  auto none = [](int64_t) {};
  int64_t codes = 0;
  for (auto it = users_.begin(); it != users_.end();) {
    UserState& user = it->second;
    if (user.has_code && user.expires_at + grace_ms <= now) {
      DropCode(&user);
      codes++;
    }
    if (user.history != nullptr) {
      // A failure after the live code's row is one of its attempts: its
      // row stays while the code does (the otps view counts it).
      History* h = user.history.get();
      h->failures.DropOld(cutoff, [&](int64_t seq) {
        if (user.has_code && seq > user.code_seq) {
          h->held_attempts.push_back(seq);
        } else {
          MarkDead(seq);
        }
      });
      h->sends.DropOld(cutoff, dead);
      if (h->empty()) user.history.reset();
    }
    if (!user.has_code && user.history == nullptr) {
      it = users_.erase(it);
    } else {
      ++it;
    }
  }
  for (auto* map : {&phones_, &ips_, &channels_}) {
    for (auto it = map->begin(); it != map->end();) {
      it->second.DropOld(cutoff, none);  // the user's list marks the row dead
      it = it->second.empty() ? map->erase(it) : std::next(it);
    }
  }
  return codes;
}

int64_t CodeLogState::CountActive(int64_t now) const {
  int64_t count = 0;
  for (const auto& entry : users_) {
    if (entry.second.has_code && now < entry.second.expires_at) count++;
  }
  return count;
}

std::vector<int64_t> CodeLogState::TakeDead(int64_t upto) {
  std::vector<int64_t> out;
  auto keep = std::partition(dead_.begin(), dead_.end(), [upto](int64_t s) { return s > upto; });
  out.assign(keep, dead_.end());
  dead_.erase(keep, dead_.end());
  return out;
}

}  // namespace otpd
