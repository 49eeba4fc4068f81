#include "core/code_hash.h"

#include <fcntl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace otpd {

namespace {

constexpr size_t kBlock = 64;  // SHA-256 block size

// A SHA-256 context that has absorbed (key ^ pad) for the HMAC key.
EVP_MD_CTX* PaddedKeyState(const unsigned char* key, unsigned char pad) {
  unsigned char block[kBlock];
  for (size_t i = 0; i < kBlock; i++) block[i] = key[i] ^ pad;
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (ctx == nullptr || EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1 ||
      EVP_DigestUpdate(ctx, block, kBlock) != 1) {
    abort();  // out of memory, or no SHA-256 in this OpenSSL: nothing works
  }
  OPENSSL_cleanse(block, sizeof block);
  return ctx;
}

// One scratch context per thread, reused: copying a state into a context
// of the same digest reuses its buffers.
EVP_MD_CTX* Scratch() {
  struct Holder {
    EVP_MD_CTX* ctx = EVP_MD_CTX_new();
    ~Holder() { EVP_MD_CTX_free(ctx); }
  };
  thread_local Holder holder;
  return holder.ctx;
}

// Finishes `state` + data into out[32], using the thread's scratch context.
void Finish(const EVP_MD_CTX* state, const void* data, size_t n, unsigned char* out) {
  EVP_MD_CTX* ctx = Scratch();
  unsigned int len = 0;
  if (EVP_MD_CTX_copy_ex(ctx, state) != 1 || EVP_DigestUpdate(ctx, data, n) != 1 ||
      EVP_DigestFinal_ex(ctx, out, &len) != 1) {
    abort();
  }
}

}  // namespace

CodeHasher::CodeHasher(const std::string& secret) {
  // RFC 2104: a key longer than a block is replaced by its digest, and the
  // key is zero-padded to a block.
  unsigned char key[kBlock] = {0};
  if (secret.size() > kBlock) {
    unsigned int len = 0;
    EVP_Digest(secret.data(), secret.size(), key, &len, EVP_sha256(), nullptr);
  } else {
    memcpy(key, secret.data(), secret.size());
  }
  inner_ = PaddedKeyState(key, 0x36);
  outer_ = PaddedKeyState(key, 0x5c);
  OPENSSL_cleanse(key, sizeof key);
}

CodeHasher::~CodeHasher() {
  EVP_MD_CTX_free(inner_);
  EVP_MD_CTX_free(outer_);
}

std::string CodeHasher::Mac(const std::string& data) const {
  unsigned char inner[32], out[32];
  Finish(inner_, data.data(), data.size(), inner);
  Finish(outer_, inner, sizeof inner, out);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string CodeHasher::Hash(const std::string& user_id, const std::string& code) const {
  std::string input;
  input.reserve(8 + user_id.size() + code.size());
  uint64_t n = user_id.size();
  for (int i = 0; i < 8; i++) input.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  input += user_id;
  input += code;
  return Mac(input);
}

std::string CodeHasher::Pseudonym(const std::string& data) const {
  static const char kDigits[] = "0123456789abcdef";
  std::string hex;
  for (unsigned char b : Mac(data).substr(0, 16)) {
    hex += {kDigits[b >> 4], kDigits[b & 15]};
  }
  return hex;
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
      if (write(fd, hex.data(), hex.size()) != static_cast<ssize_t>(hex.size()) || fsync(fd) != 0) {
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
