// Ollama's API on snug's port, for the clients that speak it (ollama-js and ollama-python, Open
// WebUI, LangChain's Ollama classes, editor plugins): chat, generate and embeddings on the same
// admission, fit and scheduler as the OpenAI routes, and the model routes on snug's store.
// Errors are {"error": "a sentence"} with the HTTP status, as Ollama answers them.
#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <optional>
#include <set>

#include "engine/chat.h"
#include "server/embedding.h"
#include "server/generation.h"
#include "server/metrics.h"
#include "server/respond.h"
#include "server/routes.h"

namespace snug::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// The Ollama API level these routes implement, for clients that gate features (tools,
// structured outputs, thinking) on /api/version.
constexpr const char* kOllamaApiVersion = "0.12.0";

void SendOllama(HttpResponse& res, const Status& status) {
  SendStatus(res, status, Dialect::kOllama);
}

// Ollama's timestamps: RFC 3339 in UTC with fractional seconds.
std::string Rfc3339(std::chrono::system_clock::time_point when) {
  const auto since = when.time_since_epoch();
  const std::time_t seconds = std::chrono::duration_cast<std::chrono::seconds>(since).count();
  const auto micros =
      std::chrono::duration_cast<std::chrono::microseconds>(since).count() % 1000000;
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof(buffer), "%Y-%m-%dT%H:%M:%S", &utc);
  return fmt::format("{}.{:06d}Z", buffer, micros);
}
std::string Now() {
  return Rfc3339(std::chrono::system_clock::now());
}
std::string UnixTime(int64_t seconds) {
  return Rfc3339(std::chrono::system_clock::time_point(std::chrono::seconds(seconds)));
}

int64_t Nanos(Clock::duration d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

// keep_alive as Ollama takes it: a number of seconds, or a Go duration ("5m", "1h30m", "300ms",
// "0", "-1"). Negative: keep loaded forever.
Result<std::chrono::milliseconds> ParseKeepAlive(const RequestJson& value) {
  auto bad = [&] {
    return Status::InvalidArgument(fmt::format(
        "'keep_alive' must be a duration such as \"5m\", \"30s\" or \"0\", or a number of "
        "seconds (-1 keeps the model loaded); got {}",
        value.dump()));
  };
  if (value.is_number()) {
    const double seconds = value.get<double>();
    if (!std::isfinite(seconds)) return bad();
    if (seconds < 0) return std::chrono::milliseconds(-1);
    return std::chrono::milliseconds(static_cast<int64_t>(std::min(seconds, 1e9) * 1000));
  }
  if (!value.is_string()) return bad();
  std::string text = value.get<std::string>();
  if (text.empty()) return bad();
  bool negative = false;
  if (text[0] == '-') {
    negative = true;
    text = text.substr(1);
  }
  double total_ms = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = pos;
    while (end < text.size() &&
           (std::isdigit(static_cast<unsigned char>(text[end])) || text[end] == '.'))
      ++end;
    if (end == pos) return bad();
    double number = 0;
    try {
      number = std::stod(text.substr(pos, end - pos));
    } catch (...) {
      return bad();
    }
    size_t unit_end = end;
    while (unit_end < text.size() && std::isalpha(static_cast<unsigned char>(text[unit_end])))
      ++unit_end;
    const std::string unit = text.substr(end, unit_end - end);
    double scale = 0;
    if (unit.empty() && end == text.size() && pos == 0) scale = 1000;  // "300": seconds
    if (unit == "ns") scale = 1e-6;
    if (unit == "us" || unit == "µs") scale = 1e-3;
    if (unit == "ms") scale = 1;
    if (unit == "s") scale = 1000;
    if (unit == "m") scale = 60'000;
    if (unit == "h") scale = 3'600'000;
    if (scale == 0) return bad();
    total_ms += number * scale;
    pos = unit_end;
  }
  if (negative) return total_ms > 0 ? std::chrono::milliseconds(-1) : std::chrono::milliseconds(0);
  return std::chrono::milliseconds(static_cast<int64_t>(std::min(total_ms, 1e15)));
}

// Reads a number field of `options` into `out`, checking type and range.
template <typename T>
Status ReadNumber(const RequestJson& options, const char* key, double lo, double hi,
                  std::optional<T>* out) {
  const auto it = options.find(key);
  if (it == options.end() || it->is_null()) return Status::Ok();
  if (!it->is_number()) {
    return Status::InvalidArgument(fmt::format("option '{}' must be a number", key));
  }
  const double v = it->template get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) {
    return Status::InvalidArgument(
        fmt::format("option '{}' must be between {} and {}; got {}", key, lo, hi, it->dump()));
  }
  *out = static_cast<T>(v);
  return Status::Ok();
}

