// CodeHasher: how one-time codes are stored: HMAC-SHA256 under a secret.
//
// Only the hash of a code ever reaches the store, so a copy of the database
// does not reveal live codes, and the hash of one user's code is useless for
// another (the user ID is part of the MAC input). Thread-safe: the object is
// immutable after construction.
#ifndef OTPD_CODE_HASH_H_
#define OTPD_CODE_HASH_H_

#include <openssl/types.h>

#include <string>

#include "core/random.h"
#include "core/status.h"

namespace otpd {

class CodeHasher {
 public:
  // REQUIRES: secret is not empty.
  explicit CodeHasher(const std::string& secret);
  ~CodeHasher();
  CodeHasher(const CodeHasher&) = delete;
  CodeHasher& operator=(const CodeHasher&) = delete;

  // HMAC-SHA256(secret, data), 32 raw bytes (RFC 2104). The key's inner and
  // outer SHA-256 states are computed once, in the constructor, so a call
  // costs two short digests and no allocation after a thread's first.
  std::string Mac(const std::string& data) const;

  // 32 raw bytes: HMAC-SHA256(secret, len(user_id) || user_id || code).
  // The length prefix keeps ("ab","1") and ("a","b1") apart.
  std::string Hash(const std::string& user_id, const std::string& code) const;

  // 32 hex digits: the first 16 bytes of Mac(data). Stands for `data`
  // where it must not be shown (a phone number in a Redis key name).
  std::string Pseudonym(const std::string& data) const;

  // The pseudonym of a fixed label: names the secret without revealing it,
  // so nodes can compare theirs.
  std::string Fingerprint() const { return Pseudonym("otpd secret fingerprint"); }

  // Constant-time equality of two hashes (CRYPTO_memcmp); false when the
  // lengths differ.
  static bool Equal(const std::string& a, const std::string& b);

 private:
  EVP_MD_CTX* inner_;  // SHA-256 after absorbing key ^ ipad
  EVP_MD_CTX* outer_;  // SHA-256 after absorbing key ^ opad
};

// Reads the server secret from `path`, or, when the file does not exist,
// creates it (mode 0600, exclusively, so two processes starting together
// agree) with 32 random bytes in hex. Fails with a clear message when the
// file is empty, unreadable, or readable by group or others.
Status LoadOrCreateSecret(const std::string& path, RandomSource* random, std::string* secret);

}  // namespace otpd

#endif  // OTPD_CODE_HASH_H_
