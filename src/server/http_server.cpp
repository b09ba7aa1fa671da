#include "server/http_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>

#include "server/api_error.h"
#include "server/respond.h"
#include "server/routes.h"

namespace snug::server {
namespace {

// Constant-time comparison so the key cannot be guessed byte by byte from response timing.
bool SameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= a[i] ^ b[i % std::max<size_t>(1, b.size())];
  return diff == 0;
}

// The host name of a Host header or an origin's authority: "[::1]:8080" -> "::1",
// "localhost:11435" -> "localhost", "127.0.0.1" -> "127.0.0.1".
std::string HostName(const std::string& authority) {
  if (!authority.empty() && authority.front() == '[') {
    const size_t close = authority.find(']');
    return close == std::string::npos ? authority : authority.substr(1, close - 1);
  }
  const size_t colon = authority.find(':');
  return colon == std::string::npos ? authority : authority.substr(0, colon);
}

// A 403, for requests a browser was made to send.
void SendForbidden(HttpResponse& res, Dialect dialect, const std::string& message) {
  ApiError error;
  error.http_status = 403;
  error.type = "invalid_request_error";
  error.code = "forbidden";
  error.message = message;
  SendError(res, error, dialect);
}

}  // namespace

bool IsLoopbackHost(const std::string& host) {
  if (host == "localhost" || host == "::1" || host == "[::1]") return true;
  in_addr addr{};
  if (inet_pton(AF_INET, host.c_str(), &addr) == 1) {
    return (ntohl(addr.s_addr) >> 24) == 127;
  }
  return false;
}

Status CheckBindPolicy(const ServerOptions& options) {
  if (IsLoopbackHost(options.host) || !options.api_key.empty() || options.insecure) {
    return Status::Ok();
  }
  return Status::InvalidArgument(fmt::format(
      "refusing to listen on {} without an API key: anyone who can reach it could use your "
      "models; pass --api-key KEY, or --insecure if the network is trusted",
      options.host));
}

HttpServer::HttpServer(ServerOptions options, ModelPool* pool)
    : pool_(pool), options_(std::move(options)) {
  TransportLimits limits;
  limits.body_bytes = options_.body_limit;
  // A raised --body-limit raises the in-flight cap with it, so one such body is never refused.
  limits.inflight_body_bytes = std::max(limits.inflight_body_bytes, 2 * limits.body_bytes);
  limits.handler_threads = std::max(8, options_.http_threads);
  transport_ = std::make_unique<HttpTransport>(
      limits, [this](HttpRequest& req, HttpResponse& res) { Handle(req, res); },
      [](int status, const std::string& message, const HttpRequest& req, HttpResponse& res) {
        ApiError error = ErrorForHttpStatus(status);
        error.message = message;
        SendError(res, error, DialectForPath(req.path));
      });
  const RouteContext context{pool_, &metrics_, &options_, &stopping_};
  // First: the page's GET / answers browsers and Ollama's clients alike (webui_routes.cpp).
  AddWebUiRoutes(router_, context);
  AddOpenAiRoutes(router_, context);
  AddResponsesRoutes(router_, context);
  AddAnthropicRoutes(router_, context);
  AddOllamaRoutes(router_, context);
  AddManagementRoutes(router_, context);
}

HttpServer::~HttpServer() = default;

Result<int> HttpServer::Bind() {
  SNUG_RETURN_IF_ERROR(CheckBindPolicy(options_));
  return transport_->Bind(options_.host, options_.port);
}

void HttpServer::Serve() {
  transport_->Serve();
}

void HttpServer::Stop(const Status& reason) {
  if (stopping_.exchange(true)) return;
  // End streams first (they write their final error event), then stop the transport, which
  // closes idle connections and lets Serve return once the handlers are done.
  pool_->Shutdown(reason);
  transport_->Stop();
}

