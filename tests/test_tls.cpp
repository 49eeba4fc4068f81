#include "test_tls.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <stdexcept>

namespace otpd {
namespace {

void Check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("test certificate: ") + what);
}

void AddExtension(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &ctx, nid, value.c_str());
  Check(ext != nullptr, "extension");
  X509_add_ext(cert, ext, -1);
  X509_EXTENSION_free(ext);
}

X509* NewCert(EVP_PKEY* key, const std::string& cn, long serial) {
  X509* cert = X509_new();
  X509_set_version(cert, 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert), serial);
  X509_gmtime_adj(X509_getm_notBefore(cert), -3600);
  X509_gmtime_adj(X509_getm_notAfter(cert), 86400);
  X509_set_pubkey(cert, key);
  X509_NAME* name = X509_get_subject_name(cert);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  return cert;
}

void WritePem(const std::string& path, X509* cert, EVP_PKEY* key) {
  FILE* f = fopen(path.c_str(), "w");
  Check(f != nullptr, "open file");
  const bool ok = cert != nullptr
                      ? PEM_write_X509(f, cert) == 1
                      : PEM_write_PrivateKey(f, key, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  fclose(f);
  Check(ok, "write PEM");
}

}  // namespace

TestCa::TestCa(const std::string& dir, const std::string& name) : dir_(dir) {
  EVP_PKEY* key = EVP_EC_gen("P-256");
  Check(key != nullptr, "CA key");
  X509* cert = NewCert(key, name + " test CA", 1);
  X509_set_issuer_name(cert, X509_get_subject_name(cert));
  AddExtension(cert, cert, NID_basic_constraints, "critical,CA:TRUE");
  AddExtension(cert, cert, NID_key_usage, "critical,keyCertSign,cRLSign");
  AddExtension(cert, cert, NID_subject_key_identifier, "hash");
  Check(X509_sign(cert, key, EVP_sha256()) > 0, "sign CA");
  key_ = key;
  cert_ = cert;
  cert_file_ = dir + "/" + name + "-ca.pem";
  WritePem(cert_file_, cert, nullptr);
}

TestCa::~TestCa() {
  X509_free(static_cast<X509*>(cert_));
  EVP_PKEY_free(static_cast<EVP_PKEY*>(key_));
}

PemFiles TestCa::Issue(const std::string& name, const std::string& san) {
  static long serial = 100;
  X509* ca = static_cast<X509*>(cert_);
  EVP_PKEY* key = EVP_EC_gen("P-256");
  Check(key != nullptr, "server key");
  X509* cert = NewCert(key, name, ++serial);
  X509_set_issuer_name(cert, X509_get_subject_name(ca));
  AddExtension(cert, ca, NID_basic_constraints, "critical,CA:FALSE");
  AddExtension(cert, ca, NID_ext_key_usage, "serverAuth");
  AddExtension(cert, ca, NID_subject_alt_name, san);
  AddExtension(cert, ca, NID_authority_key_identifier, "keyid");
  Check(X509_sign(cert, static_cast<EVP_PKEY*>(key_), EVP_sha256()) > 0, "sign server");
  PemFiles files{dir_ + "/" + name + ".pem", dir_ + "/" + name + "-key.pem"};
  WritePem(files.cert, cert, nullptr);
  WritePem(files.key, nullptr, key);
  X509_free(cert);
  EVP_PKEY_free(key);
  return files;
}

}  // namespace otpd