// Ollama's "options" in snug's terms. Settings snug's planner owns (threads, GPU layers, batch,
// mmap) are accepted and left to it; sampler settings snug does not have are refused, so a
// client never believes it got one.
Status ReadOptions(const RequestJson& body, GenerationSpec* spec) {
  const auto it = body.find("options");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return Status::InvalidArgument("'options' must be an object");
  const RequestJson& options = *it;
  static const std::set<std::string> kPlannerOwned = {"num_thread", "num_gpu",  "main_gpu",
                                                      "num_batch",  "use_mmap", "use_mlock",
                                                      "numa",       "low_vram", "num_keep"};
  static const std::set<std::string> kSampler = {"num_ctx",
                                                 "num_predict",
                                                 "temperature",
                                                 "top_k",
                                                 "top_p",
                                                 "min_p",
                                                 "seed",
                                                 "stop",
                                                 "repeat_penalty",
                                                 "repeat_last_n",
                                                 "presence_penalty",
                                                 "frequency_penalty",
                                                 "mirostat",
                                                 "typical_p",
                                                 "penalize_newline",
                                                 "tfs_z"};
  for (auto field = options.begin(); field != options.end(); ++field) {
    if (kPlannerOwned.count(field.key()) || kSampler.count(field.key())) continue;
    return Status::InvalidArgument(
        fmt::format("option '{}' is not supported by snug", field.key()));
  }
  std::optional<int64_t> num_ctx, num_predict, top_k, seed, repeat_last_n, mirostat;
  std::optional<double> temperature, top_p, min_p, repeat_penalty, presence, frequency, typical_p,
      tfs_z;
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "num_ctx", 1, 1 << 24, &num_ctx));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "num_predict", -2, kMaxTokensLimit, &num_predict));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "temperature", 0, 100, &temperature));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "top_k", 0, 1 << 20, &top_k));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "top_p", 0, 1, &top_p));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "min_p", 0, 1, &min_p));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "seed", -1, 4294967295.0, &seed));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "repeat_penalty", 0, 100, &repeat_penalty));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "repeat_last_n", -1, 1 << 20, &repeat_last_n));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "presence_penalty", -2, 2, &presence));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "frequency_penalty", -2, 2, &frequency));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "mirostat", 0, 2, &mirostat));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "typical_p", 0, 1, &typical_p));
  SNUG_RETURN_IF_ERROR(ReadNumber(options, "tfs_z", 0, 100, &tfs_z));
  // Off values of samplers snug lacks are what clients send by default; anything else would be
  // silently ignored.
  if (mirostat && *mirostat != 0) {
    return Status::InvalidArgument("option 'mirostat' is not supported by snug (use 0)");
  }
  if (typical_p && *typical_p != 1) {
    return Status::InvalidArgument("option 'typical_p' is not supported by snug (use 1)");
  }
  if (tfs_z && *tfs_z != 1) {
    return Status::InvalidArgument("option 'tfs_z' is not supported by snug (use 1)");
  }
  if (const auto p = options.find("penalize_newline"); p != options.end() && !p->is_boolean()) {
    return Status::InvalidArgument("option 'penalize_newline' must be true or false");
  }
  GenerationParams& params = spec->params;
  if (num_ctx) spec->acquire.min_ctx = static_cast<uint32_t>(*num_ctx);
  if (num_predict && *num_predict >= 0) params.max_tokens = static_cast<int>(*num_predict);
  if (temperature) params.temperature = static_cast<float>(*temperature);
  if (top_p) params.top_p = static_cast<float>(*top_p);
  if (top_k) spec->top_k = static_cast<int>(*top_k);
  if (min_p) spec->min_p = static_cast<float>(*min_p);
  if (seed && *seed >= 0) params.seed = static_cast<uint32_t>(*seed);
  if (repeat_penalty) spec->repeat_penalty = static_cast<float>(*repeat_penalty);
  if (repeat_last_n) spec->repeat_last_n = static_cast<int>(*repeat_last_n);
  if (presence) params.presence_penalty = static_cast<float>(*presence);
  if (frequency) params.frequency_penalty = static_cast<float>(*frequency);
  if (const auto stop = options.find("stop"); stop != options.end() && !stop->is_null()) {
    if (!stop->is_array())
      return Status::InvalidArgument("option 'stop' must be a list of strings");
    for (const auto& s : *stop) {
      if (!s.is_string()) {
        return Status::InvalidArgument("option 'stop' must be a list of strings");
      }
      if (!s.get<std::string>().empty()) params.stop.push_back(s.get<std::string>());
    }
  }
  return Status::Ok();
}

// The fields chat and generate share: model, stream (Ollama's default: true), keep_alive,
// format, think, options.
struct Common {
  bool stream = true;
  bool has_keep_alive = false;
  bool think = false;  // thinking asked for: refused (as Ollama does) by a model without it
};

Result<std::string> ReadString(const RequestJson& body, const char* key, bool required) {
  const auto it = body.find(key);
  if (it == body.end() || it->is_null()) {
    if (required) return Status::InvalidArgument(fmt::format("'{}' is required", key));
    return std::string();
  }
  if (!it->is_string()) return Status::InvalidArgument(fmt::format("'{}' must be a string", key));
  return it->get<std::string>();
}

// The model a show, delete or pull names: "model", or "name" as older clients send it.
Result<std::string> ReadModelRef(const RequestJson& body) {
  SNUG_ASSIGN_OR_RETURN(std::string name, ReadString(body, "model", false));
  if (name.empty()) {
    SNUG_ASSIGN_OR_RETURN(name, ReadString(body, "name", false));
  }
  if (name.empty()) return Status::InvalidArgument("'model' is required");
  return name;
}

// Ollama clients name models "name:tag"; a store or file name without a tag is "name:latest".
// A name that differs from a known one only in case is that model (the store keeps names in
// lower case, and `ollama pull o/Repo:Q8_0` hands back the name as typed): one model, one pool
// entry, whatever the spelling.
Status ResolveOllamaModel(const RouteContext& ctx, std::string* name) {
  if (name->empty()) return ResolveModelName(ctx, name);
  SNUG_RETURN_IF_ERROR(ValidateModelName(*name));
  const auto names = ctx.pool->KnownNames();
  auto known = [&](const std::string& candidate) -> std::optional<std::string> {
    if (std::find(names.begin(), names.end(), candidate) != names.end()) return candidate;
    auto lower = [](std::string text) {
      for (char& c : text)
        c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      return text;
    };
    const std::string wanted = lower(candidate);
    std::optional<std::string> match;
    for (const auto& n : names) {
      if (lower(n) != wanted) continue;
      if (match) return std::nullopt;  // ambiguous: leave the name as given
      match = n;
    }
    return match;
  };
  if (auto found = known(*name)) {
    *name = *found;
    return Status::Ok();
  }
  const std::string latest = ":latest";
  if (name->size() > latest.size() &&
      name->compare(name->size() - latest.size(), latest.size(), latest) == 0) {
    name->resize(name->size() - latest.size());
    if (auto found = known(*name)) *name = *found;
  }
  return Status::Ok();
}

