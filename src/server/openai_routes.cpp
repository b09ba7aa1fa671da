#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <set>

#include "engine/chat.h"
#include "engine/engine.h"
#include "server/embedding.h"
#include "server/generation.h"
#include "server/prompt_budget.h"
#include "server/respond.h"
#include "server/routes.h"
#include "server/wire.h"

namespace snug::server {
namespace {

using nlohmann::json;

enum class Api { kChat, kCompletion };

// A generation in flight and what OpenAI's chunks repeat, shared by the handler and (for streams)
// the content provider.
struct OpenAiAnswer {
  Api api = Api::kChat;
  std::unique_ptr<Generation> run;
  std::string id;
  std::string model;
  int64_t created = 0;
  std::string fingerprint;  // system_fingerprint: this build of snug and llama.cpp
  bool include_usage = false;
  bool logprobs = false;
  size_t text_offset = 0;  // completions' logprobs.text_offset: bytes of the tokens so far
};

json BytesJson(const std::string& piece) {
  json bytes = json::array();
  for (unsigned char c : piece)
    bytes.push_back(static_cast<int>(c));
  return bytes;
}

// OpenAI's logprobs object for these tokens: chat's {"content": [...]}, or the completions API's
// {"tokens", "token_logprobs", "top_logprobs", "text_offset"} (offsets continue g->text_offset).
json LogprobsJson(OpenAiAnswer* g, const std::vector<engine::TokenLogprobs>& tokens) {
  const engine::Model& model = g->run->model();
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

// cached_tokens: the start of the prompt found in the slot's kept cells (an earlier chat turn).
json UsageJson(int prompt_tokens, int completion_tokens, int cached_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
}

json ChunkJson(const OpenAiAnswer& g, const std::string* text, const char* finish, bool role) {
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
          {"system_fingerprint", g.fingerprint},
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

}  // namespace

Status ResolveModelName(const RouteContext& ctx, std::string* name) {
  if (!name->empty()) return Status::Ok();
  SNUG_ASSIGN_OR_RETURN(*name, ctx.pool->DefaultModel());
  return Status::Ok();
}

void AddOpenAiRoutes(Router& router, const RouteContext& ctx) {
  // Each route also without its /v1 prefix, as llama-server serves them (clients configured
  // with a base URL lacking /v1 call those).
  auto get = [&router](const std::string& path, const Router::Handler& handler) {
    router.Get(path, handler);
    router.Get(path.substr(3), handler);
  };
  auto post = [&router](const std::string& path, const Router::Handler& handler) {
    router.Post(path, handler);
    router.Post(path.substr(3), handler);
  };
  auto model_object = [](const std::string& name, bool loaded) {
    return json{{"id", name},
                {"object", "model"},
                {"created", 0},
                {"owned_by", "snug"},
                {"loaded", loaded}};
  };
  get("/v1/models", [ctx, model_object](HttpRequest&, HttpResponse& res) {
    std::set<std::string> loaded;
    for (const auto& m : ctx.pool->Running())
      loaded.insert(m.name);
    json data = json::array();
    for (const auto& name : ctx.pool->KnownNames()) {
      data.push_back(model_object(name, loaded.count(name) > 0));
    }
    SendJson(res, 200, {{"object", "list"}, {"data", data}});
  });
  get("/v1/models/*", [ctx, model_object](HttpRequest& req, HttpResponse& res) {
    const std::string name = req.path_tail;
    if (Status valid = ValidateModelName(name); !valid.ok()) {
      SendStatus(res, valid);
      return;
    }
    bool loaded = false;
    for (const auto& m : ctx.pool->Running())
      loaded |= m.name == name;
    auto names = ctx.pool->KnownNames();
    if (std::find(names.begin(), names.end(), name) == names.end()) {
      SendStatus(res, Status::NotFound(fmt::format("model '{}' is not known", name)));
      return;
    }
    SendJson(res, 200, model_object(name, loaded));
  });

  post("/v1/embeddings", [ctx](HttpRequest& req, HttpResponse& res) {
    WithJsonBody(req, res, [&](const RequestJson& body) {
      auto request = ParseEmbeddingRequest(body);
      if (!request.ok()) return SendStatus(res, request.status());
      auto embedded = EmbedInputs(ctx, request->model, request->inputs, /*truncate=*/false);
      if (!embedded.ok()) return SendStatus(res, embedded.status());
      json data = json::array();
      for (size_t i = 0; i < embedded->vectors.size(); ++i) {
        auto& vector = embedded->vectors[i];
        json embedding = request->base64 ? json(EmbeddingBase64(vector)) : json(std::move(vector));
        data.push_back(
            {{"object", "embedding"}, {"index", i}, {"embedding", std::move(embedding)}});
      }
      const int prompt_tokens = embedded->prompt_tokens;
      SendJson(res, 200,
               {{"object", "list"},
                {"data", std::move(data)},
                {"model", embedded->model},
                {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}});
    });
  });

  // Chat and text completions share admission (generation.h), streaming and accounting.
  auto generate = [ctx](Api api, HttpRequest& req, HttpResponse& res) {
    auto body = ParseJsonBody(req.body);
    if (!body.ok()) return SendStatus(res, body.status());
    GenerationSpec spec;
    if (api == Api::kChat) {
      auto chat = ParseChatRequest(*body);
      if (!chat.ok()) return SendStatus(res, chat.status());
      spec.params = std::move(chat->params);
      spec.chat = std::move(chat->input);
    } else {
      auto completion = ParseCompletionRequest(*body);
      if (!completion.ok()) return SendStatus(res, completion.status());
      spec.params = std::move(completion->params);
      spec.raw_prompt = std::move(completion->prompt);
      spec.json_schema = std::move(completion->json_schema);
      spec.grammar = std::move(completion->grammar);
    }
    const bool stream = spec.params.stream;
    auto g = std::make_shared<OpenAiAnswer>();
    g->include_usage = spec.params.include_usage;
    g->logprobs = spec.params.logprobs >= 0;
    const auto client_gone = req.client_gone;
    auto run = StartGeneration(ctx, std::move(spec), client_gone);
    if (!run.ok()) return SendStatus(res, run.status());
    g->api = api;
    g->run = std::move(*run);
    g->id = NewId(api == Api::kChat ? "chatcmpl" : "cmpl");
    g->model = g->run->model_name();
    g->fingerprint = ctx.options->system_fingerprint;
    g->created = UnixNow();

    if (!stream) {
      auto all = g->run->Finish(client_gone);
      if (!all.ok()) return SendStatus(res, all.status());
      ctx.metrics->CountTokens(all->prompt_tokens, all->completion_tokens);
      json choice = {
          {"index", 0},
          {"logprobs", g->logprobs ? LogprobsJson(g.get(), all->logprobs) : json(nullptr)},
          {"finish_reason", FinishName(all->finish)}};
      if (api == Api::kChat) {
        choice["message"] = MessageJson(all->chat);
        choice["finish_reason"] = FinishName(all->finish, !all->chat.tool_calls.empty());
      } else {
        choice["text"] = all->text;
      }
      return SendJson(
          res, 200,
          {{"id", g->id},
           {"object", api == Api::kChat ? "chat.completion" : "text_completion"},
           {"created", g->created},
           {"model", g->model},
           {"system_fingerprint", g->fingerprint},
           {"choices", json::array({choice})},
           {"usage", UsageJson(all->prompt_tokens, all->completion_tokens, all->cached_tokens)}});
    }

    res.SetHeader("Cache-Control", "no-cache");
    res.SetHeader("X-Accel-Buffering", "no");
    res.content_type = "text/event-stream";
    res.stream = [ctx, g](StreamSink& sink) {
      auto write = [&sink](const std::string& s) { return sink.Write(s); };
      if (g->api == Api::kChat && !write(SseEvent(ChunkJson(*g, nullptr, nullptr, true)))) {
        g->run->job().Cancel();  // the client is gone: free the slot
        return;
      }
      g->run->Pump(sink, [&](const Job::Update& u, const std::vector<engine::ChatDelta>& deltas) {
        std::vector<json> chunks;
        if (g->run->is_chat()) {
          for (const auto& d : deltas) {
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
          if (!write(SseEvent(chunk))) return false;
        }
        if (!u.done) return true;
        ctx.metrics->CountTokens(u.prompt_tokens, u.completion_tokens);
        if (!u.error.ok()) {
          write(SseEvent(ErrorFromStatus(u.error).ToJson()));
        } else {
          const bool called = !g->run->chat().tool_calls.empty();
          write(SseEvent(ChunkJson(*g, nullptr, FinishName(u.finish, called), false)));
          if (g->include_usage) {
            json usage = ChunkJson(*g, nullptr, nullptr, false);
            usage["choices"] = json::array();
            usage["usage"] = UsageJson(u.prompt_tokens, u.completion_tokens, u.cached_tokens);
            write(SseEvent(usage));
          }
        }
        write("data: [DONE]\n\n");
        return true;
      });
    };
  };
  post("/v1/chat/completions",
       [generate](HttpRequest& req, HttpResponse& res) { generate(Api::kChat, req, res); });
  post("/v1/completions",
       [generate](HttpRequest& req, HttpResponse& res) { generate(Api::kCompletion, req, res); });
}

}  // namespace snug::server
