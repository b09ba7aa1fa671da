#include "server/http_server.h"

#include <arpa/inet.h>
#include <fmt/format.h>
#include <httplib.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <exception>
#include <mutex>

#include "core/size.h"
#include "engine/chat.h"
#include "engine/engine.h"
#include "server/api_error.h"
#include "server/peer_probe.h"
#include "server/wire.h"

namespace snug::server {
namespace {

using nlohmann::json;

// Model output can hold invalid UTF-8 (a random model, a byte-level tokenizer): dump() would
// throw on it, so invalid bytes become U+FFFD instead.
std::string Dump(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

void SendJson(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(Dump(body), "application/json");
}

void SendError(httplib::Response& res, const ApiError& error) {
  if (error.retry_after_seconds > 0) {
    res.set_header("Retry-After", std::to_string(error.retry_after_seconds));
  }
  SendJson(res, error.http_status, error.ToJson());
}

void SendStatus(httplib::Response& res, const Status& status) {
  SendError(res, ErrorFromStatus(status));
}

std::string SseEvent(const json& data) {
  return "data: " + Dump(data) + "\n\n";
}

// Constant-time comparison so the key cannot be guessed byte by byte from response timing.
bool SameSecret(const std::string& a, const std::string& b) {
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < a.size(); ++i)
    diff |= a[i] ^ b[i % std::max<size_t>(1, b.size())];
  return diff == 0;
}

json PlanJson(const ModelPlan& plan) {
  json j = {{"n_ctx", plan.n_ctx},
            {"kv_type", plan.kv_type},
            {"n_gpu_layers", plan.n_gpu_layers},
            {"n_parallel", plan.n_parallel},
            {"flash_attn", plan.flash_attn},
            {"batch_invariant", plan.batch_invariant},
            {"peak_host_bytes", plan.peak_host_bytes},
            {"reason", plan.reason}};
  if (!plan.detail.is_null()) j["detail"] = plan.detail;
  return j;
}

enum class Api { kChat, kCompletion };

// A generation in flight, shared by the handler and (for streams) the content provider.
struct Generation {
  Api api = Api::kChat;
  ModelPool::Lease lease;
  std::shared_ptr<Job> job;
  std::string id;
  std::string model;
  int64_t created = 0;
  bool include_usage = false;
  bool logprobs = false;
  size_t text_offset = 0;  // completions' logprobs.text_offset: bytes of the tokens so far
  // Chat: reads content, reasoning and tool calls back out of the model's text.
  std::unique_ptr<engine::ChatReader> reader;
};

json BytesJson(const std::string& piece) {
  json bytes = json::array();
  for (unsigned char c : piece)
    bytes.push_back(static_cast<int>(c));
  return bytes;
}

// OpenAI's logprobs object for these tokens: chat's {"content": [...]}, or the completions API's
// {"tokens", "token_logprobs", "top_logprobs", "text_offset"} (offsets continue g->text_offset).
json LogprobsJson(Generation* g, const std::vector<engine::TokenLogprobs>& tokens) {
  const engine::Model& model = g->lease.scheduler().model();
  if (g->api == Api::kChat) {
    json content = json::array();
    for (const auto& t : tokens) {
      const std::string piece = model.TokenPiece(t.token);
      json top = json::array();
      for (const auto& [id, lp] : t.top) {
        const std::string alt = model.TokenPiece(id);
        top.push_back({{"token", alt}, {"logprob", lp}, {"bytes", BytesJson(alt)}});
      }
      content.push_back({{"token", piece},
                         {"logprob", t.logprob},
                         {"bytes", BytesJson(piece)},
                         {"top_logprobs", std::move(top)}});
    }
    return {{"content", std::move(content)}, {"refusal", nullptr}};
  }
  json out = {{"tokens", json::array()},
              {"token_logprobs", json::array()},
              {"top_logprobs", json::array()},
              {"text_offset", json::array()}};
  for (const auto& t : tokens) {
    const std::string piece = model.TokenPiece(t.token);
    json top = json::object();
    for (const auto& [id, lp] : t.top)
      top[model.TokenPiece(id)] = lp;
    out["tokens"].push_back(piece);
    out["token_logprobs"].push_back(t.logprob);
    out["top_logprobs"].push_back(std::move(top));
    out["text_offset"].push_back(g->text_offset);
    g->text_offset += piece.size();
  }
  return out;
}

json UsageJson(int prompt_tokens, int completion_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens}};
}

