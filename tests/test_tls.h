// Test certificates made at run time with the OpenSSL API: nothing secret
// is committed. A TestCa signs server certificates; PEM files are written
// into a directory the caller owns (a TempDir).
#ifndef OTPD_TESTS_TEST_TLS_H_
#define OTPD_TESTS_TEST_TLS_H_

#include <string>

#include "core/status.h"

namespace otpd {

struct PemFiles {
  std::string cert;  // path of the PEM certificate
  std::string key;   // path of the PEM private key
};

// A self-signed CA (EC P-256). Not thread-safe; tests only.
class TestCa {
 public:
  // Writes <dir>/<name>-ca.pem. Throws std::runtime_error on failure.
  TestCa(const std::string& dir, const std::string& name);
  ~TestCa();
  TestCa(const TestCa&) = delete;
  TestCa& operator=(const TestCa&) = delete;

  const std::string& cert_file() const { return cert_file_; }

  // A server certificate signed by this CA with subjectAltName `san`
  // ("IP:127.0.0.1,DNS:localhost"), written as <dir>/<name>.pem and
  // <dir>/<name>-key.pem.
  PemFiles Issue(const std::string& name, const std::string& san);

 private:
  std::string dir_;
  std::string cert_file_;
  void* key_ = nullptr;   // EVP_PKEY*
  void* cert_ = nullptr;  // X509*
};

}  // namespace otpd

#endif  // OTPD_TESTS_TEST_TLS_H_
