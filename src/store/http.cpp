#include "store/http.h"

#include <curl/curl.h>
#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>

#include "core/log.h"

namespace snug::store {
namespace {

void GlobalInit() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

std::string Lower(std::string text) {
  for (char& c : text)
    c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return text;
}

std::string Trim(std::string text) {
  while (!text.empty() && std::isspace(static_cast<unsigned char>(text.back())))
    text.pop_back();
  size_t start = 0;
  while (start < text.size() && std::isspace(static_cast<unsigned char>(text[start])))
    ++start;
  return text.substr(start);
}

// Headers of the current response; reset at each "HTTP/" status line (redirect hops), except the
// hub's linked headers, which are kept from whichever hop carried them.
struct ResponseHeaders {
  long status = 0;
  std::optional<uint64_t> content_length;
  std::optional<uint64_t> range_total;  // from Content-Range: bytes a-b/total
  std::optional<uint64_t> range_start;
  bool accepts_ranges = false;
  std::optional<std::string> linked_sha256;
  std::optional<uint64_t> linked_size;
};

std::optional<uint64_t> ParseUint(const std::string& text) {
  if (text.empty() || !std::all_of(text.begin(), text.end(), ::isdigit)) return std::nullopt;
  try {
    return std::stoull(text);
  } catch (...) {
    return std::nullopt;
  }
}

size_t OnHeader(char* buffer, size_t size, size_t count, void* user) {
  auto* headers = static_cast<ResponseHeaders*>(user);
  std::string line(buffer, size * count);
  if (line.rfind("HTTP/", 0) == 0) {
    auto space = line.find(' ');
    headers->status = space == std::string::npos ? 0 : std::atol(line.c_str() + space + 1);
    headers->content_length.reset();
    headers->range_total.reset();
    headers->range_start.reset();
    headers->accepts_ranges = false;
    return size * count;
  }
  auto colon = line.find(':');
  if (colon == std::string::npos) return size * count;
  std::string key = Lower(Trim(line.substr(0, colon)));
  std::string value = Trim(line.substr(colon + 1));
  if (key == "content-length") {
    headers->content_length = ParseUint(value);
  } else if (key == "accept-ranges") {
    headers->accepts_ranges = Lower(value).find("bytes") != std::string::npos;
  } else if (key == "content-range") {
    // "bytes 100-199/1000"
    auto dash = value.find('-');
    auto slash = value.find('/');
    auto space = value.find(' ');
    if (space != std::string::npos && dash != std::string::npos) {
      headers->range_start = ParseUint(value.substr(space + 1, dash - space - 1));
    }
    if (slash != std::string::npos) headers->range_total = ParseUint(value.substr(slash + 1));
  } else if (key == "x-linked-etag") {
    std::string etag = value;
    if (etag.rfind("W/", 0) == 0) etag = etag.substr(2);
    etag.erase(std::remove(etag.begin(), etag.end(), '"'), etag.end());
    etag = Lower(etag);
    if (IsSha256Hex(etag)) headers->linked_sha256 = etag;
  } else if (key == "x-linked-size") {
    headers->linked_size = ParseUint(value);
  }
  return size * count;
}

struct CurlHandle {
  CURL* curl;
  curl_slist* headers = nullptr;
  CurlHandle() : curl(curl_easy_init()) {}
  ~CurlHandle() {
    curl_slist_free_all(headers);
    curl_easy_cleanup(curl);
  }
};

void SetCommon(CurlHandle& handle, const std::string& url, const HttpOptions& options,
               ResponseHeaders* headers) {
  CURL* curl = handle.curl;
  curl_easy_setopt(curl, CURLOPT_URL, url.c_str());
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(curl, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "snug/0.1");
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, options.connect_timeout_seconds);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt(curl, CURLOPT_LOW_SPEED_TIME, options.stall_timeout_seconds);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, headers);
  if (options.bearer_token) {
    // curl drops a custom Authorization header when a redirect leaves the host (>= 7.58), so the
    // token is not leaked to a CDN.
    handle.headers = curl_slist_append(handle.headers,
                                       ("Authorization: Bearer " + *options.bearer_token).c_str());
  }
}

Status HttpStatusError(long status, const std::string& url, const HttpOptions& options) {
  if (status == 401 || status == 403) {
    return Status::PermissionDenied(fmt::format(
        "{} refused access (HTTP {}): {}", url, status,
        options.bearer_token ? "the HF_TOKEN given cannot read this repository"
                             : "the repository may be gated or private; set HF_TOKEN to a token "
                               "that can read it"));
  }
  if (status == 404) {
    return Status::NotFound(
        fmt::format("{} was not found (HTTP 404): check the owner, repository and file name", url));
  }
  return Status::IoError(fmt::format("{} answered HTTP {}", url, status));
}

bool TransientHttp(long status) {
  return status == 408 || status == 429 || status >= 500;
}

bool TransientCurl(CURLcode code) {
  switch (code) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_GOT_NOTHING:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
      return true;
    default:
      return false;
  }
}

