// RandomSource: where one-time codes and secrets get their randomness.
//
// Production uses OpenSslRandom() (RAND_bytes, a CSPRNG). The deterministic
// source used by tests lives in tests/ only. Implementations are thread-safe.
#ifndef OTPD_RANDOM_H_
#define OTPD_RANDOM_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/status.h"

namespace otpd {

class RandomSource {
 public:
  virtual ~RandomSource() = default;
  // Fills buf[0..n) with random bytes. On failure buf is unspecified.
  virtual Status Fill(uint8_t* buf, size_t n) = 0;
};

// OpenSSL's RAND_bytes. Never null; never destroyed.
RandomSource* OpenSslRandom();

// Draws a code of `length` decimal digits, uniform over all 10^length strings
// (leading zeros included): 64-bit draws with rejection above the largest
// multiple of 10^length, so there is no modulo bias.
// REQUIRES: 1 <= length <= 18.
Status GenerateCode(RandomSource* random, int length, std::string* code);

// `n` random bytes as 2n lowercase hex characters.
Status RandomHex(RandomSource* random, size_t n, std::string* hex);

}  // namespace otpd

#endif  // OTPD_RANDOM_H_
