#include "core/status.h"

namespace snug {

const char* CodeName(Code code) {
  switch (code) {
    case Code::kOk:
      return "ok";
    case Code::kInvalidArgument:
      return "invalid argument";
    case Code::kNotFound:
      return "not found";
    case Code::kCorrupt:
      return "corrupt";
    case Code::kIoError:
      return "I/O error";
    case Code::kDoesNotFit:
      return "does not fit";
    case Code::kUnavailable:
      return "unavailable";
    case Code::kCancelled:
      return "cancelled";
    case Code::kPermissionDenied:
      return "permission denied";
    case Code::kAlreadyExists:
      return "already exists";
    case Code::kRuntime:
      return "runtime error";
    case Code::kUnimplemented:
      return "not implemented";
    case Code::kInternal:
      return "internal error";
    case Code::kContextExceeded:
      return "context exceeded";
  }
  return "unknown";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  return std::string(CodeName(code_)) + ": " + message_;
}

Status Status::WithContext(const std::string& context) const {
  if (ok()) return *this;
  return Status(code_, context + ": " + message_);
}

}  // namespace snug
