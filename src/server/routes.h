// The route sets of `snug serve`, one file per API dialect, all registered on one Router.
#pragma once

#include <atomic>

#include "server/http_server.h"
#include "server/metrics.h"
#include "server/model_pool.h"
#include "server/router.h"

namespace snug::server {

// What every route set works with; owned by HttpServer, which outlives the routes.
struct RouteContext {
  ModelPool* pool = nullptr;
  Metrics* metrics = nullptr;
  const ServerOptions* options = nullptr;
  const std::atomic<bool>* stopping = nullptr;
};

// A request without 'model' is for the server's only model (ModelPool::DefaultModel), as
// llama-server answers it; `name` is filled in.
Status ResolveModelName(const RouteContext& ctx, std::string* name);

// /v1/chat/completions, /v1/completions, /v1/embeddings, /v1/models (openai_routes.cpp).
void AddOpenAiRoutes(Router& router, const RouteContext& context);
// POST /v1/responses (responses_routes.cpp).
void AddResponsesRoutes(Router& router, const RouteContext& context);
// POST /v1/messages, /v1/messages/count_tokens (anthropic_routes.cpp).
void AddAnthropicRoutes(Router& router, const RouteContext& context);
// Ollama's API: /api/chat, /api/generate, /api/embed, /api/tags, ... (ollama_routes.cpp).
void AddOllamaRoutes(Router& router, const RouteContext& context);
// /health, /metrics, /v1/ps, /v1/hardware, /v1/plan, /v1/models/load|unload, /apply-template
// (management_routes.cpp).
void AddManagementRoutes(Router& router, const RouteContext& context);
// The web page: GET / (the page for browsers, Ollama's answer for other clients), /webui/*,
// GET /v1/events, POST /v1/fit (webui_routes.cpp).
void AddWebUiRoutes(Router& router, const RouteContext& context);
// A request for the page's static files, which hold no data: served without the API key.
bool IsWebUiPageRequest(const HttpRequest& req, const ServerOptions& options);

}  // namespace snug::server
