// Phone numbers and user IDs: the checks every entry point shares.
#ifndef OTPD_PHONE_H_
#define OTPD_PHONE_H_

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace otpd {

// E.164: '+', a non-zero digit, then 1 to 14 more digits (2..15 digits).
bool IsE164(std::string_view phone);

// "+11111111111" -> "+1*******111": keeps '+', the first digit and the last
// three; every other digit becomes '*'. Numbers of 4 digits or fewer keep
// only the first digit. Anything that is not E.164 comes back as "***".
std::string MaskPhone(std::string_view phone);

// User IDs are case-insensitive: ASCII letters are lowered, every other byte
// is kept (so UTF-8 stays valid). SQLite's NOCASE collation folds the same
// set, so the table and this function agree.
std::string NormalizeUserId(std::string_view user_id);

// Parses "1, 44,358" into {"1", "44", "358"}: country calling codes of 1
// to 3 digits not starting with 0, separated by commas (spaces allowed).
// InvalidArgument naming the bad entry; *codes is then unspecified.
Status ParseCountryCodes(std::string_view text, std::vector<std::string>* codes);

// What libphonenumber says a number is (its PhoneNumberType).
enum class PhoneType {
  kFixedLine,
  kMobile,
  kFixedLineOrMobile,
  kTollFree,
  kPremiumRate,
  kSharedCost,
  kVoip,
  kPersonal,
  kPager,
  kUan,
  kVoicemail,
  kUnknown,
};

// "mobile", "premium_rate", "voip", ...: the name config keys and logs use.
const char* PhoneTypeName(PhoneType type);

// A number parsed and checked against its region's numbering plan.
struct PhoneInfo {
  std::string e164;    // "+14155550123"
  std::string region;  // ISO 3166 code of the number's region ("US", "JM")
  PhoneType type = PhoneType::kUnknown;
};

// Parses a number written in international form, with any of the usual
// separators ("+1 (415) 555-0123", "+44 20 7946 0018", "+44 020 7946 0018")
// into E.164, with the region and type of the number. InvalidArgument,
// saying why, when it cannot be parsed, is not in international form (no
// leading '+'), has an extension, or is not a valid number for its region
// (so "+11111111111" is refused: area code 111 does not exist).
// libphonenumber does the work, with the numbering plans of the version
// Debian ships (README, Phone numbers). Thread-safe.
Status ParsePhone(std::string_view text, PhoneInfo* info);

// What ParsePhone answers for `text` from now on in this process, without
// parsing it: a verdict read back from where an earlier parse stored it
// (the database's phone_checks, store/users_sqlite.cpp). REQUIRES: `info`
// is what ParsePhone(text) answered under the same PhonePlansId().
void RememberParsedPhone(std::string_view text, const PhoneInfo& info);

// Names the numbering plans (and otpd's own rules around them) that
// ParsePhone judges by in this process: a digest of the libphonenumber
// library loaded, with a version of ParsePhone's own checks. A stored
// verdict is reused only under the same ID, so a new library or a new otpd
// parses every number again. "" when the library cannot be read (then no
// verdict is stored). Thread-safe; computed once.
const std::string& PhonePlansId();

// "mobile" -> kMobile: the inverse of PhoneTypeName, every type. False when
// `name` is none of them.
bool PhoneTypeFromName(std::string_view name, PhoneType* type);

// Number types never right for a one-time code, whatever the config says:
// premium-rate and shared-cost lines (they earn the owner money per text).
bool PhoneTypeAlwaysRefused(PhoneType type);

// The normalisation every entry point shares (users add, import, the
// config's [users] table, the users read back from SQL): ParsePhone, then
// PhoneTypeAlwaysRefused numbers are refused too. *e164 is the E.164 form.
Status NormalizePhone(std::string_view text, std::string* e164);
// The same, with the whole of ParsePhone's answer.
Status NormalizePhone(std::string_view text, PhoneInfo* info);

// Parses "voip, pager,personal" into types a config may refuse on top of
// the always refused ones. Accepted names: voip, pager, personal,
// toll_free, uan, voicemail, fixed_line. InvalidArgument naming the entry.
Status ParsePhoneTypes(std::string_view text, std::vector<PhoneType>* types);

// Parses "US, CA" into {"US", "CA"}: ISO 3166 alpha-2 codes of regions
// libphonenumber knows (upper-cased). InvalidArgument naming the entry.
Status ParseRegions(std::string_view text, std::vector<std::string>* regions);

// The regions that share the calling code `country_code` ("1" -> US, CA,
// JM, DO, ...; "44" -> GB, GG, IM, JE), main region first. Empty when none.
std::vector<std::string> RegionsOfCountryCode(const std::string& country_code);

// A valid mobile number of `region` ("" or unknown: US) whose digits come
// from `seed` (any bytes), the same for the same seed: the region's example
// mobile number's leading digits and length, the rest from the seed. For a
// concealed answer that must look like a real number of that region.
std::string PlausiblePhone(const std::string& region, const std::string& seed);

// The longest user ID accepted anywhere, in bytes.
constexpr size_t kMaxUserIdBytes = 128;

}  // namespace otpd

#endif  // OTPD_PHONE_H_
