// Answers in OpenAI's shape, shared by the routes that speak it (OpenAI and snug's management
// routes): JSON bodies, error objects from a Status, SSE events.
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
void SendError(HttpResponse& res, const ApiError& error);
void SendStatus(HttpResponse& res, const Status& status);

// "data: {...}\n\n"
std::string SseEvent(const nlohmann::json& data);

// Parses the request's JSON body and runs `handle` with it, or answers the parse error.
void WithJsonBody(const HttpRequest& req, HttpResponse& res,
                  const std::function<void(const RequestJson&)>& handle);

}  // namespace snug::server