size_t AppendToString(char* data, size_t size, size_t count, void* user) {
  auto* out = static_cast<std::string*>(user);
  if (out->size() > (64u << 20)) return 0;  // a listing is never this big
  out->append(data, size * count);
  return size * count;
}

void Backoff(const HttpOptions& options, int attempt) {
  auto delay = options.backoff_base * (1 << std::min(attempt, 6));
  delay = std::min<std::chrono::milliseconds>(delay, std::chrono::seconds(30));
  std::this_thread::sleep_for(delay);
}

}  // namespace

Result<std::string> HttpGetText(const std::string& url, const HttpOptions& options) {
  GlobalInit();
  Status last;
  for (int attempt = 0; attempt < options.max_attempts; ++attempt) {
    if (attempt > 0) Backoff(options, attempt - 1);
    CurlHandle handle;
    ResponseHeaders headers;
    std::string body;
    SetCommon(handle, url, options, &headers);
    curl_easy_setopt(handle.curl, CURLOPT_HTTPHEADER, handle.headers);
    curl_easy_setopt(handle.curl, CURLOPT_WRITEFUNCTION, AppendToString);
    curl_easy_setopt(handle.curl, CURLOPT_WRITEDATA, &body);
    CURLcode code = curl_easy_perform(handle.curl);
    if (code != CURLE_OK) {
      last = Status::IoError(fmt::format("cannot fetch {}: {}", url, curl_easy_strerror(code)));
      if (TransientCurl(code)) continue;
      return last;
    }
    if (headers.status == 200) return body;
    last = HttpStatusError(headers.status, url, options);
    if (!TransientHttp(headers.status)) return last;
  }
  return last;
}

Result<RemoteFileInfo> HttpHeadFile(const std::string& url, const HttpOptions& options) {
  GlobalInit();
  Status last;
  for (int attempt = 0; attempt < options.max_attempts; ++attempt) {
    if (attempt > 0) Backoff(options, attempt - 1);
    CurlHandle handle;
    ResponseHeaders headers;
    SetCommon(handle, url, options, &headers);
    curl_easy_setopt(handle.curl, CURLOPT_HTTPHEADER, handle.headers);
    curl_easy_setopt(handle.curl, CURLOPT_NOBODY, 1L);
    CURLcode code = curl_easy_perform(handle.curl);
    if (code != CURLE_OK) {
      last = Status::IoError(fmt::format("cannot reach {}: {}", url, curl_easy_strerror(code)));
      if (TransientCurl(code)) continue;
      return last;
    }
    if (headers.status != 200) {
      last = HttpStatusError(headers.status, url, options);
      if (TransientHttp(headers.status)) continue;
      return last;
    }
    RemoteFileInfo info;
    info.sha256 = headers.linked_sha256;
    info.size = headers.linked_size ? headers.linked_size : headers.content_length;
    info.accepts_ranges = headers.accepts_ranges;
    return info;
  }
  return last;
}

namespace {

struct DownloadState {
  FILE* file = nullptr;
  Sha256* hasher = nullptr;
  ResponseHeaders* headers = nullptr;
  uint64_t requested_from = 0;  // Range start we asked for
  uint64_t written = 0;         // bytes in the file
  bool body_started = false;
  bool restarted = false;  // server ignored Range: the file was truncated
  std::string error_body;  // body of a non-2xx response (not written to the file)
  Status write_error;
  const ProgressFn* progress = nullptr;
  DownloadProgress report;
  std::chrono::steady_clock::time_point start, last_report;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* state = static_cast<DownloadState*>(user);
  size_t bytes = size * count;
  long status = state->headers->status;
  if (status != 200 && status != 206) {
    if (state->error_body.size() < 4096) state->error_body.append(data, bytes);
    return bytes;
  }
  if (!state->body_started) {
    state->body_started = true;
    bool ranged = status == 206 && state->headers->range_start.value_or(0) == state->requested_from;
    if (state->requested_from > 0 && !ranged) {
      // Server sent the whole file (200) or an unexpected range: start over from byte zero.
      if (ftruncate(fileno(state->file), 0) != 0 || std::fseek(state->file, 0, SEEK_SET) != 0) {
        state->write_error = Status::IoError("cannot truncate the partial download");
        return 0;
      }
      state->hasher->Reset();
      state->written = 0;
      state->restarted = true;
    }
  }
  // Never write past the size the server announced (the hub's X-Linked-Size, or this
  // response's own length): a server that keeps sending would otherwise fill the disk.
  uint64_t announced = state->report.total;
  if (announced == 0 && state->headers->range_total) announced = *state->headers->range_total;
  if (announced == 0 && status == 200 && state->headers->content_length) {
    announced = *state->headers->content_length;
  }
  if (announced > 0 && state->written + bytes > announced) {
    state->write_error = Status::Corrupt(
        fmt::format("the server sent more than the {} bytes it announced; the download was "
                    "stopped and discarded",
                    announced));
    return 0;
  }
  if (std::fwrite(data, 1, bytes, state->file) != bytes) {
    state->write_error =
        Status::IoError(fmt::format("cannot write the download to disk: {}", std::strerror(errno)));
    return 0;
  }
  state->hasher->Update(data, bytes);
  state->written += bytes;
  if (*state->progress) {
    auto now = std::chrono::steady_clock::now();
    if (now - state->last_report > std::chrono::milliseconds(200)) {
      state->last_report = now;
      state->report.done = state->written;
      state->report.seconds = std::chrono::duration<double>(now - state->start).count();
      (*state->progress)(state->report);
    }
  }
  return bytes;
}

uint64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? static_cast<uint64_t>(st.st_size) : 0;
}

}  // namespace

