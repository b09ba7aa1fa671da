// SHA-256 of files and byte streams (OpenSSL EVP), as lowercase hex: how blobs are named.
#pragma once

#include <cstddef>
#include <memory>
#include <string>

#include "core/status.h"

namespace snug::store {

// Incremental hasher: Update() any number of times, then HexDigest() once.
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;

  void Update(const void* data, size_t size);
  // Finishes the hash; the object must not be updated afterwards.
  std::string HexDigest();
  // Starts over as if newly constructed.
  void Reset();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Hashes a whole file; IoError when it cannot be read.
Result<std::string> Sha256OfFile(const std::string& path);
// Hashes `path`'s first bytes into `hasher` (to resume a partial download's hash); IoError on
// a short read.
Status HashFilePrefix(const std::string& path, uint64_t bytes, Sha256* hasher);
std::string Sha256OfString(const std::string& text);

// True for 64 lowercase hex digits.
bool IsSha256Hex(const std::string& text);

}  // namespace snug::store
