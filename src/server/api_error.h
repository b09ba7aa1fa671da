// OpenAI-style error objects: every failure the API reports becomes
// {"error":{"message","type","code"}} with an HTTP status chosen from the snug Status code, so
// clients (the openai SDKs) raise the right exception class.
#pragma once

#include <nlohmann/json.hpp>

#include <string>

#include "core/status.h"

namespace snug::server {

// Which API's error shape a response uses: each client library reads only its own.
enum class Dialect {
  kOpenAi,     // {"error":{"message","type","code"}} (also snug's management routes)
  kOllama,     // {"error":"a sentence"} (ollama-js shows "[object Object]" for anything else)
  kAnthropic,  // {"type":"error","error":{"type":"invalid_request_error","message"}}
};
// /api/* is Ollama's, /v1/messages* Anthropic's, everything else OpenAI's.
Dialect DialectForPath(const std::string& path);

struct ApiError {
  int http_status = 500;
  std::string type;     // "invalid_request_error", "authentication_error", "server_error", ...
  std::string code;     // "model_not_found", "context_length_exceeded", "overloaded", ...
  std::string message;  // the Status sentence
  int retry_after_seconds = 0;  // > 0: sent as Retry-After (503)
  nlohmann::json extra;         // added beside message/type/code (numbers for 507)

  nlohmann::json ToJson(Dialect dialect = Dialect::kOpenAi) const;
};

// Maps a Status to its HTTP form: InvalidArgument 400, PermissionDenied 401, NotFound 404,
// Unavailable 503 (+Retry-After), DoesNotFit 507, Cancelled 499, everything else 500.
ApiError ErrorFromStatus(const Status& status);

// The error body for a bare HTTP status (404 route, 413 body too large) with no Status behind it.
ApiError ErrorForHttpStatus(int http_status);

}  // namespace snug::server