Result<Common> ReadCommon(const RequestJson& body, GenerationSpec* spec) {
  Common common;
  SNUG_ASSIGN_OR_RETURN(spec->params.model, ReadString(body, "model", /*required=*/false));
  if (spec->params.model.empty()) {
    SNUG_ASSIGN_OR_RETURN(spec->params.model, ReadString(body, "name", /*required=*/false));
  }
  if (const auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return Status::InvalidArgument("'stream' must be true or false");
    common.stream = it->get<bool>();
  }
  if (const auto it = body.find("keep_alive"); it != body.end() && !it->is_null()) {
    SNUG_ASSIGN_OR_RETURN(auto keep_alive, ParseKeepAlive(*it));
    spec->acquire.keep_alive = keep_alive;
    common.has_keep_alive = true;
  }
  if (const auto it = body.find("format"); it != body.end() && !it->is_null()) {
    if (it->is_string()) {
      if (*it == "json") {
        // Ollama's JSON mode answers with an object. (An empty schema, "{}", would constrain
        // nothing: llama.cpp's chat formats take an empty schema for none.)
        spec->chat.json_schema = R"({"type":"object"})";
        spec->json_schema = spec->chat.json_schema;
      } else if (*it != "") {
        return Status::InvalidArgument("'format' must be \"json\" or a JSON schema object; got " +
                                       it->dump());
      }
    } else if (it->is_object()) {
      spec->chat.json_schema = it->dump();
      spec->json_schema = spec->chat.json_schema;
    } else {
      return Status::InvalidArgument("'format' must be \"json\" or a JSON schema object");
    }
  }
  if (const auto it = body.find("think"); it != body.end() && !it->is_null()) {
    // true/false, or an effort level ("low", "medium", "high") for models that take one.
    if (it->is_boolean()) {
      spec->chat.enable_thinking = it->get<bool>();
      common.think = it->get<bool>();
    } else if (it->is_string() && (*it == "low" || *it == "medium" || *it == "high")) {
      spec->chat.enable_thinking = true;
      common.think = true;
    } else {
      return Status::InvalidArgument(
          "'think' must be true, false, \"low\", \"medium\" or \"high\"");
    }
  }
  SNUG_RETURN_IF_ERROR(ReadOptions(body, spec));
  return common;
}

Status RefuseImages(const RequestJson& holder) {
  const auto it = holder.find("images");
  if (it != holder.end() && !it->is_null() && !(it->is_array() && it->empty())) {
    return Status::InvalidArgument("images are not supported: snug serves text models");
  }
  return Status::Ok();
}

// Ollama's tools are OpenAI's function tools.
Status ReadTools(const RequestJson& body, engine::ChatInput* chat) {
  const auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Status::InvalidArgument("'tools' must be a list");
  for (const auto& tool : *it) {
    const auto function = tool.is_object() ? tool.find("function") : tool.end();
    if (!tool.is_object() || function == tool.end() || !function->is_object()) {
      return Status::InvalidArgument(
          "each tool must be {\"type\": \"function\", \"function\": {\"name\", \"parameters\"}}");
    }
    if (const auto type = tool.find("type"); type != tool.end() && *type != "function") {
      return Status::InvalidArgument("only tools of type \"function\" are supported");
    }
    engine::ChatTool t;
    SNUG_ASSIGN_OR_RETURN(t.name, ReadString(*function, "name", /*required=*/true));
    SNUG_ASSIGN_OR_RETURN(t.description, ReadString(*function, "description", false));
    const auto parameters = function->find("parameters");
    if (parameters != function->end() && !parameters->is_null()) {
      if (!parameters->is_object()) {
        return Status::InvalidArgument(
            fmt::format("the parameters of tool '{}' must be a JSON schema object", t.name));
      }
      t.parameters = parameters->dump();
    } else {
      t.parameters = R"({"type":"object","properties":{}})";
    }
    chat->tools.push_back(std::move(t));
  }
  return Status::Ok();
}

