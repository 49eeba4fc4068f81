#include "http/api_keys.h"

#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <strings.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>

namespace otpd {
namespace {

constexpr size_t kMaxKeyBytes = 512;

std::string Sha256(std::string_view text) {
  unsigned char digest[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return std::string(reinterpret_cast<const char*>(digest), sizeof(digest));
}

// "" when `key` is acceptable, else what is wrong (never the key itself).
std::string KeyProblem(std::string_view key) {
  if (key.size() < ApiKeys::kMinKeyBytes || key.size() > kMaxKeyBytes) {
    return "an API key must be 16 to 512 characters";
  }
  for (char c : key) {
    if (c <= ' ' || c > '~' || c == ',') {
      return "an API key may hold printable ASCII only, without spaces or commas";
    }
  }
  return "";
}

template <typename Fn>
Status ForEachListed(std::string_view list, Fn fn) {
  size_t start = 0;
  while (!list.empty() && start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string_view key = list.substr(start, comma - start);
    while (!key.empty() && key.front() == ' ') key.remove_prefix(1);
    while (!key.empty() && key.back() == ' ') key.remove_suffix(1);
    Status s = fn(key);
    if (!s.ok()) return s;
    start = comma + 1;
  }
  return Status::OK();
}

Status CheckFileMode(const std::string& file) {
  struct stat st;
  if (stat(file.c_str(), &st) != 0) {
    return Status::IOError("api_keys_file " + file + ": " + std::strerror(errno));
  }
  if ((st.st_mode & 077) != 0) {
    return Status::InvalidArgument("api_keys_file " + file +
                                   ": readable by group or others; chmod 600 it");
  }
  return Status::OK();
}

}  // namespace

Status ApiKeys::CheckList(std::string_view list) {
  return ForEachListed(list, [](std::string_view key) {
    const std::string problem = KeyProblem(key);
    return problem.empty() ? Status::OK() : Status::InvalidArgument(problem);
  });
}

Status ApiKeys::Add(std::string_view key, const std::string& where) {
  const std::string problem = KeyProblem(key);
  if (!problem.empty()) return Status::InvalidArgument(where + problem);
  digests_.push_back(Sha256(key));
  return Status::OK();
}

Status ApiKeys::Load(std::string_view list, const std::string& file, ApiKeys* keys) {
  ApiKeys loaded;
  Status s = ForEachListed(list, [&loaded](std::string_view key) { return loaded.Add(key, ""); });
  if (!s.ok() || file.empty()) {
    if (s.ok()) *keys = loaded;
    return s;
  }
  s = CheckFileMode(file);
  if (!s.ok()) return s;
  std::ifstream in(file);
  if (!in) return Status::IOError("api_keys_file " + file + ": cannot read");
  const size_t before = loaded.digests_.size();
  std::string line;
  for (int number = 1; std::getline(in, line); number++) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    s = loaded.Add(line, "api_keys_file " + file + " line " + std::to_string(number) + ": ");
    if (!s.ok()) return s;
  }
  if (loaded.digests_.size() == before) {
    return Status::InvalidArgument("api_keys_file " + file + ": holds no key");
  }
  *keys = loaded;
  return Status::OK();
}

bool ApiKeys::Allows(std::string_view authorization) const {
  constexpr std::string_view kScheme = "Bearer ";
  if (authorization.size() <= kScheme.size() ||
      strncasecmp(authorization.data(), kScheme.data(), kScheme.size()) != 0) {
    return false;
  }
  const std::string digest = Sha256(authorization.substr(kScheme.size()));
  // Every digest is compared, so the time does not tell which key matched.
  int matches = 0;
  for (const std::string& d : digests_) {
    matches |= CRYPTO_memcmp(d.data(), digest.data(), digest.size()) == 0;
  }
  return matches != 0;
}

}  // namespace otpd
