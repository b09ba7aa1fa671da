#include "store/sha256.h"

#include <fmt/format.h>
#include <openssl/evp.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

namespace snug::store {

struct Sha256::Impl {
  EVP_MD_CTX* ctx = nullptr;
};

Sha256::Sha256() : impl_(std::make_unique<Impl>()) {
  impl_->ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(impl_->ctx);
}

void Sha256::Reset() {
  EVP_DigestInit_ex(impl_->ctx, EVP_sha256(), nullptr);
}

void Sha256::Update(const void* data, size_t size) {
  EVP_DigestUpdate(impl_->ctx, data, size);
}

std::string Sha256::HexDigest() {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  EVP_DigestFinal_ex(impl_->ctx, digest, &length);
  std::string hex;
  hex.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i)
    hex += fmt::format("{:02x}", digest[i]);
  return hex;
}

Status HashFilePrefix(const std::string& path, uint64_t bytes, Sha256* hasher) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Status::IoError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  std::vector<char> buffer(1 << 20);
  uint64_t left = bytes;
  while (left > 0) {
    size_t want = left < buffer.size() ? static_cast<size_t>(left) : buffer.size();
    size_t got = std::fread(buffer.data(), 1, want, file);
    if (got == 0) break;
    hasher->Update(buffer.data(), got);
    left -= got;
  }
  std::fclose(file);
  if (left > 0) return Status::IoError(fmt::format("{} is shorter than expected", path));
  return Status::Ok();
}

Result<std::string> Sha256OfFile(const std::string& path) {
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) {
    return Status::IoError(fmt::format("cannot read {}: {}", path, std::strerror(errno)));
  }
  Sha256 hasher;
  std::vector<char> buffer(1 << 20);
  size_t got;
  while ((got = std::fread(buffer.data(), 1, buffer.size(), file)) > 0) {
    hasher.Update(buffer.data(), got);
  }
  bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return Status::IoError(fmt::format("error reading {}", path));
  return hasher.HexDigest();
}

std::string Sha256OfString(const std::string& text) {
  Sha256 hasher;
  hasher.Update(text.data(), text.size());
  return hasher.HexDigest();
}

bool IsSha256Hex(const std::string& text) {
  if (text.size() != 64) return false;
  for (char c : text) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace snug::store