// Ollama's messages: content strings, assistant tool_calls with arguments as objects (no ids:
// snug numbers them so each tool answer is tied to its call in order), tool answers with
// tool_name, earlier thinking.
Status ReadMessages(const RequestJson& body, engine::ChatInput* chat) {
  const auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Status::InvalidArgument("'messages' must be a list");
  std::vector<std::string> open_calls;  // ids of calls not answered yet, in order
  int next_call = 0;
  for (size_t i = 0; i < it->size(); ++i) {
    const auto& m = (*it)[i];
    if (!m.is_object()) {
      return Status::InvalidArgument(fmt::format("messages[{}] must be an object", i));
    }
    engine::ChatMessage message;
    SNUG_ASSIGN_OR_RETURN(message.role, ReadString(m, "role", /*required=*/true));
    if (message.role != "system" && message.role != "user" && message.role != "assistant" &&
        message.role != "tool") {
      return Status::InvalidArgument(fmt::format(
          "messages[{}].role must be system, user, assistant or tool; got '{}'", i, message.role));
    }
    auto content = ReadString(m, "content", false);
    if (!content.ok()) {
      return Status::InvalidArgument(fmt::format("messages[{}].content must be a string", i));
    }
    message.content = std::move(*content);
    SNUG_RETURN_IF_ERROR(RefuseImages(m));
    SNUG_ASSIGN_OR_RETURN(message.reasoning_content, ReadString(m, "thinking", false));
    if (const auto calls = m.find("tool_calls"); calls != m.end() && !calls->is_null()) {
      if (!calls->is_array()) {
        return Status::InvalidArgument(fmt::format("messages[{}].tool_calls must be a list", i));
      }
      for (const auto& call : *calls) {
        const auto function = call.is_object() ? call.find("function") : call.end();
        if (function == call.end() || !function->is_object()) {
          return Status::InvalidArgument(
              fmt::format("messages[{}].tool_calls: each call must be {{\"function\": {{\"name\", "
                          "\"arguments\"}}}}",
                          i));
        }
        engine::ToolCall tool_call;
        SNUG_ASSIGN_OR_RETURN(tool_call.name, ReadString(*function, "name", true));
        const auto arguments = function->find("arguments");
        if (arguments == function->end() || arguments->is_null()) {
          tool_call.arguments = "{}";
        } else if (arguments->is_object()) {
          tool_call.arguments = arguments->dump();
        } else if (arguments->is_string()) {
          tool_call.arguments = arguments->get<std::string>();
        } else {
          return Status::InvalidArgument(
              fmt::format("messages[{}]: the arguments of a tool call must be an object", i));
        }
        tool_call.id = fmt::format("call_{}", next_call++);
        open_calls.push_back(tool_call.id);
        message.tool_calls.push_back(std::move(tool_call));
      }
    }
    if (message.role == "tool") {
      SNUG_ASSIGN_OR_RETURN(message.tool_name, ReadString(m, "tool_name", false));
      if (!open_calls.empty()) {
        message.tool_call_id = open_calls.front();
        open_calls.erase(open_calls.begin());
      }
    }
    chat->messages.push_back(std::move(message));
  }
  return Status::Ok();
}

json ToolCallsJson(const std::vector<engine::ToolCall>& calls) {
  json out = json::array();
  for (const auto& call : calls) {
    json arguments = json::parse(call.arguments, nullptr, /*allow_exceptions=*/false);
    if (arguments.is_discarded()) arguments = call.arguments;  // keep what the model wrote
    out.push_back({{"function", {{"name", call.name}, {"arguments", std::move(arguments)}}}});
  }
  return out;
}

const char* DoneReason(engine::FinishReason finish) {
  return finish == engine::FinishReason::kLength ? "length" : "stop";
}

// The counts and durations Ollama ends an answer with (nanoseconds). snug measures the wait
// for admission (loading included) as load_duration and the rest as eval_duration.
void AddTimings(json* out, Clock::time_point start, Clock::time_point admitted, int prompt_tokens,
                int completion_tokens, Clock::time_point first_token) {
  const auto end = Clock::now();
  (*out)["total_duration"] = Nanos(end - start);
  (*out)["load_duration"] = Nanos(admitted - start);
  (*out)["prompt_eval_count"] = prompt_tokens;
  (*out)["prompt_eval_duration"] = Nanos(first_token - admitted);
  (*out)["eval_count"] = completion_tokens;
  (*out)["eval_duration"] = Nanos(end - first_token);
}

void SendNdjsonLine(StreamSink& sink, const json& line, bool* ok) {
  if (*ok) *ok = sink.Write(Dump(line) + "\n");
}

enum class Api { kChat, kGenerate };

// An empty chat or prompt loads the model (or, with keep_alive 0, unloads it), as Ollama does.
void LoadOrUnload(const RouteContext& ctx, Api api, const GenerationSpec& spec, HttpResponse& res) {
  std::string name = spec.params.model;
  if (Status named = ResolveOllamaModel(ctx, &name); !named.ok()) return SendOllama(res, named);
  json out = {{"model", name}, {"created_at", Now()}, {"done", true}};
  if (api == Api::kChat) {
    out["message"] = {{"role", "assistant"}, {"content", ""}};
  } else {
    out["response"] = "";
  }
  if (spec.acquire.keep_alive && spec.acquire.keep_alive->count() == 0) {
    Status unloaded = ctx.pool->Unload(name);
    if (!unloaded.ok() && unloaded.code() != Code::kNotFound) return SendOllama(res, unloaded);
    out["done_reason"] = "unload";
    return SendJson(res, 200, out);
  }
  if (Status loaded = ctx.pool->Load(name, spec.acquire); !loaded.ok()) {
    return SendOllama(res, loaded);
  }
  out["done_reason"] = "load";
  SendJson(res, 200, out);
}

