#include "gguf/remote.h"

#include <curl/curl.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <mutex>
#include <string_view>

#include <fmt/format.h>

#include "config/env.h"
#include "gguf/reader.h"
#include "gguf/split.h"

namespace snug::gguf {
namespace {

// One response as the callbacks see it. With redirects the header callback sees every hop's
// headers, so the state is reset at each status line and describes the final response.
struct Transfer {
  uint64_t begin = 0;  // first file byte wanted (== buf->size() at the start)
  uint64_t end = 0;    // last file byte wanted, inclusive
  std::string* buf = nullptr;
  RemoteStats* stats = nullptr;

  long status = 0;
  std::optional<uint64_t> range_start;
  std::optional<uint64_t> range_total;
  std::optional<uint64_t> content_length;
  uint64_t received = 0;   // body bytes of the final response
  bool stopped = false;    // we cut the transfer off because we had enough
  bool bad_range = false;  // 206 for a range we did not ask for
};

std::optional<uint64_t> ParseU64(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t'))
    s.remove_prefix(1);
  uint64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p == s.data()) return std::nullopt;
  return v;
}

bool HeaderIs(std::string_view line, std::string_view name) {
  if (line.size() <= name.size() || line[name.size()] != ':') return false;
  for (size_t i = 0; i < name.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(line[i])) != name[i]) return false;
  }
  return true;
}

size_t OnHeader(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  std::string_view line(data, size * n);
  while (!line.empty() && (line.back() == '\r' || line.back() == '\n'))
    line.remove_suffix(1);
  if (line.starts_with("HTTP/")) {
    t->status = 0;
    t->range_start.reset();
    t->range_total.reset();
    t->content_length.reset();
    if (auto sp = line.find(' '); sp != std::string_view::npos) {
      t->status = static_cast<long>(ParseU64(line.substr(sp + 1)).value_or(0));
    }
  } else if (HeaderIs(line, "content-range")) {
    // "bytes 0-2097151/4920733696", or "bytes */4920733696" on a 416.
    std::string_view v = line.substr(sizeof("content-range:") - 1);
    if (auto pos = v.find("bytes"); pos != std::string_view::npos) v.remove_prefix(pos + 5);
    t->range_start = ParseU64(v);
    if (auto slash = v.find('/'); slash != std::string_view::npos) {
      t->range_total = ParseU64(v.substr(slash + 1));
    }
  } else if (HeaderIs(line, "content-length")) {
    t->content_length = ParseU64(line.substr(sizeof("content-length:") - 1));
  }
  return size * n;
}

size_t OnBody(char* data, size_t size, size_t n, void* user) {
  auto* t = static_cast<Transfer*>(user);
  const size_t len = size * n;
  if (t->stats != nullptr) t->stats->bytes_received += len;
  if (t->status != 200 && t->status != 206) {
    t->received += len;  // an error page; its size is irrelevant
    return len;
  }
  // Where this chunk sits in the file: a 206 body starts at its Content-Range start, a 200 body
  // (a server that ignores Range) at byte 0.
  uint64_t chunk_start = t->received;
  if (t->status == 206) {
    if (!t->range_start || *t->range_start > t->begin) {
      t->bad_range = true;
      return 0;
    }
    chunk_start += *t->range_start;
  }
  t->received += len;
  const uint64_t chunk_end = chunk_start + len;  // exclusive
  const uint64_t have = t->buf->size();
  const uint64_t want_end = t->end + 1;
  if (chunk_end > have && chunk_start <= have) {
    const uint64_t copy_end = std::min(chunk_end, want_end);
    if (copy_end > have) t->buf->append(data + (have - chunk_start), copy_end - have);
  }
  if (t->buf->size() >= want_end) {
    // Enough: stop rather than download the rest (a 200 would otherwise send the whole model).
    t->stopped = true;
    return chunk_end > want_end || t->status == 200 ? 0 : len;
  }
  return len;
}

std::string HostOf(const std::string& url) {
  std::string host;
  CURLU* u = curl_url();
  if (curl_url_set(u, CURLUPART_URL, url.c_str(), 0) == CURLUE_OK) {
    char* h = nullptr;
    if (curl_url_get(u, CURLUPART_HOST, &h, 0) == CURLUE_OK && h != nullptr) {
      host = h;
      curl_free(h);
    }
    char* port = nullptr;
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) == CURLUE_OK && port) {
      host += ":" + std::string(port);
      curl_free(port);
    }
  }
  curl_url_cleanup(u);
  return host;
}

