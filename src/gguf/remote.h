// Reading a remote GGUF file's header over HTTP(S) with Range requests (libcurl), so "will this
// 40 GB model fit here?" costs a few MiB of transfer. Redirects are followed (Hugging Face resolve
// URLs redirect to a CDN).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/size.h"
#include "core/status.h"
#include "gguf/gguf.h"

namespace snug::gguf {

// What a remote read transferred; for logs and for tests that assert a read stayed small.
struct RemoteStats {
  uint64_t requests = 0;        // HTTP requests that reached a server (redirect hops not counted)
  uint64_t bytes_received = 0;  // body bytes received, over all requests
};

struct RemoteOptions {
  // Per request: the whole transfer, and connecting alone.
  std::chrono::milliseconds timeout{60000};
  std::chrono::milliseconds connect_timeout{15000};
  // First window; doubled (or grown to what the parser says it needs) until the header fits.
  // Tokenizer arrays of 150k tokens make headers of 5-10 MiB.
  uint64_t initial_bytes = 2 * kMiB;
  // A header larger than this is refused (a hostile or mistaken URL must not download gigabytes).
  uint64_t max_header_bytes = 64 * kMiB;
  // Extra request headers, "Name: value".
  std::vector<std::string> headers;
  // Sent as "Authorization: Bearer <token>". When unset, HF_TOKEN is sent if the URL's host is the
  // Hugging Face endpoint's host (SNUG_HF_ENDPOINT), so the token never goes to arbitrary servers.
  // libcurl drops the header when a redirect leaves the original host (and port).
  std::optional<std::string> bearer_token;
  RemoteStats* stats = nullptr;  // optional; filled in when given
};

// True for "http://..." and "https://..." model references.
bool IsRemote(const std::string& model);

// Reads the header of the GGUF file at `url` with HTTP Range requests (never the tensor data; a
// server that ignores Range is cut off once enough bytes arrived). The total file size comes from
// Content-Range (or Content-Length). Split models (NAME-00001-of-00003.gguf URLs) read every part's
// header. Errors name the URL and say what to do: 404 -> kNotFound, 401/403 -> kPermissionDenied,
// 5xx -> kUnavailable, connection / timeout -> kIoError, bad bytes -> kCorrupt.
Result<File> ReadRemote(const std::string& url, const RemoteOptions& opts = {});

}  // namespace snug::gguf