void Generate(const RouteContext& ctx, Api api, HttpRequest& req, HttpResponse& res) {
  const auto start = Clock::now();
  auto body = ParseJsonBody(req.body);
  if (!body.ok()) return SendOllama(res, body.status());
  if (!body->is_object())
    return SendOllama(res, Status::InvalidArgument("the body must be an object"));
  GenerationSpec spec;
  auto common = ReadCommon(*body, &spec);
  if (!common.ok()) return SendOllama(res, common.status());
  bool empty = false;
  if (api == Api::kChat) {
    if (Status read = ReadMessages(*body, &spec.chat); !read.ok()) return SendOllama(res, read);
    if (Status read = ReadTools(*body, &spec.chat); !read.ok()) return SendOllama(res, read);
    empty = spec.chat.messages.empty();
  } else {
    if (Status images = RefuseImages(*body); !images.ok()) return SendOllama(res, images);
    auto prompt = ReadString(*body, "prompt", false);
    auto system = ReadString(*body, "system", false);
    auto suffix = ReadString(*body, "suffix", false);
    auto tmpl = ReadString(*body, "template", false);
    for (const auto* field : {&prompt, &system, &suffix, &tmpl}) {
      if (!field->ok()) return SendOllama(res, field->status());
    }
    if (!suffix->empty()) {
      return SendOllama(
          res, Status::InvalidArgument("'suffix' (fill-in-the-middle) is not supported by snug"));
    }
    if (!tmpl->empty()) {
      return SendOllama(
          res, Status::InvalidArgument("'template' is not supported: snug renders prompts with the "
                                       "model's own chat template (or 'raw': true for none)"));
    }
    if (const auto context = body->find("context"); context != body->end() && !context->is_null() &&
                                                    !(context->is_array() && context->empty())) {
      return SendOllama(res, Status::InvalidArgument(
                                 "'context' (tokens of an earlier answer) is not supported; send "
                                 "the conversation to /api/chat instead"));
    }
    bool raw = false;
    if (const auto it = body->find("raw"); it != body->end() && !it->is_null()) {
      if (!it->is_boolean())
        return SendOllama(res, Status::InvalidArgument("'raw' must be true or false"));
      raw = it->get<bool>();
    }
    empty = prompt->empty();
    if (raw) {
      spec.raw_prompt = *prompt;
    } else {
      auto add = [&](const char* role, const std::string& content) {
        engine::ChatMessage message;
        message.role = role;
        message.content = content;
        spec.chat.messages.push_back(std::move(message));
      };
      if (!system->empty()) add("system", *system);
      add("user", *prompt);
    }
  }
  if (empty) return LoadOrUnload(ctx, api, spec, res);
  if (Status named = ResolveOllamaModel(ctx, &spec.params.model); !named.ok()) {
    return SendOllama(res, named);
  }
  const bool stream = common->stream;
  const auto client_gone = req.client_gone;
  auto started = StartGeneration(ctx, std::move(spec), client_gone);
  if (!started.ok()) return SendOllama(res, started.status());
  std::shared_ptr<Generation> run = std::move(*started);
  if (common->think && run->is_chat() && !run->model().chat().Describe().supports_thinking) {
    // Ollama refuses rather than answer without the thinking the client will look for.
    return SendOllama(res, Status::InvalidArgument(fmt::format(
                               "model '{}' does not support thinking (its chat template has no "
                               "reasoning section); leave 'think' out or set it to false",
                               run->model_name())));
  }
  const auto admitted = Clock::now();
  const std::string model = run->model_name();
  // The text of one answer in Ollama's shape: chat's message, generate's response.
  auto piece = [api](const std::string& content, const std::string& thinking) {
    json out = json::object();
    if (api == Api::kChat) {
      json message = {{"role", "assistant"}, {"content", content}};
      if (!thinking.empty()) message["thinking"] = thinking;
      out["message"] = std::move(message);
    } else {
      out["response"] = content;
      if (!thinking.empty()) out["thinking"] = thinking;
    }
    return out;
  };

  if (!stream) {
    auto all = run->Finish(client_gone);
    if (!all.ok()) return SendOllama(res, all.status());
    ctx.metrics->CountTokens(all->prompt_tokens, all->completion_tokens);
    json out = {{"model", model}, {"created_at", Now()}};
    if (run->is_chat()) {
      out.update(piece(all->chat.content, all->chat.reasoning_content));
      if (!all->chat.tool_calls.empty()) {
        if (api == Api::kChat) {
          out["message"]["tool_calls"] = ToolCallsJson(all->chat.tool_calls);
        }
      }
    } else {
      out.update(piece(all->text, ""));
    }
    out["done"] = true;
    out["done_reason"] = DoneReason(all->finish);
    AddTimings(&out, start, admitted, all->prompt_tokens, all->completion_tokens,
               all->first_token_at.value_or(admitted));
    return SendJson(res, 200, out);
  }

  res.content_type = "application/x-ndjson";
  res.stream = [ctx, api, run, model, start, admitted, piece](StreamSink& sink) {
    bool ok = true;
    Clock::time_point first_token = admitted;
    bool seen_token = false;
    run->Pump(sink, [&](const Job::Update& u, const std::vector<engine::ChatDelta>& deltas) {
      if (!seen_token && u.completion_tokens > 0) {
        seen_token = true;
        first_token = Clock::now();
      }
      auto line = [&](json body) {
        json out = {{"model", model}, {"created_at", Now()}};
        out.update(body);
        out["done"] = false;
        SendNdjsonLine(sink, out, &ok);
      };
      if (run->is_chat()) {
        // Content and thinking stream as they come; tool calls are sent whole, once the
        // answer is complete, as Ollama sends them.
        for (const auto& d : deltas) {
          if (d.tool_index >= 0) continue;
          if (!d.content.empty() || !d.reasoning_content.empty()) {
            line(piece(d.content, d.reasoning_content));
          }
        }
      } else if (!u.text.empty()) {
        line(piece(u.text, ""));
      }
      if (!ok) return false;
      if (!u.done) return true;
      ctx.metrics->CountTokens(u.prompt_tokens, u.completion_tokens);
      if (!u.error.ok()) {
        SendNdjsonLine(sink, {{"error", u.error.message()}}, &ok);
        return ok;
      }
      const auto& calls = run->chat().tool_calls;
      if (!calls.empty()) {
        json body = piece("", "");
        if (api == Api::kChat) {
          body["message"]["tool_calls"] = ToolCallsJson(calls);
          line(body);
        }
      }
      json last = {{"model", model}, {"created_at", Now()}};
      last.update(piece("", ""));
      last["done"] = true;
      last["done_reason"] = DoneReason(u.finish);
      AddTimings(&last, start, admitted, u.prompt_tokens, u.completion_tokens, first_token);
      SendNdjsonLine(sink, last, &ok);
      return ok;
    });
  };
}

