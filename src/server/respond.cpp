#include "server/respond.h"

namespace snug::server {

using nlohmann::json;

std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

void SendJson(HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.SetContent(Dump(body), "application/json");
}

void SendError(HttpResponse& res, const ApiError& error, Dialect dialect) {
  if (error.retry_after_seconds > 0) {
    res.SetHeader("Retry-After", std::to_string(error.retry_after_seconds));
  }
  SendJson(res, error.http_status, error.ToJson(dialect));
}

void SendStatus(HttpResponse& res, const Status& status, Dialect dialect) {
  SendError(res, ErrorFromStatus(status), dialect);
}

std::string SseEvent(const json& data) {
  return "data: " + Dump(data) + "\n\n";
}

void WithJsonBody(const HttpRequest& req, HttpResponse& res,
                  const std::function<void(const RequestJson&)>& handle, Dialect dialect) {
  auto body = ParseJsonBody(req.body);
  if (!body.ok()) return SendStatus(res, body.status(), dialect);
  handle(*body);
}

}  // namespace snug::server
