#include "http/twilio_signature.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <algorithm>

namespace otpd {
namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

Status Decode(const std::string& text, std::string* out) {
  out->clear();
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out->push_back(' ');
    } else if (text[i] != '%') {
      out->push_back(text[i]);
    } else {
      const int hi = i + 2 < text.size() ? HexValue(text[i + 1]) : -1;
      const int lo = hi >= 0 ? HexValue(text[i + 2]) : -1;
      if (lo < 0) return Status::InvalidArgument("bad %-escape in a form body");
      out->push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    }
  }
  return Status::OK();
}

}  // namespace

Status ParseFormBody(const std::string& body, FormFields* fields) {
  fields->clear();
  size_t start = 0;
  while (start <= body.size()) {
    size_t end = body.find('&', start);
    if (end == std::string::npos) end = body.size();
    const std::string part = body.substr(start, end - start);
    if (!part.empty()) {
      const size_t eq = part.find('=');
      std::string name, value;
      Status s = Decode(part.substr(0, eq), &name);
      if (s.ok() && eq != std::string::npos) s = Decode(part.substr(eq + 1), &value);
      if (!s.ok()) return s;
      fields->emplace_back(std::move(name), std::move(value));
    }
    start = end + 1;
  }
  return Status::OK();
}

std::string TwilioSignature(const std::string& auth_token, const std::string& url,
                            const FormFields& params) {
  FormFields sorted = params;
  std::sort(sorted.begin(), sorted.end());  // by name; equal names by value
  std::string data = url;
  for (const auto& [name, value] : sorted) data += name + value;
  unsigned char mac[EVP_MAX_MD_SIZE];
  unsigned int mac_len = 0;
  HMAC(EVP_sha1(), auth_token.data(), static_cast<int>(auth_token.size()),
       reinterpret_cast<const unsigned char*>(data.data()), data.size(), mac, &mac_len);
  std::string out(4 * ((mac_len + 2) / 3) + 1, '\0');
  const int n =
      EVP_EncodeBlock(reinterpret_cast<unsigned char*>(&out[0]), mac, static_cast<int>(mac_len));
  out.resize(static_cast<size_t>(n));
  return out;
}

bool TwilioSignatureValid(const std::string& auth_token, const std::string& url,
                          const FormFields& params, const std::string& header) {
  if (auth_token.empty() || header.empty()) return false;
  const std::string expected = TwilioSignature(auth_token, url, params);
  // The length of a SHA-1 signature is public; only the bytes are secret.
  return header.size() == expected.size() &&
         CRYPTO_memcmp(header.data(), expected.data(), expected.size()) == 0;
}

}  // namespace otpd
