// Turns a stream of token pieces (raw bytes) into text that is safe to show as it arrives:
// incomplete UTF-8 sequences are held until their last byte arrives, and text that may be the
// start of a stop string is held until it is clearly not one. Internal to the engine; in its own
// header so it can be unit-tested without a model.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace snug::engine {

class TextStream {
 public:
  explicit TextStream(std::vector<std::string> stop_strings = {});

  // Adds one piece; returns the text that can be emitted now. After a stop string is found,
  // returns only the text before it and stopped() becomes true; later calls return "".
  std::string Append(std::string_view piece);
  // End of the stream (EOG, length, cancel): everything still held, incomplete bytes included.
  std::string Flush();
  bool stopped() const { return stopped_; }
  // The stop string that ended the stream ("" before one did).
  const std::string& matched_stop() const { return matched_stop_; }

 private:
  std::vector<std::string> stop_strings_;
  std::string utf8_pending_;  // trailing bytes of an incomplete UTF-8 sequence
  std::string held_;          // complete text that may be the start of a stop string
  bool stopped_ = false;
  std::string matched_stop_;
};

// Length of the longest suffix of `bytes` that is an incomplete but so-far valid UTF-8 sequence
// (0..3). Invalid bytes are not held: they pass through rather than block the stream forever.
size_t IncompleteUtf8Suffix(std::string_view bytes);

}  // namespace snug::engine
