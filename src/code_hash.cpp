#include "code_hash.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace otpd {

std::string CodeHasher::Hash(const std::string& user_id, const std::string& code) const {
  std::string input;
  input.reserve(8 + user_id.size() + code.size());
  uint64_t n = user_id.size();
  for (int i = 0; i < 8; i++) input.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  input += user_id;
  input += code;
  unsigned char out[EVP_MAX_MD_SIZE];
  unsigned int out_len = 0;
  HMAC(EVP_sha256(), secret_.data(), static_cast<int>(secret_.size()),
       reinterpret_cast<const unsigned char*>(input.data()), input.size(), out, &out_len);
  return std::string(reinterpret_cast<char*>(out), out_len);
}

bool CodeHasher::Equal(const std::string& a, const std::string& b) {
  if (a.size() != b.size()) return false;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

namespace {

Status ErrnoStatus(const std::string& what, const std::string& path) {
  return Status::IOError(what + " " + path + ": " + std::strerror(errno));
}

Status ReadSecret(int fd, const std::string& path, std::string* secret) {
  struct stat st;
  if (fstat(fd, &st) != 0) return ErrnoStatus("cannot stat secret file", path);
  if ((st.st_mode & 077) != 0) {
    return Status::InvalidArgument("secret file " + path +
                                   " is readable by group or others; chmod 600 it");
  }
  std::string data;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd, buf, sizeof buf)) > 0) data.append(buf, static_cast<size_t>(n));
  if (n < 0) return ErrnoStatus("cannot read secret file", path);
  while (!data.empty() && (data.back() == '\n' || data.back() == '\r' || data.back() == ' ')) {
    data.pop_back();
  }
  if (data.size() < 16) {
    return Status::InvalidArgument("secret file " + path +
                                   " holds fewer than 16 characters; remove it to regenerate");
  }
  *secret = std::move(data);
  return Status::OK();
}

}  // namespace

Status LoadOrCreateSecret(const std::string& path, RandomSource* random, std::string* secret) {
  int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd >= 0) {
    std::string hex;
    Status s = RandomHex(random, 32, &hex);
    if (s.ok()) {
      hex.push_back('\n');
      if (write(fd, hex.data(), hex.size()) != static_cast<ssize_t>(hex.size()) ||
          fsync(fd) != 0) {
        s = ErrnoStatus("cannot write secret file", path);
      }
    }
    close(fd);
    if (!s.ok()) {
      unlink(path.c_str());
      return s;
    }
  } else if (errno != EEXIST) {
    return ErrnoStatus("cannot create secret file", path);
  }
  // Read back even what we just wrote: one path for both cases. A process
  // that lost the O_EXCL race may see the file before the winner wrote it;
  // give the winner a moment.
  Status s;
  for (int tries = 0; tries < 50; tries++) {
    fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoStatus("cannot open secret file", path);
    s = ReadSecret(fd, path, secret);
    close(fd);
    if (s.ok() || !s.IsInvalidArgument()) return s;
    usleep(10000);
  }
  return s;
}

}  // namespace otpd
