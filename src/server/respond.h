// Answers shared by every route set: JSON bodies, error objects from a Status (in the shape of the
// API being spoken, OpenAI's unless told), SSE events.
#pragma once

#include <nlohmann/json.hpp>

#include <functional>
#include <string>

#include "core/status.h"
#include "server/api_error.h"
#include "server/http_types.h"
#include "server/wire.h"

namespace snug::server {

// Model output can hold invalid UTF-8 (a random model, a byte-level tokenizer): dump() would
// throw on it, so invalid bytes become U+FFFD instead.
std::string Dump(const nlohmann::json& value);

void SendJson(HttpResponse& res, int status, const nlohmann::json& body);
void SendError(HttpResponse& res, const ApiError& error, Dialect dialect = Dialect::kOpenAi);
void SendStatus(HttpResponse& res, const Status& status, Dialect dialect = Dialect::kOpenAi);

// "data: {...}\n\n"
std::string SseEvent(const nlohmann::json& data);

// Parses the request's JSON body and runs `handle` with it, or answers the parse error.
void WithJsonBody(const HttpRequest& req, HttpResponse& res,
                  const std::function<void(const RequestJson&)>& handle,
                  Dialect dialect = Dialect::kOpenAi);

}  // namespace snug::server
