#include "core/random.h"

#include <openssl/err.h>
#include <openssl/rand.h>

#include <limits>

namespace otpd {
namespace {

class OpenSslRandomImpl : public RandomSource {
 public:
  Status Fill(uint8_t* buf, size_t n) override {
    while (n > 0) {
      int chunk = n > 1 << 20 ? 1 << 20 : static_cast<int>(n);
      if (RAND_bytes(buf, chunk) != 1) {
        return Status::Internal("RAND_bytes failed: " + std::to_string(ERR_get_error()));
      }
      buf += chunk;
      n -= static_cast<size_t>(chunk);
    }
    return Status::OK();
  }
};

}  // namespace

RandomSource* OpenSslRandom() {
  static OpenSslRandomImpl* random = new OpenSslRandomImpl();  // never destroyed
  return random;
}

Status GenerateCode(RandomSource* random, int length, std::string* code) {
  if (length < 1 || length > 18) return Status::InvalidArgument("code length out of range");
  uint64_t modulus = 1;
  for (int i = 0; i < length; i++) modulus *= 10;
  // Values at or above `limit` would make the low residues more likely.
  // 2^64 is never a multiple of 10^length, so `limit` = the largest
  // multiple of the modulus not above 2^64 fits in 64 bits.
  const uint64_t max = std::numeric_limits<uint64_t>::max();
  const uint64_t remainder = (max % modulus + 1) % modulus;  // 2^64 mod modulus
  const uint64_t limit = max - remainder + 1;
  uint64_t value;
  for (;;) {
    uint8_t bytes[8];
    Status s = random->Fill(bytes, sizeof bytes);
    if (!s.ok()) return s;
    value = 0;
    for (uint8_t b : bytes) value = (value << 8) | b;
    if (value < limit) break;
  }
  value %= modulus;
  code->assign(static_cast<size_t>(length), '0');
  for (int i = length - 1; i >= 0; i--) {
    (*code)[static_cast<size_t>(i)] = static_cast<char>('0' + value % 10);
    value /= 10;
  }
  return Status::OK();
}

Status RandomHex(RandomSource* random, size_t n, std::string* hex) {
  std::string bytes(n, '\0');
  Status s = random->Fill(reinterpret_cast<uint8_t*>(&bytes[0]), n);
  if (!s.ok()) return s;
  static const char kDigits[] = "0123456789abcdef";
  hex->clear();
  hex->reserve(2 * n);
  for (unsigned char c : bytes) {
    hex->push_back(kDigits[c >> 4]);
    hex->push_back(kDigits[c & 15]);
  }
  return Status::OK();
}

}  // namespace otpd