json ChunkJson(const Generation& g, const std::string* text, const char* finish, bool role) {
  json choice = {{"index", 0}, {"logprobs", nullptr}};
  choice["finish_reason"] = finish ? json(finish) : json(nullptr);
  if (g.api == Api::kChat) {
    json delta = json::object();
    if (role) {
      delta["role"] = "assistant";
      delta["content"] = "";
    }
    if (text) delta["content"] = *text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text ? *text : "";
  }
  return {{"id", g.id},
          {"object", g.api == Api::kChat ? "chat.completion.chunk" : "text_completion"},
          {"created", g.created},
          {"model", g.model},
          {"choices", json::array({choice})}};
}

const char* FinishName(engine::FinishReason finish, bool called_tools = false) {
  if (finish == engine::FinishReason::kLength) return "length";
  return called_tools ? "tool_calls" : "stop";
}

json ToolCallJson(const engine::ToolCall& call) {
  return {{"id", call.id},
          {"type", "function"},
          {"function", {{"name", call.name}, {"arguments", call.arguments}}}};
}

// The chat delta object for one step of the reader: content, reasoning or one tool call's part.
json DeltaJson(const engine::ChatDelta& d) {
  json delta = json::object();
  if (d.tool_index >= 0) {
    json call = {{"index", d.tool_index}};
    json function = json::object();
    if (!d.tool_id.empty()) {
      call["id"] = d.tool_id;
      call["type"] = "function";
    }
    if (!d.tool_name.empty()) function["name"] = d.tool_name;
    function["arguments"] = d.tool_arguments;
    call["function"] = function;
    delta["tool_calls"] = json::array({call});
    return delta;
  }
  if (!d.reasoning_content.empty()) delta["reasoning_content"] = d.reasoning_content;
  if (!d.content.empty() || d.reasoning_content.empty()) delta["content"] = d.content;
  return delta;
}

