#include "engine/text_stream.h"

#include <algorithm>

namespace snug::engine {

size_t IncompleteUtf8Suffix(std::string_view bytes) {
  // Walk back over at most 3 continuation bytes to the lead byte of the last sequence.
  const size_t n = bytes.size();
  for (size_t back = 1; back <= std::min<size_t>(4, n); ++back) {
    const auto c = static_cast<unsigned char>(bytes[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: keep looking for the lead
    size_t expected = 0;
    if ((c & 0xE0) == 0xC0) {
      expected = 2;
    } else if ((c & 0xF0) == 0xE0) {
      expected = 3;
    } else if ((c & 0xF8) == 0xF0) {
      expected = 4;
    } else {
      return 0;  // ASCII or an invalid lead: nothing to wait for
    }
    return back < expected ? back : 0;
  }
  return 0;
}

TextStream::TextStream(std::vector<std::string> stop_strings) {
  for (auto& s : stop_strings) {
    if (!s.empty()) stop_strings_.push_back(std::move(s));
  }
}

std::string TextStream::Append(std::string_view piece) {
  if (stopped_) return {};
  utf8_pending_.append(piece);
  const size_t incomplete = IncompleteUtf8Suffix(utf8_pending_);
  held_.append(utf8_pending_, 0, utf8_pending_.size() - incomplete);
  utf8_pending_.erase(0, utf8_pending_.size() - incomplete);

  // A stop string anywhere in the held text ends the stream before it.
  size_t first_stop = std::string::npos;
  for (const auto& stop : stop_strings_) {
    const size_t at = held_.find(stop);
    if (at < first_stop) {
      first_stop = at;
      matched_stop_ = stop;
    }
  }
  if (first_stop != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first_stop);
    held_.clear();
    utf8_pending_.clear();
    return out;
  }

  // Hold back the longest suffix that could still grow into a stop string.
  size_t keep = 0;
  for (const auto& stop : stop_strings_) {
    for (size_t len = std::min(stop.size() - 1, held_.size()); len > keep; --len) {
      if (held_.compare(held_.size() - len, len, stop, 0, len) == 0) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string TextStream::Flush() {
  if (stopped_) return {};
  std::string out = held_ + utf8_pending_;
  held_.clear();
  utf8_pending_.clear();
  return out;
}

}  // namespace snug::engine