std::optional<std::string> BearerFor(const std::string& url, const RemoteOptions& opts) {
  if (opts.bearer_token) return opts.bearer_token;
  auto token = env::HfToken();
  if (!token) return std::nullopt;
  const std::string host = HostOf(url);
  if (host.empty() || host != HostOf(env::HfEndpoint())) return std::nullopt;
  return token;
}

class Fetcher {
 public:
  Fetcher(const std::string& url, const RemoteOptions& opts) : url_(url), opts_(opts) {
    static std::once_flag once;
    std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
    curl_ = curl_easy_init();
    for (const std::string& h : opts.headers)
      headers_ = curl_slist_append(headers_, h.c_str());
    if (auto token = BearerFor(url, opts)) {
      headers_ = curl_slist_append(headers_, ("Authorization: Bearer " + *token).c_str());
      has_token_ = true;
    }
  }
  ~Fetcher() {
    curl_slist_free_all(headers_);
    if (curl_ != nullptr) curl_easy_cleanup(curl_);
  }
  Fetcher(const Fetcher&) = delete;
  Fetcher& operator=(const Fetcher&) = delete;

  // Appends file bytes [buf->size(), end] to *buf; *total receives the file size when the server
  // tells it (kUnknownFileSize otherwise).
  Status Fetch(uint64_t end, std::string* buf, uint64_t* total);

 private:
  Status HttpError(long status) const;

  std::string url_;
  const RemoteOptions& opts_;
  CURL* curl_ = nullptr;
  curl_slist* headers_ = nullptr;
  bool has_token_ = false;
};

Status Fetcher::Fetch(uint64_t end, std::string* buf, uint64_t* total) {
  if (curl_ == nullptr) return Status::Internal("libcurl could not be initialised");
  Transfer t;
  t.begin = buf->size();
  t.end = end;
  t.buf = buf;
  t.stats = opts_.stats;
  const std::string range = fmt::format("{}-{}", t.begin, end);
  char error[CURL_ERROR_SIZE] = {0};

  CURL* c = curl_;
  curl_easy_reset(c);
  curl_easy_setopt(c, CURLOPT_URL, url_.c_str());
  curl_easy_setopt(c, CURLOPT_RANGE, range.c_str());
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 1L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, 10L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, static_cast<long>(opts_.timeout.count()));
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(opts_.connect_timeout.count()));
  curl_easy_setopt(c, CURLOPT_USERAGENT, "snug/0.1");
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers_);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, error);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, OnHeader);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, &t);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, OnBody);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &t);

  const CURLcode rc = curl_easy_perform(c);
  if (t.status != 0 && opts_.stats != nullptr) ++opts_.stats->requests;
  if (t.bad_range) {
    return Status::IoError(fmt::format(
        "{} answered a request for bytes {} with a different range; the server's Range support "
        "is broken",
        url_, range));
  }
  const bool cut_off = rc == CURLE_WRITE_ERROR && t.stopped;
  // Some servers (cpp-httplib 0.11) announce the requested length even when the range runs past
  // the end of the file, then close after the last byte: that is a complete answer.
  const bool whole_file_arrived = t.status == 206 && t.range_total &&
                                  buf->size() >= std::min<uint64_t>(end + 1, *t.range_total);
  if (rc != CURLE_OK && !cut_off && !whole_file_arrived) {
    const std::string detail = error[0] != '\0' ? error : curl_easy_strerror(rc);
    switch (rc) {
      case CURLE_COULDNT_RESOLVE_HOST:
      case CURLE_COULDNT_RESOLVE_PROXY:
        return Status::IoError(fmt::format("cannot reach {}: {}", url_, detail));
      case CURLE_COULDNT_CONNECT:
        return Status::IoError(
            fmt::format("cannot connect to {}: {} (is the server up?)", url_, detail));
      case CURLE_OPERATION_TIMEDOUT:
        return Status::IoError(fmt::format("reading the header of {} timed out after {} ms: {}",
                                           url_, opts_.timeout.count(), detail));
      case CURLE_TOO_MANY_REDIRECTS:
        return Status::IoError(fmt::format("{} redirects too many times: {}", url_, detail));
      case CURLE_PARTIAL_FILE:
      case CURLE_RECV_ERROR:
      case CURLE_GOT_NOTHING:
        return Status::IoError(fmt::format(
            "{}: the server closed the connection after {} bytes of the {} requested ({})", url_,
            t.received, end - t.begin + 1, detail));
      default:
        return Status::IoError(fmt::format("reading {} failed: {}", url_, detail));
    }
  }
  if (t.status != 200 && t.status != 206) return HttpError(t.status);

  *total = kUnknownFileSize;
  if (t.status == 206 && t.range_total) {
    *total = *t.range_total;
  } else if (t.status == 200 && t.content_length) {
    *total = *t.content_length;
  } else if (t.status == 200 && !t.stopped) {
    *total = t.received;  // the whole file arrived
  }
  const uint64_t expected_end =
      *total == kUnknownFileSize ? end + 1 : std::min<uint64_t>(end + 1, *total);
  if (buf->size() < expected_end && (t.stopped || *total != kUnknownFileSize)) {
    return Status::IoError(fmt::format(
        "{}: the server sent {} bytes where {} were requested (bytes {}) and the file has {}", url_,
        buf->size() - t.begin, expected_end - t.begin, range,
        *total == kUnknownFileSize ? std::string("an unknown size") : std::to_string(*total)));
  }
  if (*total == kUnknownFileSize && buf->size() < end + 1) {
    *total = buf->size();  // a 206 without a total that ended early: the file ends here
  }
  return Status::Ok();
}