// Details Ollama's model lists carry, from what snug knows of the model.
json DetailsJson(const std::string& architecture, const std::string& quant) {
  return {{"parent_model", ""},
          {"format", "gguf"},
          {"family", architecture},
          {"families", architecture.empty() ? json(nullptr) : json::array({architecture})},
          {"parameter_size", ""},
          {"quantization_level", quant}};
}

// Every model a request may name, with what the store or the planner knows of it.
struct ListedModel {
  std::string name;
  uint64_t size = 0;
  std::string digest;
  std::string architecture;
  std::string quant;
  int64_t modified = 0;
};

std::vector<ListedModel> ListModels(const RouteContext& ctx) {
  std::map<std::string, StoredModel> stored;
  if (ctx.options->store.list) {
    if (auto list = ctx.options->store.list(); list.ok()) {
      for (auto& m : *list)
        stored[m.name] = m;
    }
  }
  std::vector<ListedModel> out;
  for (const auto& name : ctx.pool->KnownNames()) {
    ListedModel m;
    m.name = name;
    if (auto it = stored.find(name); it != stored.end()) {
      m.size = it->second.size;
      m.digest = it->second.sha256;
      m.architecture = it->second.architecture;
      m.quant = it->second.quant;
      m.modified = it->second.added;
    } else if (auto plan = ctx.pool->Plan(name, {}); plan.ok() && plan->detail.is_object()) {
      // A file given on the command line: its header says what it is.
      const json model = plan->detail.value("model", json::object());
      m.size = model.value("file_bytes", uint64_t{0});
      m.architecture = model.value("arch", std::string());
      std::error_code ec;
      const auto path = ctx.pool->PathOf(name);
      const auto mtime = std::filesystem::last_write_time(path.ok() ? *path : "", ec);
      if (path.ok() && !ec) {
        m.modified = std::chrono::duration_cast<std::chrono::seconds>(
                         std::chrono::file_clock::to_sys(mtime).time_since_epoch())
                         .count();
      }
    }
    out.push_back(std::move(m));
  }
  return out;
}

std::string Digest(const std::string& sha256) {
  return sha256.empty() ? "" : sha256;
}

}  // namespace

