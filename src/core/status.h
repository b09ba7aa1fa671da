// Status and Result<T>: how every fallible snug function reports failure.
// A Status carries a code (what kind of failure, for exit codes and HTTP statuses) and a sentence a
// user can act on. Modules never throw across their API; adapters around third-party code convert.
#pragma once

#include <cassert>
#include <optional>
#include <string>
#include <utility>
#include <variant>

namespace snug {

enum class Code {
  kOk = 0,
  kInvalidArgument,   // the caller's input is wrong (usage, bad flag value, malformed body)
  kNotFound,          // a named model, file or key does not exist
  kCorrupt,           // data is present but malformed (truncated GGUF, bad checksum)
  kIoError,           // the OS or network failed
  kDoesNotFit,        // the request needs more memory than the budget allows
  kUnavailable,       // temporarily unable (queue full, busy); may succeed later
  kCancelled,         // stopped on request (client gone, Ctrl-C)
  kPermissionDenied,  // authentication / authorization
  kAlreadyExists,
  kRuntime,  // a backend failed at run time (decode error, non-finite logits)
  kUnimplemented,
  kInternal,
  kContextExceeded,  // the input is longer than the model's context holds
};

const char* CodeName(Code code);

class [[nodiscard]] Status {
 public:
  Status() = default;
  Status(Code code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return {}; }
  static Status InvalidArgument(std::string m) { return {Code::kInvalidArgument, std::move(m)}; }
  static Status NotFound(std::string m) { return {Code::kNotFound, std::move(m)}; }
  static Status Corrupt(std::string m) { return {Code::kCorrupt, std::move(m)}; }
  static Status IoError(std::string m) { return {Code::kIoError, std::move(m)}; }
  static Status DoesNotFit(std::string m) { return {Code::kDoesNotFit, std::move(m)}; }
  static Status Unavailable(std::string m) { return {Code::kUnavailable, std::move(m)}; }
  static Status Cancelled(std::string m) { return {Code::kCancelled, std::move(m)}; }
  static Status PermissionDenied(std::string m) { return {Code::kPermissionDenied, std::move(m)}; }
  static Status AlreadyExists(std::string m) { return {Code::kAlreadyExists, std::move(m)}; }
  static Status Runtime(std::string m) { return {Code::kRuntime, std::move(m)}; }
  static Status Unimplemented(std::string m) { return {Code::kUnimplemented, std::move(m)}; }
  static Status Internal(std::string m) { return {Code::kInternal, std::move(m)}; }
  static Status ContextExceeded(std::string m) { return {Code::kContextExceeded, std::move(m)}; }

  bool ok() const { return code_ == Code::kOk; }
  Code code() const { return code_; }
  const std::string& message() const { return message_; }
  // "does not fit: <message>"; "OK" when ok.
  std::string ToString() const;

  // Returns a copy whose message is prefixed with context: "reading x.gguf: <message>".
  Status WithContext(const std::string& context) const;

 private:
  Code code_ = Code::kOk;
  std::string message_;
};

// Holds either a value or a non-OK Status.
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : data_(std::in_place_index<0>, std::move(value)) {}        // NOLINT: implicit
  Result(Status status) : data_(std::in_place_index<1>, std::move(status)) {  // NOLINT: implicit
    assert(!std::get<1>(data_).ok() && "Result constructed from an OK status");
  }

  bool ok() const { return data_.index() == 0; }
  const Status& status() const {
    static const Status kOk;
    return ok() ? kOk : std::get<1>(data_);
  }
  T& value() & { return std::get<0>(data_); }
  const T& value() const& { return std::get<0>(data_); }
  T&& value() && { return std::get<0>(std::move(data_)); }
  T* operator->() { return &value(); }
  const T* operator->() const { return &value(); }
  T& operator*() & { return value(); }
  const T& operator*() const& { return value(); }
  T value_or(T fallback) const { return ok() ? value() : std::move(fallback); }

 private:
  std::variant<T, Status> data_;
};

}  // namespace snug

#define SNUG_CONCAT_INNER(a, b) a##b
#define SNUG_CONCAT(a, b) SNUG_CONCAT_INNER(a, b)

#define SNUG_RETURN_IF_ERROR(expr)               \
  do {                                           \
    ::snug::Status snug_status_ = (expr);        \
    if (!snug_status_.ok()) return snug_status_; \
  } while (0)

#define SNUG_ASSIGN_OR_RETURN_IMPL(tmp, lhs, expr) \
  auto tmp = (expr);                               \
  if (!tmp.ok()) return tmp.status();              \
  lhs = std::move(tmp).value()

// SNUG_ASSIGN_OR_RETURN(auto x, Compute()); — returns the error Status from the enclosing function.
#define SNUG_ASSIGN_OR_RETURN(lhs, expr) \
  SNUG_ASSIGN_OR_RETURN_IMPL(SNUG_CONCAT(snug_result_, __LINE__), lhs, expr)