json MessageJson(const engine::ParsedChat& parsed) {
  json message = {{"role", "assistant"}};
  message["content"] =
      parsed.content.empty() && !parsed.tool_calls.empty() ? json(nullptr) : json(parsed.content);
  if (!parsed.reasoning_content.empty()) message["reasoning_content"] = parsed.reasoning_content;
  if (!parsed.tool_calls.empty()) {
    json calls = json::array();
    for (const auto& call : parsed.tool_calls)
      calls.push_back(ToolCallJson(call));
    message["tool_calls"] = std::move(calls);
  }
  return message;
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

// A 403 in OpenAI's error shape, for requests a browser was made to send.
void SendForbidden(httplib::Response& res, const std::string& message) {
  ApiError error;
  error.http_status = 403;
  error.type = "invalid_request_error";
  error.code = "forbidden";
  error.message = message;
  SendError(res, error);
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
    : pool_(pool), options_(std::move(options)), http_(std::make_unique<httplib::Server>()) {
  Routes();
}

HttpServer::~HttpServer() = default;

Result<int> HttpServer::Bind() {
  SNUG_RETURN_IF_ERROR(CheckBindPolicy(options_));
  int port = options_.port;
  if (port == 0) {
    port = http_->bind_to_any_port(options_.host);
    if (port <= 0) {
      return Status::IoError(fmt::format("cannot listen on {} (any port)", options_.host));
    }
  } else if (!http_->bind_to_port(options_.host, port)) {
    return Status::IoError(
        fmt::format("cannot listen on {}:{}: the port is in use or the address is not local",
                    options_.host, port));
  }
  return port;
}

void HttpServer::Serve() {
  http_->listen_after_bind();
}

void HttpServer::Stop(const Status& reason) {
  if (stopping_.exchange(true)) return;
  // End streams first (they write their final error event), then close the listener and join
  // the connection threads, then the models are already unloaded.
  pool_->Shutdown(reason);
  http_->stop();
}

void HttpServer::Routes() {
  auto& http = *http_;
  const int threads = std::max(8, options_.http_threads);
  http.new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http.set_payload_max_length(options_.body_limit);
  // httplib's default sets SO_REUSEPORT, which lets a second server listen on the same port and
  // take half of its connections (a way around --api-key). SO_REUSEADDR alone still allows a
  // quick restart over TIME_WAIT but refuses a port another process listens on.
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  http.set_keep_alive_timeout(5);
  http.set_tcp_nodelay(true);

  // Auth and CORS before any route runs.
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (!options_.cors_origin.empty()) {
      res.set_header("Access-Control-Allow-Origin", options_.cors_origin);
      res.set_header("Vary", "Origin");
      if (req.method == "OPTIONS") {
        res.set_header("Access-Control-Allow-Methods", "GET, POST, OPTIONS");
        res.set_header("Access-Control-Allow-Headers", "Authorization, Content-Type");
        res.set_header("Access-Control-Max-Age", "600");
        res.status = 204;
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    // Browser safety, with or without --api-key (as Ollama's allowed hosts and origins):
    // - a loopback-bound server answers only to loopback Host names, so a page whose own name
    //   was rebound to 127.0.0.1 (DNS rebinding) cannot read it;
    // - a request a browser sent from another site (it carries that site's Origin, even as a
    //   "simple" text/plain POST that needs no preflight) is refused unless --cors allows it.
    //   Clients that are not browsers send no Origin.
    if (IsLoopbackHost(options_.host) && req.has_header("Host") &&
        !IsLoopbackHost(HostName(req.get_header_value("Host")))) {
      SendForbidden(res, fmt::format("this server listens on {} and answers only requests "
                                     "addressed to it by a loopback name (Host was '{}')",
                                     options_.host, req.get_header_value("Host")));
      return httplib::Server::HandlerResponse::Handled;
    }
    if (req.has_header("Origin")) {
      const std::string origin = req.get_header_value("Origin");
      const size_t scheme_end = origin.find("://");
      const std::string scheme =
          scheme_end == std::string::npos ? "" : origin.substr(0, scheme_end);
      const bool local_page = (scheme == "http" || scheme == "https") &&
                              IsLoopbackHost(HostName(origin.substr(scheme_end + 3)));
      const bool allowed = options_.cors_origin == "*" || origin == options_.cors_origin;
      if (!local_page && !allowed) {
        SendForbidden(res,
                      fmt::format("requests from web pages of {} are refused; start snug serve "
                                  "with --cors {} to allow that site",
                                  origin, origin));
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    if (options_.api_key.empty() || req.path == "/health") {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const std::string auth = req.get_header_value("Authorization");
    const std::string prefix = "Bearer ";
    if (auth.rfind(prefix, 0) == 0 && SameSecret(auth.substr(prefix.size()), options_.api_key)) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    SendStatus(res, Status::PermissionDenied(
                        auth.empty() ? "this server needs an API key: send 'Authorization: Bearer "
                                       "<key>'"
                                     : "the API key is not valid for this server"));
    res.set_header("WWW-Authenticate", "Bearer");
    return httplib::Server::HandlerResponse::Handled;
  });

  // Responses httplib produces itself (404 route, 413 body) get an error object too.
  http.set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        if (!res.body.empty() || res.status < 400)
          return httplib::Server::HandlerResponse::Unhandled;
        SendError(res, ErrorForHttpStatus(res.status));
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown error";
        try {
          if (ep) std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        SendStatus(res, Status::Internal("internal error: " + what));
      });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    metrics_.CountResponse(res.status);
    spdlog::debug("{} {} -> {}", req.method, req.path, res.status);
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (stopping_) {
      SendStatus(res, Status::Unavailable("the server is shutting down"));
      return;
    }
    SendJson(res, 200, {{"status", "ok"}, {"models_loaded", pool_->Running().size()}});
  });

  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_.Render(*pool_), "text/plain; version=0.0.4");
  });

  auto model_object = [](const std::string& name, bool loaded) {
    return json{{"id", name},
                {"object", "model"},
                {"created", 0},
                {"owned_by", "snug"},
                {"loaded", loaded}};
  };
  http.Get("/v1/models", [this, model_object](const httplib::Request&, httplib::Response& res) {
    std::set<std::string> loaded;
    for (const auto& m : pool_->Running())
      loaded.insert(m.name);
    json data = json::array();
    for (const auto& name : pool_->KnownNames()) {
      data.push_back(model_object(name, loaded.count(name) > 0));
    }
    SendJson(res, 200, {{"object", "list"}, {"data", data}});
  });
  http.Get(R"(/v1/models/(.+))",
           [this, model_object](const httplib::Request& req, httplib::Response& res) {
             const std::string name = req.matches[1];
             if (Status valid = ValidateModelName(name); !valid.ok()) {
               SendStatus(res, valid);
               return;
             }
             bool loaded = false;
             for (const auto& m : pool_->Running())
               loaded |= m.name == name;
             auto names = pool_->KnownNames();
             if (std::find(names.begin(), names.end(), name) == names.end()) {
               SendStatus(res, Status::NotFound(fmt::format("model '{}' is not known", name)));
               return;
             }
             SendJson(res, 200, model_object(name, loaded));
           });

  auto with_body = [](const httplib::Request& req, httplib::Response& res,
                      const std::function<void(const RequestJson&)>& handle) {
    auto body = ParseJsonBody(req.body);
    if (!body.ok()) {
      SendStatus(res, body.status());
      return;
    }
    handle(*body);
  };

  http.Post(
      "/v1/models/load", [this, with_body](const httplib::Request& req, httplib::Response& res) {
        with_body(req, res, [&](const RequestJson& body) {
          auto name = ParseModelField(body);
          if (!name.ok()) return SendStatus(res, name.status());
          if (Status loaded = pool_->Load(*name); !loaded.ok()) return SendStatus(res, loaded);
          for (const auto& m : pool_->Running()) {
            if (m.name == *name) {
              return SendJson(res, 200,
                              {{"model", m.name}, {"loaded", true}, {"plan", PlanJson(m.plan)}});
            }
          }
          SendJson(res, 200, {{"model", *name}, {"loaded", true}});
        });
      });
  http.Post("/v1/models/unload",
            [this, with_body](const httplib::Request& req, httplib::Response& res) {
              with_body(req, res, [&](const RequestJson& body) {
                auto name = ParseModelField(body);
                if (!name.ok()) return SendStatus(res, name.status());
                if (Status unloaded = pool_->Unload(*name); !unloaded.ok())
                  return SendStatus(res, unloaded);
                SendJson(res, 200, {{"model", *name}, {"loaded", false}});
              });
            });

  http.Get("/v1/ps", [this](const httplib::Request&, httplib::Response& res) {
    json models = json::array();
    for (const auto& m : pool_->Running()) {
      models.push_back({{"name", m.name},
                        {"path", m.path},
                        {"plan", PlanJson(m.plan)},
                        {"allocated_bytes", m.allocated_bytes},
                        {"active", m.stats.active},
                        {"queued", m.stats.queued},
                        {"slots", m.stats.slots},
                        {"kv_cells_used", m.stats.kv_cells_used},
                        {"kv_cells_total", m.stats.kv_cells_total},
                        {"idle_seconds", m.idle_seconds},
                        {"expires_in_seconds", m.expires_in_seconds}});
    }
    SendJson(res, 200,
             {{"models", models},
              {"budget_bytes", pool_->budget_bytes()},
              {"planned_bytes", pool_->PlannedBytes()},
              {"resident_bytes", ProcessResidentBytes()}});
  });

  http.Get("/v1/hardware", [this](const httplib::Request&, httplib::Response& res) {
    json hw = options_.hardware ? options_.hardware() : json::object();
    hw["serve_budget_bytes"] = pool_->budget_bytes();
    hw["serve_planned_bytes"] = pool_->PlannedBytes();
    SendJson(res, 200, hw);
  });

  http.Post("/v1/plan", [this, with_body](const httplib::Request& req, httplib::Response& res) {
    with_body(req, res, [&](const RequestJson& body) {
      auto request = ParsePlanRequest(body);
      if (!request.ok()) return SendStatus(res, request.status());
      auto plan = pool_->Plan(request->model, PlanOverrides{request->ctx, request->kv_type});
      if (!plan.ok()) return SendStatus(res, plan.status());
      json out = plan->detail.is_object() ? plan->detail : json::object();
      out["model_name"] = request->model;
      out["summary"] = PlanJson(*plan);
      SendJson(res, 200, out);
    });
  });

  http.Post("/v1/embeddings", [this, with_body](const httplib::Request& req,
                                                httplib::Response& res) {
    with_body(req, res, [&](const RequestJson& body) {
      auto request = ParseEmbeddingRequest(body);
      if (!request.ok()) return SendStatus(res, request.status());
      if (stopping_) {
        return SendStatus(res, Status::Unavailable("the server is shutting down"));
      }
      auto lease = pool_->Acquire(request->model);
      if (!lease.ok()) return SendStatus(res, lease.status());
      // The lease keeps the model loaded; the engine embeds on a short-lived context of
      // its own, which llama.cpp allows beside the scheduler thread's context.
      const engine::Model& model = lease->scheduler().model();
      std::vector<std::vector<engine::Token>> inputs;
      int prompt_tokens = 0;
      for (const auto& input : request->inputs) {
        Result<std::vector<engine::Token>> tokens = std::vector<engine::Token>{};
        if (input.is_tokens) {
          for (int64_t id : input.tokens) {
            if (id >= model.n_vocab()) {
              return SendStatus(res, Status::InvalidArgument(fmt::format(
                                         "token id {} is outside the vocabulary of model '{}' "
                                         "({} tokens)",
                                         id, request->model, model.n_vocab())));
            }
            tokens->push_back(static_cast<engine::Token>(id));
          }
        } else {
          tokens = model.Tokenize(input.text, /*add_special=*/true, /*parse_special=*/false);
        }
        if (!tokens.ok()) return SendStatus(res, tokens.status());
        // The planner sized this model's context; a longer input would need an embedding
        // context (and compute buffer) beyond what was planned to fit.
        const uint32_t n_ctx = lease->scheduler().n_ctx_seq();
        if (n_ctx > 0 && tokens->size() > n_ctx) {
          return SendStatus(
              res, Status::InvalidArgument(engine::PromptTooLongMessage(tokens->size(), n_ctx)));
        }
        prompt_tokens += static_cast<int>(tokens->size());
        inputs.push_back(std::move(*tokens));
      }
      Result<std::vector<std::vector<float>>> vectors =
          [&]() -> decltype(engine::Embed(model, inputs)) {
        // One embedding context at a time, measured by llama.cpp's dry run and held against
        // the budget beside the loaded models while it exists.
        static std::mutex embed_mu;
        std::lock_guard<std::mutex> lock(embed_mu);
        size_t longest = 0;
        for (const auto& tokens : inputs)
          longest = std::max(longest, tokens.size());
        SNUG_ASSIGN_OR_RETURN(uint64_t bytes, engine::EmbedContextBytes(model, longest));
        SNUG_ASSIGN_OR_RETURN(
            auto reservation,
            pool_->Reserve(bytes, fmt::format("an embedding context for {} tokens", longest)));
        return engine::Embed(model, inputs);
      }();
      if (!vectors.ok()) return SendStatus(res, vectors.status());
      json data = json::array();
      for (size_t i = 0; i < vectors->size(); ++i) {
        json embedding =
            request->base64 ? json(EmbeddingBase64((*vectors)[i])) : json(std::move((*vectors)[i]));
        data.push_back(
            {{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
      }
      metrics_.CountTokens(prompt_tokens, 0);
      SendJson(res, 200,
               {{"object", "list"},
                {"data", std::move(data)},
                {"model", request->model},
                {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}});
    });
  });

  // Chat and text completions share admission, streaming and accounting.
  auto generate = [this](Api api, const httplib::Request& req, httplib::Response& res) {
    if (stopping_) return SendStatus(res, Status::Unavailable("the server is shutting down"));
    auto body = ParseJsonBody(req.body);
    if (!body.ok()) return SendStatus(res, body.status());
    GenerationParams params;
    engine::ChatInput chat_input;
    CompletionRequest completion;
    if (api == Api::kChat) {
      auto chat = ParseChatRequest(*body);
      if (!chat.ok()) return SendStatus(res, chat.status());
      params = chat->params;
      chat_input = std::move(chat->input);
    } else {
      auto parsed = ParseCompletionRequest(*body);
      if (!parsed.ok()) return SendStatus(res, parsed.status());
      completion = std::move(*parsed);
      params = completion.params;
    }
    auto lease = pool_->Acquire(params.model);
    if (!lease.ok()) return SendStatus(res, lease.status());
    const engine::Model& model = lease->scheduler().model();
    engine::SamplingParams sampling;
    std::shared_ptr<const engine::ChatParser> parser;
    Result<std::vector<engine::Token>> tokens = std::vector<engine::Token>{};
    if (api == Api::kChat) {
      auto rendered = model.chat().Render(chat_input);
      if (!rendered.ok()) return SendStatus(res, rendered.status());
      sampling.grammar = std::move(rendered->grammar);
      sampling.stop = std::move(rendered->stops);
      sampling.kept_special_tokens = std::move(rendered->preserved_tokens);
      parser = std::move(rendered->parser);
      tokens = model.TokenizeChat(rendered->prompt);
    } else {
      auto grammar =
          engine::GrammarForCompletion(model, completion.json_schema, completion.grammar);
      if (!grammar.ok()) return SendStatus(res, grammar.status());
      sampling.grammar = std::move(*grammar);
      tokens = model.Tokenize(completion.prompt, /*add_special=*/true, /*parse_special=*/true);
    }
    if (!tokens.ok()) return SendStatus(res, tokens.status());

    auto& scheduler = lease->scheduler();
    const uint32_t n_ctx = scheduler.n_ctx_seq();
    const int64_t n_prompt = static_cast<int64_t>(tokens->size());
    sampling.temperature = params.temperature;
    sampling.top_p = params.top_p;
    sampling.frequency_penalty = params.frequency_penalty;
    sampling.presence_penalty = params.presence_penalty;
    for (const auto& [id, bias] : params.logit_bias) {
      if (id >= model.n_vocab()) {
        return SendStatus(res, Status::InvalidArgument(fmt::format(
                                   "'logit_bias' names token {}, outside the vocabulary of model "
                                   "'{}' ({} tokens)",
                                   id, params.model, model.n_vocab())));
      }
      sampling.logit_bias.emplace_back(static_cast<engine::Token>(id), bias);
    }
    if (params.seed) sampling.seed = *params.seed;
    sampling.stop.insert(sampling.stop.end(), params.stop.begin(), params.stop.end());
    sampling.logprobs = params.logprobs;
    if (params.max_tokens) {
      sampling.max_tokens = *params.max_tokens;
    } else if (n_prompt < static_cast<int64_t>(n_ctx)) {
      // No limit asked: the slot's share of the context, or all that is left when the prompt
      // already exceeds that share (the request is then admitted alone).
      int64_t share = static_cast<int64_t>(scheduler.n_ctx() / scheduler.n_slots()) - n_prompt;
      sampling.max_tokens = static_cast<int>(share > 0 ? share : n_ctx - n_prompt);
    } else {
      sampling.max_tokens = 1;  // Submit reports the prompt as too long
    }
    const auto client_gone = ClientGoneProbe(req.remote_addr, req.remote_port, req.local_port);
    auto job = scheduler.Submit(std::move(*tokens), sampling);
    if (!job.ok()) return SendStatus(res, job.status());
    if (Status admitted = (*job)->WaitAdmitted(client_gone); !admitted.ok()) {
      return SendStatus(res, admitted);
    }

    auto g = std::make_shared<Generation>();
    g->api = api;
    g->lease = std::move(*lease);
    g->job = *job;
    g->id = NewId(api == Api::kChat ? "chatcmpl" : "cmpl");
    g->model = params.model;
    g->created = UnixNow();
    g->include_usage = params.include_usage;
    g->logprobs = params.logprobs >= 0;
    if (api == Api::kChat) g->reader = std::make_unique<engine::ChatReader>(std::move(parser));

    if (!params.stream) {
      Job::Update all = g->job->TakeAll(client_gone);
      metrics_.CountTokens(all.prompt_tokens, all.completion_tokens);
      if (all.finish == engine::FinishReason::kError ||
          all.finish == engine::FinishReason::kCancelled) {
        return SendStatus(res, all.error.ok() ? Status::Internal("generation failed") : all.error);
      }
      json choice = {
          {"index", 0},
          {"logprobs", g->logprobs ? LogprobsJson(g.get(), all.logprobs) : json(nullptr)},
          {"finish_reason", FinishName(all.finish)}};
      if (api == Api::kChat) {
        g->reader->Append(all.text, /*final=*/true);
        const engine::ParsedChat& parsed = g->reader->message();
        choice["message"] = MessageJson(parsed);
        choice["finish_reason"] = FinishName(all.finish, !parsed.tool_calls.empty());
      } else {
        choice["text"] = all.text;
      }
      return SendJson(res, 200,
                      {{"id", g->id},
                       {"object", api == Api::kChat ? "chat.completion" : "text_completion"},
                       {"created", g->created},
                       {"model", g->model},
                       {"choices", json::array({choice})},
                       {"usage", UsageJson(all.prompt_tokens, all.completion_tokens)}});
    }

    res.set_header("Cache-Control", "no-cache");
    res.set_header("X-Accel-Buffering", "no");
    res.set_chunked_content_provider(
        "text/event-stream",
        [this, g](size_t, httplib::DataSink& sink) {
          auto write = [&sink](const std::string& s) { return sink.write(s.data(), s.size()); };
          if (g->api == Api::kChat && !write(SseEvent(ChunkJson(*g, nullptr, nullptr, true)))) {
            g->job->Cancel();
            return false;
          }
          while (true) {
            Job::Update u;
            if (!g->job->Take(&u, std::chrono::milliseconds(250))) {
              // Nothing new: make sure the client is still there.
              if (!sink.is_writable()) {
                g->job->Cancel();
                return false;
              }
              continue;
            }
            std::vector<json> chunks;
            if (g->reader) {
              const bool failed = u.done && (u.finish == engine::FinishReason::kError ||
                                             u.finish == engine::FinishReason::kCancelled);
              for (const auto& d : g->reader->Append(u.text, u.done && !failed)) {
                json chunk = ChunkJson(*g, nullptr, nullptr, false);
                chunk["choices"][0]["delta"] = DeltaJson(d);
                chunks.push_back(std::move(chunk));
              }
            } else if (!u.text.empty()) {
              chunks.push_back(ChunkJson(*g, &u.text, nullptr, false));
            }
            if (g->logprobs && !u.logprobs.empty()) {
              // Token log-probabilities ride on the first chunk of this update (or one of
              // their own when the parser held the text back, e.g. inside a tool call).
              if (chunks.empty()) {
                chunks.push_back(ChunkJson(*g, nullptr, nullptr, false));
                if (g->api == Api::kChat) chunks.back()["choices"][0]["delta"] = json::object();
              }
              chunks.front()["choices"][0]["logprobs"] = LogprobsJson(g.get(), u.logprobs);
            }
            for (const auto& chunk : chunks) {
              if (!write(SseEvent(chunk))) {
                g->job->Cancel();  // client gone: free the slot
                return false;
              }
            }
            if (!u.done) continue;
            metrics_.CountTokens(u.prompt_tokens, u.completion_tokens);
            if (u.finish == engine::FinishReason::kError ||
                u.finish == engine::FinishReason::kCancelled) {
              Status error = u.error.ok() ? Status::Internal("generation failed") : u.error;
              write(SseEvent(ErrorFromStatus(error).ToJson()));
            } else {
              const bool called = g->reader && !g->reader->message().tool_calls.empty();
              write(SseEvent(ChunkJson(*g, nullptr, FinishName(u.finish, called), false)));
              if (g->include_usage) {
                json usage = ChunkJson(*g, nullptr, nullptr, false);
                usage["choices"] = json::array();
                usage["usage"] = UsageJson(u.prompt_tokens, u.completion_tokens);
                write(SseEvent(usage));
              }
            }
            write("data: [DONE]\n\n");
            sink.done();
            return true;
          }
        },
        [g](bool success) {
          if (!success) g->job->Cancel();
        });
  };
  http.Post("/v1/chat/completions",
            [generate](const httplib::Request& req, httplib::Response& res) {
              generate(Api::kChat, req, res);
            });
  http.Post("/v1/completions", [generate](const httplib::Request& req, httplib::Response& res) {
    generate(Api::kCompletion, req, res);
  });

  // The prompt a chat request renders to, as llama-server's /apply-template answers it: for
  // checking a template (and snug's rendering against llama.cpp's) without generating.
  http.Post("/apply-template",
            [this, with_body](const httplib::Request& req, httplib::Response& res) {
              with_body(req, res, [&](const RequestJson& body) {
                auto chat = ParseChatRequest(body);
                if (!chat.ok()) return SendStatus(res, chat.status());
                auto lease = pool_->Acquire(chat->params.model);
                if (!lease.ok()) return SendStatus(res, lease.status());
                auto rendered = lease->scheduler().model().chat().Render(chat->input);
                if (!rendered.ok()) return SendStatus(res, rendered.status());
                SendJson(res, 200, {{"prompt", rendered->prompt}});
              });
            });
}

}  // namespace snug::server
