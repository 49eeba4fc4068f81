// ApiKeys: the optional bearer keys every endpoint but /healthz requires.
//
// Keys come from the config (comma-separated) and/or a file with one key
// per line (blank lines and lines starting with '#' skipped) that must not
// be readable by group or others. Only SHA-256 digests of the keys are
// kept, and a presented key is compared against every one of them with
// CRYPTO_memcmp over the fixed-length digests, so neither the length nor
// the content of a key shows in the time an answer takes. Immutable after
// loading, so thread-safe.
#ifndef OTPD_API_KEYS_H_
#define OTPD_API_KEYS_H_

#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace otpd {

class ApiKeys {
 public:
  // The shortest key accepted: a key must not be guessable.
  static constexpr size_t kMinKeyBytes = 16;

  // Checks the format of a comma-separated key list: every key 16 to 512
  // printable ASCII bytes, without spaces or commas. "" is fine (no keys).
  static Status CheckList(std::string_view list);

  // Loads the keys of `list` (as CheckList) and of `file` ("" for none).
  // InvalidArgument/IOError naming the file and line when a key is bad, the
  // file cannot be read, is readable by group or others, or holds no key.
  // On failure *keys is unchanged.
  static Status Load(std::string_view list, const std::string& file, ApiKeys* keys);

  // True when no key is configured: then nothing is required.
  bool empty() const { return digests_.empty(); }

  // Whether `authorization` (the Authorization header value) is
  // "Bearer <one of the keys>". The scheme is case-insensitive.
  bool Allows(std::string_view authorization) const;

 private:
  Status Add(std::string_view key, const std::string& where);
  std::vector<std::string> digests_;  // SHA-256, 32 raw bytes each
};

}  // namespace otpd

#endif  // OTPD_API_KEYS_H_
