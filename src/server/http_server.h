// The HTTP front of `snug serve`: browser safety, auth and graceful shutdown around the route
// sets of each API dialect (routes.h), on snug's own transport (http_transport.h). Handlers never
// throw: bodies are parsed with non-throwing JSON calls and every failure becomes an error object
// in the shape of the API being spoken.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>

#include "core/status.h"
#include "server/http_transport.h"
#include "server/http_types.h"
#include "server/metrics.h"
#include "server/model_pool.h"
#include "server/router.h"

namespace snug::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 11435;                // 0 = any free port (Bind returns it)
  std::string api_key;             // non-empty: every route but /health needs "Bearer <key>"
  bool insecure = false;           // allow a non-loopback bind without an API key
  std::string cors_origin;         // empty: no CORS headers
  std::string system_fingerprint;  // chat answers' system_fingerprint: the build serving them
  size_t body_limit = 8u << 20;    // larger bodies get 413
  int http_threads = 96;           // connections served at once (streams hold one each)
  // GET /v1/hardware: the machine and budget as JSON (hw::BudgetToJson via the cli).
  std::function<nlohmann::json()> hardware;
};

// True for 127.0.0.0/8, ::1 and "localhost".
bool IsLoopbackHost(const std::string& host);

// Refuses a non-loopback bind without an API key unless insecure (InvalidArgument).
Status CheckBindPolicy(const ServerOptions& options);

class HttpServer {
 public:
  HttpServer(ServerOptions options, ModelPool* pool);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket; returns the port (the chosen one when options.port == 0).
  Result<int> Bind();
  // Serves until Stop. Returns when the listening loop has ended.
  void Serve();
  // Stops accepting, ends in-flight streams with a final error event (`reason`), unloads the
  // models and lets Serve return. Safe to call from another thread; idempotent.
  void Stop(const Status& reason);

 private:
  void Handle(HttpRequest& req, HttpResponse& res);
  bool Admit(const HttpRequest& req, HttpResponse& res);
  ModelPool* pool_;
  ServerOptions options_;
  Metrics metrics_;
  std::atomic<bool> stopping_{false};
  Router router_;
  std::unique_ptr<HttpTransport> transport_;
};

}  // namespace snug::server
