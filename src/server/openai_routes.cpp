#include <fmt/format.h>

#include <algorithm>
#include <memory>
#include <mutex>
#include <set>

#include "engine/chat.h"
#include "engine/engine.h"
#include "server/prompt_budget.h"
#include "server/respond.h"
#include "server/routes.h"
#include "server/wire.h"

namespace snug::server {
namespace {

using nlohmann::json;

enum class Api { kChat, kCompletion };

// A generation in flight, shared by the handler and (for streams) the content provider.
struct Generation {
  Api api = Api::kChat;
  ModelPool::Lease lease;
  std::shared_ptr<Job> job;
  std::string id;
  std::string model;
  int64_t created = 0;
  std::string fingerprint;  // system_fingerprint: this build of snug and llama.cpp
  bool include_usage = false;
  bool logprobs = false;
  size_t text_offset = 0;  // completions' logprobs.text_offset: bytes of the tokens so far
  // Chat: reads content, reasoning and tool calls back out of the model's text.
  std::unique_ptr<engine::ChatReader> reader;

  // A stream that never ran (a HEAD request, a client gone before the headers) frees its slot.
  ~Generation() {
    if (job) job->Cancel();
  }
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

// cached_tokens: the start of the prompt found in the slot's kept cells (an earlier chat turn).
json UsageJson(int prompt_tokens, int completion_tokens, int cached_tokens) {
  return {{"prompt_tokens", prompt_tokens},
          {"completion_tokens", completion_tokens},
          {"total_tokens", prompt_tokens + completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", cached_tokens}}}};
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
      if (*ctx.stopping) {
        return SendStatus(res, Status::Unavailable("the server is shutting down"));
      }
      if (Status named = ResolveModelName(ctx, &request->model); !named.ok()) {
        return SendStatus(res, named);
      }
      auto lease = ctx.pool->Acquire(request->model);
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
          tokens = TokenizeWithinLimits(*ctx.pool, model, lease->scheduler().n_ctx_seq(),
                                        input.text, PromptKind::kEmbedding);
        }
        if (!tokens.ok()) return SendStatus(res, tokens.status());
        // The planner sized this model's context; a longer input would need an embedding
        // context (and compute buffer) beyond what was planned to fit.
        const uint32_t n_ctx = lease->scheduler().n_ctx_seq();
        if (n_ctx > 0 && tokens->size() > n_ctx) {
          return SendStatus(
              res, Status::ContextExceeded(engine::PromptTooLongMessage(tokens->size(), n_ctx)));
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
            ctx.pool->Reserve(bytes, fmt::format("an embedding context for {} tokens", longest)));
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
      ctx.metrics->CountTokens(prompt_tokens, 0);
      SendJson(res, 200,
               {{"object", "list"},
                {"data", std::move(data)},
                {"model", request->model},
                {"usage", {{"prompt_tokens", prompt_tokens}, {"total_tokens", prompt_tokens}}}});
    });
  });

  // Chat and text completions share admission, streaming and accounting.
  auto generate = [ctx](Api api, HttpRequest& req, HttpResponse& res) {
    if (*ctx.stopping) return SendStatus(res, Status::Unavailable("the server is shutting down"));
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
    if (Status named = ResolveModelName(ctx, &params.model); !named.ok()) {
      return SendStatus(res, named);
    }
    auto lease = ctx.pool->Acquire(params.model);
    if (!lease.ok()) return SendStatus(res, lease.status());
    const engine::Model& model = lease->scheduler().model();
    engine::SamplingParams sampling;
    std::shared_ptr<const engine::ChatParser> parser;
    Result<std::vector<engine::Token>> tokens = std::vector<engine::Token>{};
    if (api == Api::kChat) {
      size_t user_bytes = 0;  // every template renders the users' messages whole
      for (const auto& message : chat_input.messages)
        if (message.role == "user") user_bytes += message.content.size();
      if (Status fits = CheckPromptBytes(model, lease->scheduler().n_ctx_seq(), user_bytes);
          !fits.ok()) {
        return SendStatus(res, fits);
      }
      auto rendered = model.chat().Render(chat_input);
      if (!rendered.ok()) return SendStatus(res, rendered.status());
      sampling.grammar = std::move(rendered->grammar);
      sampling.stop = std::move(rendered->stops);
      sampling.kept_special_tokens = std::move(rendered->preserved_tokens);
      parser = std::move(rendered->parser);
      tokens = TokenizeWithinLimits(*ctx.pool, model, lease->scheduler().n_ctx_seq(),
                                    rendered->prompt, PromptKind::kChat);
    } else {
      auto grammar =
          engine::GrammarForCompletion(model, completion.json_schema, completion.grammar);
      if (!grammar.ok()) return SendStatus(res, grammar.status());
      sampling.grammar = std::move(*grammar);
      tokens = TokenizeWithinLimits(*ctx.pool, model, lease->scheduler().n_ctx_seq(),
                                    completion.prompt, PromptKind::kCompletion);
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
    const auto client_gone = req.client_gone;
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
    g->fingerprint = ctx.options->system_fingerprint;
    g->created = UnixNow();
    g->include_usage = params.include_usage;
    g->logprobs = params.logprobs >= 0;
    if (api == Api::kChat) g->reader = std::make_unique<engine::ChatReader>(std::move(parser));

    if (!params.stream) {
      Job::Update all = g->job->TakeAll(client_gone);
      ctx.metrics->CountTokens(all.prompt_tokens, all.completion_tokens);
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
      return SendJson(
          res, 200,
          {{"id", g->id},
           {"object", api == Api::kChat ? "chat.completion" : "text_completion"},
           {"created", g->created},
           {"model", g->model},
           {"system_fingerprint", g->fingerprint},
           {"choices", json::array({choice})},
           {"usage", UsageJson(all.prompt_tokens, all.completion_tokens, all.cached_tokens)}});
    }

    res.SetHeader("Cache-Control", "no-cache");
    res.SetHeader("X-Accel-Buffering", "no");
    res.content_type = "text/event-stream";
    res.stream = [ctx, g](StreamSink& sink) {
      auto write = [&sink](const std::string& s) { return sink.Write(s); };
      if (g->api == Api::kChat && !write(SseEvent(ChunkJson(*g, nullptr, nullptr, true)))) {
        g->job->Cancel();
        return;
      }
      while (true) {
        Job::Update u;
        if (!g->job->Take(&u, std::chrono::milliseconds(250))) {
          // Nothing new: make sure the client is still there.
          if (sink.ClientGone()) {
            g->job->Cancel();
            return;
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
            return;
          }
        }
        if (!u.done) continue;
        ctx.metrics->CountTokens(u.prompt_tokens, u.completion_tokens);
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
            usage["usage"] = UsageJson(u.prompt_tokens, u.completion_tokens, u.cached_tokens);
            write(SseEvent(usage));
          }
        }
        write("data: [DONE]\n\n");
        return;
      }
    };
  };
  post("/v1/chat/completions",
       [generate](HttpRequest& req, HttpResponse& res) { generate(Api::kChat, req, res); });
  post("/v1/completions",
       [generate](HttpRequest& req, HttpResponse& res) { generate(Api::kCompletion, req, res); });
}

}  // namespace snug::server
