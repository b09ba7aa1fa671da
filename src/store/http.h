// HTTP for the store (libcurl): small GETs, HEAD of a file, and resumable verified downloads.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "core/status.h"
#include "store/sha256.h"

namespace snug::store {

struct HttpOptions {
  std::optional<std::string> bearer_token;      // sent as "Authorization: Bearer ..." when set
  int max_attempts = 5;                         // per download, transient failures only
  std::chrono::milliseconds backoff_base{500};  // doubled per attempt, capped at 30 s
  long connect_timeout_seconds = 30;
  long stall_timeout_seconds = 60;  // abort (and retry) when no byte arrives this long
};

// GET a small text resource (the hub listing API). 401/403 -> PermissionDenied, 404 -> NotFound,
// others -> IoError; messages name the URL and what to do.
Result<std::string> HttpGetText(const std::string& url, const HttpOptions& options);

struct RemoteFileInfo {
  std::optional<std::string> sha256;  // from X-Linked-ETag (the hub's LFS sha256), when given
  std::optional<uint64_t> size;       // X-Linked-Size or Content-Length
  bool accepts_ranges = false;
};

// HEAD request following redirects; reads the headers of every hop (the hub puts X-Linked-ETag
// on the /resolve/ redirect, not on the CDN response).
Result<RemoteFileInfo> HttpHeadFile(const std::string& url, const HttpOptions& options);

struct DownloadProgress {
  uint64_t done = 0;          // bytes in the partial file
  uint64_t total = 0;         // 0 when unknown
  uint64_t resumed_from = 0;  // bytes present when this download started
  double seconds = 0;         // since this download started
  bool finished = false;
};
using ProgressFn = std::function<void(const DownloadProgress&)>;

// Downloads `url` into `partial_path`, appending from the file's current size with a Range
// request (resuming an interrupted or crashed pull), retrying transient failures (connection
// errors, 5xx, 429) with exponential backoff. Returns the sha256 of the complete file. A server
// that ignores Range restarts the file from zero. When `expected_size` is set the result is
// checked against it.
Result<std::string> DownloadResumable(const std::string& url, const std::string& partial_path,
                                      std::optional<uint64_t> expected_size,
                                      const HttpOptions& options, const ProgressFn& progress);

}  // namespace snug::store
