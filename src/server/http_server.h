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

// The local store as Ollama's model routes need it (/api/tags, /api/show, /api/pull,
// /api/delete). Wired by the cli, which owns the fit check a pull makes before downloading; an
// empty function means the server has no store.
struct StoredModel {
  std::string name;
  std::string sha256;
  uint64_t size = 0;
  std::string architecture;
  std::string quant;  // "Q4_K_M"
  int64_t added = 0;  // unix seconds
};
struct PullProgress {
  std::string status;  // "pulling manifest", "pulling <sha>", "verifying sha256 digest", ...
  std::string digest;  // "sha256:..." while a file downloads
  uint64_t total = 0;
  uint64_t completed = 0;
};
// A pull whose fit and disk space were checked: `run` downloads it, reporting progress.
struct PreparedPull {
  std::string name;  // the store name it will have
  std::function<Status(const std::function<void(const PullProgress&)>& progress)> run;
};
struct StoreHooks {
  std::function<Result<std::vector<StoredModel>>()> list;
  // Resolves the reference and checks from the remote header that the model fits the server's
  // budget (DoesNotFit with the numbers) and the disk, before any download.
  std::function<Result<PreparedPull>(const std::string& ref)> prepare_pull;
  std::function<Status(const std::string& name)> remove;  // NotFound when not stored
};

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
  StoreHooks store;
  // The web page at / (webui_routes.cpp); --no-webui turns it off.
  bool webui = true;
  // POST /v1/fit: plans any MODEL reference (.gguf path, https:// URL, preset:NAME, store name or
  // hub ref owner/repo[:quant]) from its header, with the server's fit flags and live budget, and
  // returns the object `snug plan --json` prints. Wired by the cli; empty: only names the pool
  // knows are planned.
  std::function<Result<nlohmann::json>(const std::string& model, const PlanOverrides& overrides)>
      plan_reference;
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
