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

// The longest user ID accepted anywhere, in bytes.
constexpr size_t kMaxUserIdBytes = 128;

}  // namespace otpd

#endif  // OTPD_PHONE_H_