Result<std::string> DownloadResumable(const std::string& url, const std::string& partial_path,
                                      std::optional<uint64_t> expected_size,
                                      const HttpOptions& options, const ProgressFn& progress) {
  GlobalInit();
  uint64_t existing = FileSize(partial_path);
  if (expected_size && existing > *expected_size) {
    // Longer than the file can be: not a prefix of it, start over.
    if (truncate(partial_path.c_str(), 0) != 0) {
      return Status::IoError(
          fmt::format("cannot reset {}: {}", partial_path, std::strerror(errno)));
    }
    existing = 0;
  }
  // Hash what an earlier attempt left, so the result covers the whole file in one pass.
  Sha256 hasher;
  if (existing > 0) SNUG_RETURN_IF_ERROR(HashFilePrefix(partial_path, existing, &hasher));
  FILE* file = std::fopen(partial_path.c_str(), existing > 0 ? "r+b" : "wb");
  if (file == nullptr) {
    return Status::IoError(fmt::format("cannot write {}: {}", partial_path, std::strerror(errno)));
  }
  std::fseek(file, static_cast<long>(existing), SEEK_SET);

  DownloadState state;
  state.file = file;
  state.hasher = &hasher;
  state.written = existing;
  state.progress = &progress;
  state.report.total = expected_size.value_or(0);
  state.report.resumed_from = existing;
  state.start = std::chrono::steady_clock::now();

  Status last = Status::Ok();
  bool complete = expected_size && existing == *expected_size;
  for (int attempt = 0; !complete && attempt < options.max_attempts; ++attempt) {
    if (attempt > 0) {
      spdlog::info("download of {} interrupted ({}); retrying from byte {}", url, last.message(),
                   state.written);
      Backoff(options, attempt - 1);
    }
    CurlHandle handle;
    ResponseHeaders headers;
    state.headers = &headers;
    state.requested_from = state.written;
    state.body_started = false;
    state.error_body.clear();
    SetCommon(handle, url, options, &headers);
    if (state.written > 0) {
      handle.headers =
          curl_slist_append(handle.headers, fmt::format("Range: bytes={}-", state.written).c_str());
    }
    curl_easy_setopt(handle.curl, CURLOPT_HTTPHEADER, handle.headers);
    curl_easy_setopt(handle.curl, CURLOPT_WRITEFUNCTION, OnBody);
    curl_easy_setopt(handle.curl, CURLOPT_WRITEDATA, &state);
    CURLcode code = curl_easy_perform(handle.curl);
    std::fflush(file);
    if (!state.write_error.ok()) {
      std::fclose(file);
      return state.write_error;
    }
    if (headers.status == 416 && state.written > 0) {
      // Our partial file does not match the remote any more (changed upstream): start over.
      if (ftruncate(fileno(file), 0) != 0) {
        std::fclose(file);
        return Status::IoError("cannot reset the partial download");
      }
      std::fseek(file, 0, SEEK_SET);
      hasher.Reset();
      state.written = 0;
      last = Status::IoError("the server rejected the resume range");
      continue;
    }
    if (headers.status != 0 && headers.status != 200 && headers.status != 206) {
      last = HttpStatusError(headers.status, url, options);
      if (TransientHttp(headers.status)) continue;
      std::fclose(file);
      return last;
    }
    if (code != CURLE_OK) {
      last =
          Status::IoError(fmt::format("download of {} failed: {}", url, curl_easy_strerror(code)));
      if (TransientCurl(code)) continue;
      std::fclose(file);
      return last;
    }
    if (!expected_size) {
      if (headers.range_total) {
        expected_size = headers.range_total;
      } else if (headers.status == 200 && headers.content_length) {
        expected_size = headers.content_length;
      }
    }
    if (expected_size && state.written < *expected_size) {
      last = Status::IoError(
          fmt::format("connection closed after {} of {} bytes", state.written, *expected_size));
      continue;
    }
    complete = true;
  }
  bool synced = fsync(fileno(file)) == 0;
  std::fclose(file);
  if (!complete) {
    return last.WithContext(
        fmt::format("giving up after {} attempts (the partial file is kept; "
                    "run the same pull again to resume)",
                    options.max_attempts));
  }
  if (!synced) return Status::IoError(fmt::format("cannot flush {} to disk", partial_path));
  if (expected_size && state.written != *expected_size) {
    return Status::Corrupt(fmt::format("downloaded {} bytes but the server announced {}",
                                       state.written, *expected_size));
  }
  if (progress) {
    state.report.done = state.written;
    state.report.total = state.written;
    state.report.finished = true;
    state.report.seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - state.start).count();
    progress(state.report);
  }
  return hasher.HexDigest();
}

}  // namespace snug::store
