#include "core/phone.h"

#include <link.h>
#include <openssl/evp.h>

#include <cstring>
#include <fstream>
#include <functional>
#include <list>
#include <mutex>
#include <set>
#include <unordered_map>

// The one file that includes libphonenumber (README, Phone numbers).
#include <phonenumbers/logger.h>
#include <phonenumbers/phonenumberutil.h>

namespace otpd {

bool IsE164(std::string_view phone) {
  if (phone.size() < 3 || phone.size() > 16 || phone[0] != '+') return false;
  if (phone[1] < '1' || phone[1] > '9') return false;
  for (size_t i = 2; i < phone.size(); i++) {
    if (phone[i] < '0' || phone[i] > '9') return false;
  }
  return true;
}

std::string MaskPhone(std::string_view phone) {
  if (!IsE164(phone)) return "***";
  std::string out(phone);
  const size_t digits = phone.size() - 1;
  const size_t keep_tail = digits > 4 ? 3 : 0;
  for (size_t i = 2; i < out.size() - keep_tail; i++) out[i] = '*';
  return out;
}

std::string NormalizeUserId(std::string_view user_id) {
  std::string out(user_id);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

Status ParseCountryCodes(std::string_view text, std::vector<std::string>* codes) {
  codes->clear();
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    bool ok = !item.empty() && item.size() <= 3 && item[0] != '0';
    for (char c : item) ok = ok && c >= '0' && c <= '9';
    if (!ok) {
      return Status::InvalidArgument(
          "'" + std::string(item) +
          "' is not a country calling code (1 to 3 digits, like 1 or 44)");
    }
    codes->emplace_back(item);
    start = comma + 1;
  }
  return Status::OK();
}

namespace {

using i18n::phonenumbers::PhoneNumber;
using i18n::phonenumbers::PhoneNumberUtil;

// The library's singleton, with its logging off: its messages name the
// numbers it parsed, which must not reach otpd's log or stderr.
PhoneNumberUtil* Util() {
  static PhoneNumberUtil* const util = [] {
    PhoneNumberUtil* u = PhoneNumberUtil::GetInstance();
    u->SetLogger(new i18n::phonenumbers::NullLogger());  // the library owns it
    return u;
  }();
  return util;
}

PhoneType FromLibrary(PhoneNumberUtil::PhoneNumberType type) {
  switch (type) {
    case PhoneNumberUtil::FIXED_LINE:
      return PhoneType::kFixedLine;
    case PhoneNumberUtil::MOBILE:
      return PhoneType::kMobile;
    case PhoneNumberUtil::FIXED_LINE_OR_MOBILE:
      return PhoneType::kFixedLineOrMobile;
    case PhoneNumberUtil::TOLL_FREE:
      return PhoneType::kTollFree;
    case PhoneNumberUtil::PREMIUM_RATE:
      return PhoneType::kPremiumRate;
    case PhoneNumberUtil::SHARED_COST:
      return PhoneType::kSharedCost;
    case PhoneNumberUtil::VOIP:
      return PhoneType::kVoip;
    case PhoneNumberUtil::PERSONAL_NUMBER:
      return PhoneType::kPersonal;
    case PhoneNumberUtil::PAGER:
      return PhoneType::kPager;
    case PhoneNumberUtil::UAN:
      return PhoneType::kUan;
    case PhoneNumberUtil::VOICEMAIL:
      return PhoneType::kVoicemail;
    case PhoneNumberUtil::UNKNOWN:
      return PhoneType::kUnknown;
  }
  return PhoneType::kUnknown;
}

std::string Quoted(std::string_view text) {
  if (text.size() <= 40) return "'" + std::string(text) + "'";
  return "'" + std::string(text.substr(0, 37)) + "...'";
}

// Splits "a, b,c" on commas, trimming spaces; an empty item stays.
std::vector<std::string> SplitList(std::string_view text) {
  std::vector<std::string> items;
  size_t start = 0;
  while (start <= text.size()) {
    size_t comma = text.find(',', start);
    if (comma == std::string_view::npos) comma = text.size();
    std::string_view item = text.substr(start, comma - start);
    while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
    while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
    items.emplace_back(item);
    start = comma + 1;
  }
  return items;
}

}  // namespace

const char* PhoneTypeName(PhoneType type) {
  switch (type) {
    case PhoneType::kFixedLine:
      return "fixed_line";
    case PhoneType::kMobile:
      return "mobile";
    case PhoneType::kFixedLineOrMobile:
      return "fixed_line_or_mobile";
    case PhoneType::kTollFree:
      return "toll_free";
    case PhoneType::kPremiumRate:
      return "premium_rate";
    case PhoneType::kSharedCost:
      return "shared_cost";
    case PhoneType::kVoip:
      return "voip";
    case PhoneType::kPersonal:
      return "personal";
    case PhoneType::kPager:
      return "pager";
    case PhoneType::kUan:
      return "uan";
    case PhoneType::kVoicemail:
      return "voicemail";
    case PhoneType::kUnknown:
      return "unknown";
  }
  return "unknown";
}

namespace {

// ParsePhone is a pure function of its text and costs tens of microseconds
// of regular expressions; the same numbers come back on every send (the
// users' phones), so valid parses are remembered: 16 shards of at most
// kCacheShardEntries numbers each (about 128k numbers, some 16 MB at most),
// an arbitrary one evicted when a shard is full.
constexpr size_t kCacheShards = 16;
constexpr size_t kCacheShardEntries = 8192;

struct ParseCacheShard {
  std::mutex mu;
  std::unordered_map<std::string, PhoneInfo> parsed;  // guarded by mu
};

ParseCacheShard* CacheShard(const std::string& text) {
  static ParseCacheShard shards[kCacheShards];
  return &shards[std::hash<std::string>()(text) % kCacheShards];
}

Status ParsePhoneUncached(std::string_view text, PhoneInfo* info);

}  // namespace

void RememberParsedPhone(std::string_view text, const PhoneInfo& info) {
  const std::string key(text);
  ParseCacheShard* shard = CacheShard(key);
  std::lock_guard<std::mutex> lock(shard->mu);
  if (shard->parsed.count(key) != 0) return;
  if (shard->parsed.size() >= kCacheShardEntries) shard->parsed.erase(shard->parsed.begin());
  shard->parsed.emplace(key, info);
}

Status ParsePhone(std::string_view text, PhoneInfo* info) {
  const std::string key(text);
  ParseCacheShard* shard = CacheShard(key);
  {
    std::lock_guard<std::mutex> lock(shard->mu);
    auto it = shard->parsed.find(key);
    if (it != shard->parsed.end()) {
      *info = it->second;
      return Status::OK();
    }
  }
  Status s = ParsePhoneUncached(text, info);
  if (!s.ok()) return s;
  std::lock_guard<std::mutex> lock(shard->mu);
  if (shard->parsed.size() >= kCacheShardEntries) shard->parsed.erase(shard->parsed.begin());
  shard->parsed.emplace(key, *info);
  return s;
}

namespace {

Status ParsePhoneUncached(std::string_view text, PhoneInfo* info) {
  *info = PhoneInfo();
  std::string_view trimmed = text;
  while (!trimmed.empty() && trimmed.front() == ' ') trimmed.remove_prefix(1);
  if (trimmed.empty() || trimmed.front() != '+') {
    return Status::InvalidArgument("phone " + Quoted(text) +
                                   " is not in international form ('+', country code, number)");
  }
  if (trimmed.size() > 64) return Status::InvalidArgument("phone " + Quoted(text) + " is too long");
  PhoneNumber number;
  // "ZZ": no default region, so only the '+' form parses.
  if (Util()->Parse(std::string(trimmed), "ZZ", &number) != PhoneNumberUtil::NO_PARSING_ERROR) {
    return Status::InvalidArgument("phone " + Quoted(text) + " is not a phone number");
  }
  if (number.has_extension()) {
    return Status::InvalidArgument("phone " + Quoted(text) + " has an extension");
  }
  // IsValidNumber(n) is exactly GetNumberType(n) != UNKNOWN (both match
  // the national number against the region's patterns), so the type,
  // asked once, answers both: the matching is most of a parse's cost.
  const PhoneNumberUtil::PhoneNumberType type = Util()->GetNumberType(number);
  if (type == PhoneNumberUtil::UNKNOWN) {
    return Status::InvalidArgument("phone " + Quoted(text) +
                                   " is not a valid number in its country's numbering plan");
  }
  Util()->Format(number, PhoneNumberUtil::E164, &info->e164);
  Util()->GetRegionCodeForNumber(number, &info->region);
  info->type = FromLibrary(type);
  return Status::OK();
}

}  // namespace

bool PhoneTypeAlwaysRefused(PhoneType type) {
  return type == PhoneType::kPremiumRate || type == PhoneType::kSharedCost;
}

Status NormalizePhone(std::string_view text, PhoneInfo* info) {
  Status s = ParsePhone(text, info);
  if (!s.ok()) return s;
  if (PhoneTypeAlwaysRefused(info->type)) {
    return Status::InvalidArgument("phone " + Quoted(text) + " is a " + PhoneTypeName(info->type) +
                                   " number, never sent a code");
  }
  return Status::OK();
}

Status NormalizePhone(std::string_view text, std::string* e164) {
  PhoneInfo info;
  Status s = NormalizePhone(text, &info);
  if (s.ok()) *e164 = info.e164;
  return s;
}

bool PhoneTypeFromName(std::string_view name, PhoneType* type) {
  for (int t = 0; t <= static_cast<int>(PhoneType::kUnknown); t++) {
    if (name == PhoneTypeName(static_cast<PhoneType>(t))) {
      *type = static_cast<PhoneType>(t);
      return true;
    }
  }
  return false;
}

namespace {

// Bump when ParsePhone's own checks change what it answers for some text:
// verdicts stored under the old ID are then parsed again.
constexpr char kParseRulesVersion[] = "1";

// The file libphonenumber's code (with its compiled-in numbering plans) was
// loaded from: the shared library, or this executable when linked in.
int FindLibrary(struct dl_phdr_info* info, size_t, void* data) {
  const char* name = info->dlpi_name;
  if (name == nullptr || strstr(name, "libphonenumber") == nullptr) return 0;
  *static_cast<std::string*>(data) = name;
  return 1;
}

std::string ComputePlansId() {
  std::string path;
  dl_iterate_phdr(FindLibrary, &path);
  if (path.empty()) path = "/proc/self/exe";
  std::ifstream in(path, std::ios::binary);
  if (!in) return "";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx != nullptr && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  char buf[65536];
  while (ok && in) {
    in.read(buf, sizeof buf);
    ok = EVP_DigestUpdate(ctx, buf, static_cast<size_t>(in.gcount())) == 1;
  }
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  ok = ok && in.eof() && EVP_DigestFinal_ex(ctx, digest, &len) == 1 && len >= 8;
  EVP_MD_CTX_free(ctx);
  if (!ok) return "";
  static const char kHex[] = "0123456789abcdef";
  std::string id = std::string(kParseRulesVersion) + ":";
  for (unsigned int i = 0; i < 8; i++) {
    id += kHex[digest[i] >> 4];
    id += kHex[digest[i] & 15];
  }
  return id;
}

}  // namespace

const std::string& PhonePlansId() {
  static const std::string id = ComputePlansId();
  return id;
}

Status ParsePhoneTypes(std::string_view text, std::vector<PhoneType>* types) {
  types->clear();
  static const PhoneType kRefusable[] = {
      PhoneType::kVoip, PhoneType::kPager,     PhoneType::kPersonal, PhoneType::kTollFree,
      PhoneType::kUan,  PhoneType::kVoicemail, PhoneType::kFixedLine};
  for (const std::string& item : SplitList(text)) {
    bool found = false;
    for (PhoneType t : kRefusable) {
      if (item == PhoneTypeName(t)) {
        types->push_back(t);
        found = true;
      }
    }
    if (!found) {
      return Status::InvalidArgument(
          Quoted(item) +
          " is not a number type otpd can refuse (voip, pager, personal, toll_free, uan, "
          "voicemail, fixed_line)");
    }
  }
  return Status::OK();
}

Status ParseRegions(std::string_view text, std::vector<std::string>* regions) {
  regions->clear();
  std::set<std::string> known;
  Util()->GetSupportedRegions(&known);
  for (std::string item : SplitList(text)) {
    for (char& c : item) {
      if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 'a' + 'A');
    }
    if (known.count(item) == 0) {
      return Status::InvalidArgument(Quoted(item) +
                                     " is not an ISO 3166 region code with phone numbers (like "
                                     "US, CA or GB)");
    }
    regions->push_back(item);
  }
  return Status::OK();
}