void HttpServer::Handle(HttpRequest& req, HttpResponse& res) {
  try {
    if (Admit(req, res)) {
      std::string allow;
      switch (router_.Dispatch(req, res, &allow)) {
        case Router::Outcome::kHandled:
          break;
        case Router::Outcome::kNoSuchPath:
          SendError(res, ErrorForHttpStatus(404), DialectForPath(req.path));
          break;
        case Router::Outcome::kWrongMethod:
          res.SetHeader("Allow", allow);
          SendError(res, ErrorForHttpStatus(405), DialectForPath(req.path));
          break;
      }
    }
  } catch (const std::exception& e) {
    // Routes do not throw; a third-party surprise still becomes an answer, not a crash.
    res = HttpResponse{};
    SendStatus(res, Status::Internal(std::string("internal error: ") + e.what()),
               DialectForPath(req.path));
  }
  metrics_.CountResponse(req.path, res.status);
  spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
}

// CORS, browser safety and the API key, before any route runs. False: `res` holds the answer.
bool HttpServer::Admit(const HttpRequest& req, HttpResponse& res) {
  const Dialect dialect = DialectForPath(req.path);
  if (!options_.cors_origin.empty()) {
    res.SetHeader("Access-Control-Allow-Origin", options_.cors_origin);
    res.SetHeader("Vary", "Origin");
    if (req.method == "OPTIONS") {
      res.SetHeader("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
      res.SetHeader("Access-Control-Allow-Headers",
                    "Authorization, Content-Type, X-Api-Key, Anthropic-Version");
      res.SetHeader("Access-Control-Max-Age", "600");
      res.status = 204;
      return false;
    }
  }
  // Browser safety, with or without --api-key (as Ollama's allowed hosts and origins):
  // - a loopback-bound server answers only to loopback Host names, so a page whose own name
  //   was rebound to 127.0.0.1 (DNS rebinding) cannot read it;
  // - a request a browser sent from another site (it carries that site's Origin, even as a
  //   "simple" text/plain POST that needs no preflight) is refused unless --cors allows it.
  //   Clients that are not browsers send no Origin.
  if (IsLoopbackHost(options_.host) && req.HasHeader("Host") &&
      !IsLoopbackHost(HostName(req.Header("Host")))) {
    SendForbidden(res, dialect,
                  fmt::format("this server listens on {} and answers only requests "
                              "addressed to it by a loopback name (Host was '{}')",
                              options_.host, req.Header("Host")));
    return false;
  }
  if (req.HasHeader("Origin")) {
    const std::string origin = req.Header("Origin");
    const size_t scheme_end = origin.find("://");
    const std::string scheme = scheme_end == std::string::npos ? "" : origin.substr(0, scheme_end);
    const bool local_page = (scheme == "http" || scheme == "https") &&
                            IsLoopbackHost(HostName(origin.substr(scheme_end + 3)));
    const bool allowed = options_.cors_origin == "*" || origin == options_.cors_origin;
    if (!local_page && !allowed) {
      SendForbidden(res, dialect,
                    fmt::format("requests from web pages of {} are refused; start snug serve "
                                "with --cors {} to allow that site",
                                origin, origin));
      return false;
    }
  }
  if (options_.api_key.empty() || req.path == "/health" || IsWebUiPageRequest(req, options_)) {
    return true;
  }
  // The key as OpenAI's and Ollama's clients send it (Authorization: Bearer) or as Anthropic's
  // do (x-api-key), on every route.
  const std::string auth = req.Header("Authorization");
  const std::string prefix = "Bearer ";
  if (auth.rfind(prefix, 0) == 0 && SameSecret(auth.substr(prefix.size()), options_.api_key)) {
    return true;
  }
  const std::string api_key = req.Header("x-api-key");
  if (!api_key.empty() && SameSecret(api_key, options_.api_key)) return true;
  SendStatus(res,
             Status::PermissionDenied(auth.empty() && api_key.empty()
                                          ? "this server needs an API key: send 'Authorization: "
                                            "Bearer <key>' or 'x-api-key: <key>'"
                                          : "the API key is not valid for this server"),
             dialect);
  res.SetHeader("WWW-Authenticate", "Bearer");
  return false;
}

}  // namespace snug::server