Status Fetcher::HttpError(long status) const {
  if (status == 404 || status == 410) {
    return Status::NotFound(fmt::format("{} was not found (HTTP {})", url_, status));
  }
  if (status == 401 || status == 403) {
    return Status::PermissionDenied(fmt::format(
        "{} refused access (HTTP {}): {}", url_, status,
        has_token_ ? "the token sent was not accepted for this file (gated model? accept its "
                     "license on the model page)"
                   : "set HF_TOKEN to a Hugging Face token with access to this model"));
  }
  if (status == 416) {
    return Status::IoError(
        fmt::format("{} rejected the byte range snug asked for (HTTP 416)", url_));
  }
  if (status >= 500) {
    return Status::Unavailable(
        fmt::format("{} failed on the server side (HTTP {}); try again later", url_, status));
  }
  return Status::IoError(fmt::format("{} answered HTTP {}", url_, status));
}

Result<File> ReadOneRemote(const std::string& url, const RemoteOptions& opts) {
  Fetcher fetcher(url, opts);
  std::string buf;
  uint64_t total = kUnknownFileSize;
  uint64_t want = std::max<uint64_t>(opts.initial_bytes, 64);
  want = std::min(want, opts.max_header_bytes);
  for (;;) {
    uint64_t end = want - 1;
    if (total != kUnknownFileSize) end = std::min(end, total == 0 ? 0 : total - 1);
    if (buf.size() <= end && buf.size() != total) {
      buf.reserve(end + 1);
      uint64_t seen_total = kUnknownFileSize;
      SNUG_RETURN_IF_ERROR(fetcher.Fetch(end, &buf, &seen_total));
      if (seen_total != kUnknownFileSize) total = seen_total;
    }
    HeaderParse parsed =
        ParseHeader(reinterpret_cast<const uint8_t*>(buf.data()), buf.size(), total, url);
    if (parsed.status.ok()) return std::move(parsed.file);
    if (parsed.status.code() != Code::kUnavailable) return parsed.status;
    if (parsed.needed_bytes > opts.max_header_bytes) {
      return Status::Corrupt(fmt::format(
          "the header of {} needs more than {} (at least {} bytes); snug reads at most that much "
          "metadata from a remote file",
          url, FormatSize(opts.max_header_bytes), parsed.needed_bytes));
    }
    if (buf.size() < want || parsed.needed_bytes <= buf.size()) {
      // The server delivered less than asked without saying the file ended there.
      return Status::IoError(
          fmt::format("{}: the transfer ended after {} bytes, inside the header", url, buf.size()));
    }
    want = std::min(std::max(want * 2, parsed.needed_bytes), opts.max_header_bytes);
  }
}

}  // namespace

bool IsRemote(const std::string& model) {
  return model.starts_with("http://") || model.starts_with("https://");
}

Result<File> ReadRemote(const std::string& url, const RemoteOptions& opts) {
  if (!IsRemote(url)) {
    return Status::InvalidArgument(fmt::format("{} is not an http:// or https:// URL", url));
  }
  SNUG_ASSIGN_OR_RETURN(File file, ReadOneRemote(url, opts));
  return MergeSplits(std::move(file),
                     [&opts](const std::string& part) { return ReadOneRemote(part, opts); });
}

}  // namespace snug::gguf