std::vector<std::string> RegionsOfCountryCode(const std::string& country_code) {
  std::list<std::string> regions;
  int cc = 0;
  for (char c : country_code) {
    if (c < '0' || c > '9' || cc > 999) return {};
    cc = cc * 10 + (c - '0');
  }
  Util()->GetRegionCodesForCountryCallingCode(cc, &regions);
  return std::vector<std::string>(regions.begin(), regions.end());
}

std::string PlausiblePhone(const std::string& region, const std::string& seed) {
  const std::string where = region.empty() ? "US" : region;
  PhoneNumber example;
  if (!Util()->GetExampleNumberForType(where, PhoneNumberUtil::MOBILE, &example) &&
      !Util()->GetExampleNumberForType("US", PhoneNumberUtil::MOBILE, &example)) {
    return "+12015550123";
  }
  std::string national;
  Util()->GetNationalSignificantNumber(example, &national);
  // The leading digits say the number type; the rest may be anything the
  // plan allows, so try seeded tails until one is valid for the region.
  const size_t keep = national.size() > 6 ? 3 : national.size() / 2;
  const std::string key = seed.empty() ? std::string(1, '\0') : seed;
  for (int attempt = 0; attempt < 16; attempt++) {
    std::string digits = national.substr(0, keep);
    for (size_t i = keep; i < national.size(); i++) {
      const unsigned char b = static_cast<unsigned char>(key[(i + attempt * 7) % key.size()]);
      digits.push_back(static_cast<char>('0' + (b + attempt * 3 + i) % 10));
    }
    PhoneNumber candidate;
    candidate.set_country_code(example.country_code());
    candidate.set_national_number(std::stoull(digits));
    std::string got_region;
    Util()->GetRegionCodeForNumber(candidate, &got_region);
    if (Util()->IsValidNumber(candidate) && got_region == where &&
        Util()->GetNumberType(candidate) == Util()->GetNumberType(example)) {
      std::string out;
      Util()->Format(candidate, PhoneNumberUtil::E164, &out);
      return out;
    }
  }
  std::string out;
  Util()->Format(example, PhoneNumberUtil::E164, &out);
  return out;
}

}  // namespace otpd
