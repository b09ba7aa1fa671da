#include "server/api_error.h"

namespace snug::server {

namespace {

// Anthropic's error types (https://docs.anthropic.com/en/api/errors), by HTTP status.
const char* AnthropicErrorType(int http_status) {
  switch (http_status) {
    case 400:
    case 405:
    case 415:
    case 422:
    case 431:
    case 499:
      return "invalid_request_error";
    case 401:
      return "authentication_error";
    case 403:
      return "permission_error";
    case 404:
      return "not_found_error";
    case 408:
      return "timeout_error";
    case 413:
      return "request_too_large";
    case 429:
      return "rate_limit_error";
    case 503:
    case 529:
      return "overloaded_error";
    default:
      return http_status < 500 ? "invalid_request_error" : "api_error";
  }
}

}  // namespace

Dialect DialectForPath(const std::string& path) {
  if (path == "/api" || path.rfind("/api/", 0) == 0) return Dialect::kOllama;
  if (path == "/v1/messages" || path.rfind("/v1/messages/", 0) == 0) return Dialect::kAnthropic;
  return Dialect::kOpenAi;
}

nlohmann::json ApiError::ToJson(Dialect dialect) const {
  if (dialect == Dialect::kOllama) return {{"error", message}};
  if (dialect == Dialect::kAnthropic) {
    nlohmann::json error = {{"type", AnthropicErrorType(http_status)}, {"message", message}};
    if (extra.is_object()) {
      for (auto it = extra.begin(); it != extra.end(); ++it)
        error[it.key()] = it.value();
    }
    return {{"type", "error"}, {"error", error}};
  }
  nlohmann::json error = {{"message", message}, {"type", type}, {"param", nullptr}};
  error["code"] = code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code);
  if (extra.is_object()) {
    for (auto it = extra.begin(); it != extra.end(); ++it)
      error[it.key()] = it.value();
  }
  return {{"error", error}};
}

ApiError ErrorFromStatus(const Status& status) {
  ApiError e;
  e.message = status.message();
  switch (status.code()) {
    case Code::kInvalidArgument:
      e.http_status = 400;
      e.type = "invalid_request_error";
      e.code = "invalid_request";
      break;
    case Code::kContextExceeded:
      e.http_status = 400;
      e.type = "invalid_request_error";
      e.code = "context_length_exceeded";
      break;
    case Code::kPermissionDenied:
      e.http_status = 401;
      e.type = "authentication_error";
      e.code = "invalid_api_key";
      break;
    case Code::kNotFound:
      e.http_status = 404;
      e.type = "invalid_request_error";
      e.code = "model_not_found";
      break;
    case Code::kCorrupt:
      // The named model's file is malformed (gguf::ValidateModel, a truncated download): the
      // request cannot be served as asked, and retrying will not help.
      e.http_status = 422;
      e.type = "invalid_request_error";
      e.code = "invalid_model";
      break;
    case Code::kUnavailable:
      e.http_status = 503;
      e.type = "server_error";
      e.code = "overloaded";
      e.retry_after_seconds = 1;
      break;
    case Code::kDoesNotFit:
      e.http_status = 507;
      e.type = "server_error";
      e.code = "does_not_fit";
      break;
    case Code::kCancelled:
      e.http_status = 499;
      e.type = "server_error";
      e.code = "cancelled";
      break;
    case Code::kRuntime:
      e.http_status = 500;
      e.type = "server_error";
      e.code = "backend_error";
      break;
    case Code::kUnimplemented:
      e.http_status = 501;
      e.type = "invalid_request_error";
      e.code = "unsupported";
      break;
    default:
      e.http_status = 500;
      e.type = "server_error";
      e.code = "internal_error";
      break;
  }
  return e;
}

ApiError ErrorForHttpStatus(int http_status) {
  ApiError e;
  e.http_status = http_status;
  switch (http_status) {
    case 404:
      e.type = "invalid_request_error";
      e.code = "not_found";
      e.message = "no such endpoint; see GET /v1/models, POST /v1/chat/completions";
      break;
    case 405:
      e.type = "invalid_request_error";
      e.code = "method_not_allowed";
      e.message = "this endpoint does not accept that HTTP method";
      break;
    case 413:
      e.type = "invalid_request_error";
      e.code = "request_too_large";
      e.message = "request body is larger than the server's limit";
      break;
    case 400:
      e.type = "invalid_request_error";
      e.code = "invalid_request";
      e.message = "malformed HTTP request";
      break;
    case 408:
      e.type = "invalid_request_error";
      e.code = "request_timeout";
      e.message = "the request did not arrive in time";
      break;
    case 415:
      e.type = "invalid_request_error";
      e.code = "unsupported_media_type";
      e.message = "the request body's encoding is not supported";
      break;
    case 431:
      e.type = "invalid_request_error";
      e.code = "request_header_fields_too_large";
      e.message = "the request's headers are too large";
      break;
    case 503:
      e.type = "server_error";
      e.code = "overloaded";
      e.message = "the server is busy; retry shortly";
      break;
    default:
      e.type = http_status >= 500 ? "server_error" : "invalid_request_error";
      e.code = "http_" + std::to_string(http_status);
      e.message = "HTTP error " + std::to_string(http_status);
      break;
  }
  return e;
}

}  // namespace snug::server