void AddOllamaRoutes(Router& router, const RouteContext& ctx) {
  // GET / ("Ollama is running" for clients probing the root) is in webui_routes.cpp, which
  // serves browsers the web page at the same path.
  router.Get("/api/version", [](HttpRequest&, HttpResponse& res) {
    SendJson(res, 200, {{"version", kOllamaApiVersion}});
  });

  router.Post("/api/chat",
              [ctx](HttpRequest& req, HttpResponse& res) { Generate(ctx, Api::kChat, req, res); });
  router.Post("/api/generate", [ctx](HttpRequest& req, HttpResponse& res) {
    Generate(ctx, Api::kGenerate, req, res);
  });

  // /api/embed: several inputs, truncated to the context unless told not to; /api/embeddings:
  // the older single-prompt form.
  auto embed = [ctx](HttpRequest& req, HttpResponse& res, bool legacy) {
    const auto start = Clock::now();
    WithJsonBody(
        req, res,
        [&](const RequestJson& body) {
          if (!body.is_object()) {
            return SendOllama(res, Status::InvalidArgument("the body must be an object"));
          }
          GenerationSpec spec;  // for model, keep_alive and options
          auto common = ReadCommon(body, &spec);
          if (!common.ok()) return SendOllama(res, common.status());
          std::vector<EmbeddingInput> inputs;
          bool truncate = true;
          if (legacy) {
            auto prompt = ReadString(body, "prompt", /*required=*/true);
            if (!prompt.ok()) return SendOllama(res, prompt.status());
            inputs.push_back({*prompt, {}, false});
          } else {
            const auto input = body.find("input");
            if (input == body.end() || input->is_null()) {
              return SendOllama(res, Status::InvalidArgument("'input' is required"));
            }
            if (input->is_string()) {
              inputs.push_back({input->get<std::string>(), {}, false});
            } else if (input->is_array()) {
              for (const auto& item : *input) {
                if (!item.is_string()) {
                  return SendOllama(res, Status::InvalidArgument(
                                             "'input' must be a string or a list of strings"));
                }
                inputs.push_back({item.get<std::string>(), {}, false});
              }
            } else {
              return SendOllama(
                  res, Status::InvalidArgument("'input' must be a string or a list of strings"));
            }
            if (const auto t = body.find("truncate"); t != body.end() && !t->is_null()) {
              if (!t->is_boolean()) {
                return SendOllama(res, Status::InvalidArgument("'truncate' must be true or false"));
              }
              truncate = t->get<bool>();
            }
            if (const auto d = body.find("dimensions"); d != body.end() && !d->is_null()) {
              return SendOllama(res, Status::InvalidArgument(
                                         "'dimensions' is not supported: snug returns the model's "
                                         "full embedding"));
            }
          }
          if (Status named = ResolveOllamaModel(ctx, &spec.params.model); !named.ok()) {
            return SendOllama(res, named);
          }
          // Nothing to embed (input [], or the old route's empty prompt) loads the model and
          // answers with no vectors, as Ollama does: clients preload embedding models this way.
          if (inputs.empty() || (legacy && inputs.front().text.empty())) {
            if (Status loaded = ctx.pool->Load(spec.params.model, spec.acquire); !loaded.ok()) {
              return SendOllama(res, loaded);
            }
            if (legacy) return SendJson(res, 200, {{"embedding", json::array()}});
            return SendJson(res, 200,
                            {{"model", spec.params.model},
                             {"embeddings", json::array()},
                             {"total_duration", Nanos(Clock::now() - start)},
                             {"load_duration", Nanos(Clock::now() - start)},
                             {"prompt_eval_count", 0}});
          }
          auto embedded = EmbedInputs(ctx, spec.params.model, inputs, truncate, spec.acquire);
          if (!embedded.ok()) return SendOllama(res, embedded.status());
          if (legacy) {
            return SendJson(res, 200, {{"embedding", std::move(embedded->vectors.front())}});
          }
          SendJson(res, 200,
                   {{"model", embedded->model},
                    {"embeddings", std::move(embedded->vectors)},
                    {"total_duration", Nanos(Clock::now() - start)},
                    {"load_duration", 0},
                    {"prompt_eval_count", embedded->prompt_tokens}});
        },
        Dialect::kOllama);
  };
  router.Post("/api/embed",
              [embed](HttpRequest& req, HttpResponse& res) { embed(req, res, false); });
  router.Post("/api/embeddings",
              [embed](HttpRequest& req, HttpResponse& res) { embed(req, res, true); });

  router.Get("/api/tags", [ctx](HttpRequest&, HttpResponse& res) {
    json models = json::array();
    for (const auto& m : ListModels(ctx)) {
      models.push_back({{"name", m.name},
                        {"model", m.name},
                        {"modified_at", UnixTime(m.modified)},
                        {"size", m.size},
                        {"digest", Digest(m.digest)},
                        {"details", DetailsJson(m.architecture, m.quant)}});
    }
    SendJson(res, 200, {{"models", std::move(models)}});
  });

  // Loaded models with snug's planned and resident figures beside Ollama's fields. `size` is
  // the planned peak (what the budget holds for the model); snug keeps weights in host memory.
  router.Get("/api/ps", [ctx](HttpRequest&, HttpResponse& res) {
    std::map<std::string, ListedModel> listed;
    for (auto& m : ListModels(ctx))
      listed[m.name] = m;
    json models = json::array();
    const auto now = std::chrono::system_clock::now();
    for (const auto& m : ctx.pool->Running()) {
      const ListedModel& about = listed[m.name];
      const std::string expires =
          m.expires_in_seconds < 0
              ? "9999-12-31T23:59:59.000000Z"  // never (keep-alive -1, or busy)
              : Rfc3339(now + std::chrono::seconds(m.expires_in_seconds));
      models.push_back({{"name", m.name},
                        {"model", m.name},
                        {"size", m.plan.peak_host_bytes},
                        {"size_vram", 0},
                        {"digest", Digest(about.digest)},
                        {"details", DetailsJson(about.architecture, about.quant)},
                        {"expires_at", expires},
                        {"context_length", m.plan.n_ctx},
                        {"snug",
                         {{"planned_bytes", m.plan.peak_host_bytes},
                          {"allocated_bytes", m.allocated_bytes},
                          {"kv_type", m.plan.kv_type},
                          {"slots", m.stats.slots},
                          {"active", m.stats.active},
                          {"kv_cells_used", m.stats.kv_cells_used},
                          {"kv_cells_total", m.stats.kv_cells_total}}}});
    }
    SendJson(res, 200,
             {{"models", std::move(models)},
              {"snug",
               {{"budget_bytes", ctx.pool->budget_bytes()},
                {"planned_bytes", ctx.pool->PlannedBytes()},
                {"resident_bytes", ProcessResidentBytes()}}}});
  });

  router.Post("/api/show", [ctx](HttpRequest& req, HttpResponse& res) {
    WithJsonBody(
        req, res,
        [&](const RequestJson& body) {
          if (!body.is_object()) {
            return SendOllama(res, Status::InvalidArgument("the body must be an object"));
          }
          auto model = ReadModelRef(body);
          if (!model.ok()) return SendOllama(res, model.status());
          std::string name = std::move(*model);
          if (Status named = ResolveOllamaModel(ctx, &name); !named.ok()) {
            return SendOllama(res, named);
          }
          auto plan = ctx.pool->Plan(name, {});
          if (!plan.ok()) {
            // A model that does not fit still has details to show; only unknown ones fail.
            if (plan.status().code() != Code::kDoesNotFit) return SendOllama(res, plan.status());
          }
          const json about = plan.ok() && plan->detail.is_object()
                                 ? plan->detail.value("model", json::object())
                                 : json::object();
          const std::string arch = about.value("arch", std::string());
          json info = {{"general.architecture", arch}};
          if (!arch.empty()) {
            info[arch + ".context_length"] = about.value("n_ctx_train", 0);
            info[arch + ".embedding_length"] = about.value("n_embd", 0);
            info[arch + ".block_count"] = about.value("n_layer", 0);
            if (about.value("n_expert", 0) > 0) {
              info[arch + ".expert_count"] = about.value("n_expert", 0);
              info[arch + ".expert_used_count"] = about.value("n_expert_used", 0);
            }
          }
          std::string quant;
          for (const auto& m : ListModels(ctx))
            if (m.name == name) quant = m.quant;
          json out = {{"license", ""},
                      {"modelfile", ""},
                      {"parameters", ""},
                      {"template", ""},
                      {"details", DetailsJson(arch, quant)},
                      {"model_info", std::move(info)},
                      {"modified_at", Now()}};
          // The template and what it can do are known once the model is loaded (its
          // tokenizer is read then, in a process the server survives).
          json capabilities = json::array({"completion"});
          for (const auto& running : ctx.pool->Running()) {
            if (running.name != name) continue;
            auto lease = ctx.pool->Acquire(name);
            if (!lease.ok()) break;
            const engine::ChatTemplates& templates = lease->scheduler().model().chat();
            out["template"] = templates.Source();
            const auto caps = templates.Describe().caps;
            if (auto tools = caps.find("supports_tools"); tools != caps.end() && tools->second) {
              capabilities.push_back("tools");
            }
            if (templates.Describe().supports_thinking) capabilities.push_back("thinking");
          }
          if (plan.ok()) {
            out["snug"] = {{"plan", plan->detail}};
          } else {
            out["snug"] = {{"fit", plan.status().message()}};
          }
          out["capabilities"] = std::move(capabilities);
          SendJson(res, 200, out);
        },
        Dialect::kOllama);
  });

  router.Delete("/api/delete", [ctx](HttpRequest& req, HttpResponse& res) {
    WithJsonBody(
        req, res,
        [&](const RequestJson& body) {
          if (!body.is_object()) {
            return SendOllama(res, Status::InvalidArgument("the body must be an object"));
          }
          auto model = ReadModelRef(body);
          if (!model.ok()) return SendOllama(res, model.status());
          std::string name = std::move(*model);
          if (Status named = ResolveOllamaModel(ctx, &name); !named.ok()) {
            return SendOllama(res, named);
          }
          if (!ctx.options->store.remove) {
            return SendOllama(res, Status::NotFound(fmt::format("model '{}' not found", name)));
          }
          // Only stored models are deleted: a file given on the command line is not snug's to
          // remove, and is left loaded.
          bool stored = false;
          if (ctx.options->store.list) {
            if (auto list = ctx.options->store.list(); list.ok()) {
              for (const auto& m : *list)
                stored = stored || m.name == name;
            }
          }
          if (!stored) {
            const auto names = ctx.pool->KnownNames();
            if (std::find(names.begin(), names.end(), name) != names.end()) {
              return SendOllama(
                  res, Status::NotFound(fmt::format(
                           "model '{}' is not in the store: it was given on the command line, "
                           "and snug deletes only the models it pulled or imported",
                           name)));
            }
            return SendOllama(res, Status::NotFound(fmt::format("model '{}' not found", name)));
          }
          // A loaded model is unloaded first; one serving requests is not deleted under them.
          Status unloaded = ctx.pool->Unload(name);
          if (!unloaded.ok() && unloaded.code() != Code::kNotFound) {
            return SendOllama(res, unloaded);
          }
          Status removed = ctx.options->store.remove(name);
          if (!removed.ok()) return SendOllama(res, removed);
          res.status = 200;
          res.SetContent("", "application/json");
        },
        Dialect::kOllama);
  });

  // Ollama's routes that build or publish models: snug's store is filled by pulls and
  // `snug import`, and a model's settings come with each request.
  auto unsupported = [](const char* what) {
    return
        [what](HttpRequest&, HttpResponse& res) { SendOllama(res, Status::Unimplemented(what)); };
  };
  router.Post("/api/copy", unsupported("copying models is not supported by snug: name a model "
                                       "when adding it ('snug import FILE --name NAME')"));
  router.Post("/api/create", unsupported("creating models (Modelfiles) is not supported by snug: "
                                         "add GGUF files with 'snug import' or /api/pull, and "
                                         "send settings such as the system prompt or options "
                                         "with each request"));
  router.Post("/api/push",
              unsupported("pushing models is not supported by snug: it pulls from the Hugging Face "
                          "hub and never uploads"));

  // A pull checks the fit and the disk first (a refusal is an HTTP error with the numbers),
  // then streams Ollama's progress lines as snug's store downloads.
  router.Post("/api/pull", [ctx](HttpRequest& req, HttpResponse& res) {
    auto body = ParseJsonBody(req.body);
    if (!body.ok()) return SendOllama(res, body.status());
    if (!body->is_object()) {
      return SendOllama(res, Status::InvalidArgument("the body must be an object"));
    }
    auto model = ReadModelRef(*body);
    if (!model.ok()) return SendOllama(res, model.status());
    const std::string ref = std::move(*model);
    bool stream = true;
    if (const auto it = body->find("stream"); it != body->end() && !it->is_null()) {
      if (!it->is_boolean()) {
        return SendOllama(res, Status::InvalidArgument("'stream' must be true or false"));
      }
      stream = it->get<bool>();
    }
    if (!ctx.options->store.prepare_pull) {
      return SendOllama(res, Status::Unimplemented("this server has no model store to pull into"));
    }
    auto prepared = ctx.options->store.prepare_pull(ref);
    if (!prepared.ok()) return SendOllama(res, prepared.status());
    auto pull = std::make_shared<PreparedPull>(std::move(*prepared));
    auto progress_json = [](const PullProgress& p) {
      json line = {{"status", p.status}};
      if (!p.digest.empty()) {
        line["digest"] = p.digest;
        line["total"] = p.total;
        line["completed"] = p.completed;
      }
      return line;
    };
    if (!stream) {
      Status pulled = pull->run([](const PullProgress&) {});
      if (!pulled.ok()) return SendOllama(res, pulled);
      return SendJson(res, 200, {{"status", "success"}});
    }
    res.content_type = "application/x-ndjson";
    res.stream = [pull, progress_json](StreamSink& sink) {
      bool ok = true;
      SendNdjsonLine(sink, {{"status", "pulling manifest"}}, &ok);
      Status pulled = pull->run([&](const PullProgress& p) {
        // A client that left does not stop the download: it completes for the next pull.
        SendNdjsonLine(sink, progress_json(p), &ok);
      });
      if (!pulled.ok()) {
        SendNdjsonLine(sink, {{"error", pulled.message()}}, &ok);
        return;
      }
      SendNdjsonLine(sink, {{"status", "success"}}, &ok);
    };
  });
}

}  // namespace snug::server
