#include "server/wire.h"

#include <fmt/format.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

namespace snug::server {
namespace {

using json = RequestJson;

Status Bad(std::string message) {
  return Status::InvalidArgument(std::move(message));
}

const char* TypeName(const json& value) {
  return value.type_name();
}

// Reads an optional number field within [lo, hi].
Status ReadNumber(const json& body, const char* key, double lo, double hi, float* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_number())
    return Bad(fmt::format("'{}' must be a number, not {}", key, TypeName(*it)));
  double v = it->get<double>();
  if (!std::isfinite(v) || v < lo || v > hi) {
    return Bad(fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, v));
  }
  *out = static_cast<float>(v);
  return Status::Ok();
}

Status ReadMaxTokens(const json& body, std::optional<int>* out) {
  for (const char* key : {"max_completion_tokens", "max_tokens"}) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) continue;
    if (!it->is_number_integer()) {
      return Bad(fmt::format("'{}' must be an integer, not {}", key, TypeName(*it)));
    }
    // Read as signed 64-bit first so negative and huge values are reported as such.
    int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)
                    ? INT64_MAX
                    : it->get<int64_t>();
    if (v < 1) return Bad(fmt::format("'{}' must be at least 1, got {}", key, v));
    if (v > kMaxTokensLimit) {
      return Bad(fmt::format("'{}' is {}, more than any context this server can hold ({})", key, v,
                             kMaxTokensLimit));
    }
    *out = static_cast<int>(v);
    return Status::Ok();
  }
  return Status::Ok();
}

Status ReadStop(const json& body, std::vector<std::string>* out) {
  auto it = body.find("stop");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (it->is_string()) {
    if (!it->get<std::string>().empty()) out->push_back(it->get<std::string>());
    return Status::Ok();
  }
  if (!it->is_array()) return Bad("'stop' must be a string or an array of strings");
  if (it->size() > 16) return Bad("'stop' may hold at most 16 strings");
  for (const auto& s : *it) {
    if (!s.is_string()) return Bad("'stop' must be a string or an array of strings");
    if (!s.get<std::string>().empty()) out->push_back(s.get<std::string>());
  }
  return Status::Ok();
}

// `optional`: a missing model is left empty, for the route to pick the server's only one.
Status ReadModel(const json& body, std::string* out, bool optional = false) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) {
    return optional ? Status::Ok() : Bad("'model' is required");
  }
  if (!it->is_string()) return Bad(fmt::format("'model' must be a string, not {}", TypeName(*it)));
  *out = it->get<std::string>();
  return ValidateModelName(*out);
}

// logit_bias: {"token id": bias}, as OpenAI sends it (ids as object keys).
Status ReadLogitBias(const json& body, std::vector<std::pair<int64_t, float>>* out) {
  auto it = body.find("logit_bias");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return Bad("'logit_bias' must be an object of token id -> bias");
  if (it->size() > 1024) return Bad("'logit_bias' may hold at most 1024 tokens");
  for (const auto& [key, value] : it->items()) {
    char* end = nullptr;
    errno = 0;
    const long long id = std::strtoll(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || errno != 0 || id < 0) {
      return Bad(fmt::format("'logit_bias' key '{}' is not a token id", key));
    }
    if (!value.is_number() || !std::isfinite(value.get<double>()) ||
        std::fabs(value.get<double>()) > 100.0) {
      return Bad(fmt::format("'logit_bias' for token {} must be a number from -100 to 100", key));
    }
    out->emplace_back(id, value.get<float>());
  }
  return Status::Ok();
}

Status ReadParams(const json& body, GenerationParams* p) {
  if (!body.is_object()) return Bad("the request body must be a JSON object");
  SNUG_RETURN_IF_ERROR(ReadModel(body, &p->model, /*optional=*/true));
  if (auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return Bad("'stream' must be true or false");
    p->stream = it->get<bool>();
  }
  if (auto it = body.find("stream_options"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("'stream_options' must be an object");
    if (auto u = it->find("include_usage"); u != it->end() && !u->is_null()) {
      if (!u->is_boolean()) return Bad("'stream_options.include_usage' must be true or false");
      p->include_usage = u->get<bool>();
    }
  }
  if (auto it = body.find("n"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() != 1) {
      return Bad("only 'n': 1 is supported (one choice per request)");
    }
  }
  SNUG_RETURN_IF_ERROR(ReadMaxTokens(body, &p->max_tokens));
  SNUG_RETURN_IF_ERROR(ReadNumber(body, "temperature", 0.0, 2.0, &p->temperature));
  SNUG_RETURN_IF_ERROR(ReadNumber(body, "top_p", 0.0, 1.0, &p->top_p));
  SNUG_RETURN_IF_ERROR(ReadNumber(body, "frequency_penalty", -2.0, 2.0, &p->frequency_penalty));
  SNUG_RETURN_IF_ERROR(ReadNumber(body, "presence_penalty", -2.0, 2.0, &p->presence_penalty));
  SNUG_RETURN_IF_ERROR(ReadLogitBias(body, &p->logit_bias));
  if (auto it = body.find("seed"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return Bad("'seed' must be an integer");
    // Any integer is accepted; llama.cpp seeds are 32-bit and 0xFFFFFFFF means "random".
    p->seed = static_cast<uint32_t>(it->get<int64_t>() & 0x7FFFFFFF);
  }
  return ReadStop(body, &p->stop);
}

// "content" is a string or an array of {"type":"text","text":...} parts.
Status ReadContent(const json& message, size_t index, std::string* out) {
  auto it = message.find("content");
  if (it == message.end() || it->is_null()) return Status::Ok();
  if (it->is_string()) {
    *out = it->get<std::string>();
    return Status::Ok();
  }
  if (it->is_array()) {
    for (const auto& part : *it) {
      if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") ||
          !part["text"].is_string()) {
        return Bad(fmt::format(
            "messages[{}].content parts must be {{\"type\":\"text\",\"text\":...}} (only text is "
            "supported)",
            index));
      }
      *out += part["text"].get<std::string>();
    }
    return Status::Ok();
  }
  return Bad(fmt::format("messages[{}].content must be a string or an array of text parts", index));
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

// An assistant message's tool_calls: [{"id", "type": "function", "function": {"name",
// "arguments"}}], arguments a JSON string (an object is accepted and serialized).
Status ReadToolCalls(const json& message, size_t index, std::vector<engine::ToolCall>* out) {
  auto it = message.find("tool_calls");
  if (it == message.end() || it->is_null()) return Status::Ok();
  const std::string where = fmt::format("messages[{}].tool_calls", index);
  if (!it->is_array()) return Bad(where + " must be an array");
  for (size_t k = 0; k < it->size(); ++k) {
    const json& call = (*it)[k];
    const json* function =
        call.is_object() && call.contains("function") ? &call["function"] : nullptr;
    if (function == nullptr || !function->is_object() || !function->contains("name") ||
        !(*function)["name"].is_string()) {
      return Bad(
          fmt::format("{}[{}] must be {{\"type\":\"function\",\"function\":{{\"name\":"
                      "...,\"arguments\":...}}}}",
                      where, k));
    }
    engine::ToolCall tc;
    tc.name = (*function)["name"].get<std::string>();
    if (auto id = call.find("id"); id != call.end() && id->is_string())
      tc.id = id->get<std::string>();
    auto args = function->find("arguments");
    if (args == function->end() || args->is_null()) {
      tc.arguments = "{}";
    } else if (args->is_string()) {
      tc.arguments = args->get<std::string>();
    } else if (args->is_object()) {
      tc.arguments = DumpJson(*args);
    } else {
      return Bad(fmt::format("{}[{}].function.arguments must be a JSON string", where, k));
    }
    out->push_back(std::move(tc));
  }
  return Status::Ok();
}

Status ReadMessages(const json& body, std::vector<engine::ChatMessage>* out) {
  auto it = body.find("messages");
  if (it == body.end() || !it->is_array()) return Bad("'messages' must be an array of messages");
  if (it->empty()) return Bad("'messages' must hold at least one message");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& m = (*it)[i];
    if (!m.is_object()) return Bad(fmt::format("messages[{}] must be an object", i));
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return Bad(fmt::format("messages[{}].role must be a string", i));
    }
    engine::ChatMessage msg;
    msg.role = role->get<std::string>();
    if (msg.role == "developer") msg.role = "system";
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" &&
        msg.role != "tool") {
      return Bad(fmt::format(
          "messages[{}].role '{}' is not one of system, developer, user, assistant, tool", i,
          msg.role));
    }
    SNUG_RETURN_IF_ERROR(ReadContent(m, i, &msg.content));
    if (msg.content.find('\0') != std::string::npos) {
      return Bad(fmt::format("messages[{}].content holds a NUL character", i));
    }
    if (msg.role == "assistant") {
      SNUG_RETURN_IF_ERROR(ReadToolCalls(m, i, &msg.tool_calls));
      if (auto r = m.find("reasoning_content"); r != m.end() && r->is_string()) {
        msg.reasoning_content = r->get<std::string>();
      }
    }
    if (msg.role == "tool") {
      auto id = m.find("tool_call_id");
      if (id == m.end() || !id->is_string() || id->get<std::string>().empty()) {
        return Bad(fmt::format(
            "messages[{}] is a tool result without 'tool_call_id': say which call it answers", i));
      }
      msg.tool_call_id = id->get<std::string>();
      if (auto name = m.find("name"); name != m.end() && name->is_string()) {
        msg.tool_name = name->get<std::string>();
      }
    }
    out->push_back(std::move(msg));
  }
  NameToolResults(out);
  return Status::Ok();
}

// tools: [{"type": "function", "function": {"name", "description"?, "parameters"?}}].
Status ReadTools(const json& body, std::vector<engine::ChatTool>* out) {
  auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Bad("'tools' must be an array of {\"type\":\"function\",...}");
  if (it->size() > 128) return Bad("'tools' may hold at most 128 tools");
  for (size_t i = 0; i < it->size(); ++i) {
    const json& tool = (*it)[i];
    if (!tool.is_object() || tool.value("type", "") != "function" || !tool.contains("function") ||
        !tool["function"].is_object()) {
      return Bad(fmt::format(
          "tools[{}] must be {{\"type\":\"function\",\"function\":{{\"name\":...}}}} (only "
          "function tools are supported)",
          i));
    }
    const json& f = tool["function"];
    auto name = f.find("name");
    if (name == f.end() || !name->is_string() || name->get<std::string>().empty()) {
      return Bad(fmt::format("tools[{}].function.name must be a non-empty string", i));
    }
    engine::ChatTool t;
    t.name = name->get<std::string>();
    if (auto d = f.find("description"); d != f.end() && !d->is_null()) {
      if (!d->is_string())
        return Bad(fmt::format("tools[{}].function.description must be a string", i));
      t.description = d->get<std::string>();
    }
    auto params = f.find("parameters");
    if (params == f.end() || params->is_null()) {
      t.parameters = R"({"type":"object","properties":{}})";
    } else if (!params->is_object()) {
      return Bad(fmt::format("tools[{}].function.parameters must be a JSON schema object, not {}",
                             i, TypeName(*params)));
    } else {
      t.parameters = DumpJson(*params);
    }
    for (const auto& other : *out) {
      if (other.name == t.name) return Bad(fmt::format("two tools are named '{}'", t.name));
    }
    out->push_back(std::move(t));
  }
  return Status::Ok();
}

Status ReadToolChoice(const json& body, engine::ChatInput* input) {
  auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (it->is_string()) {
    const std::string choice = it->get<std::string>();
    if (choice == "auto")
      input->tool_choice = engine::ToolChoice::kAuto;
    else if (choice == "none")
      input->tool_choice = engine::ToolChoice::kNone;
    else if (choice == "required")
      input->tool_choice = engine::ToolChoice::kRequired;
    else
      return Bad(fmt::format("'tool_choice' '{}' is not one of auto, none, required", choice));
    if (input->tool_choice == engine::ToolChoice::kRequired && input->tools.empty()) {
      return Bad("'tool_choice' is \"required\" but no 'tools' were given");
    }
    return Status::Ok();
  }
  const json* function = it->is_object() && it->value("type", "") == "function" &&
                                 it->contains("function") && (*it)["function"].is_object()
                             ? &(*it)["function"]
                             : nullptr;
  if (function == nullptr || !function->contains("name") || !(*function)["name"].is_string()) {
    return Bad(
        "'tool_choice' must be \"auto\", \"none\", \"required\" or "
        "{\"type\":\"function\",\"function\":{\"name\":...}}");
  }
  const std::string name = (*function)["name"].get<std::string>();
  for (const auto& tool : input->tools) {
    if (tool.name == name) {
      // A named choice is a required call among that one tool.
      input->tools = {tool};
      input->tool_choice = engine::ToolChoice::kRequired;
      return Status::Ok();
    }
  }
  return Bad(fmt::format("'tool_choice' names the function '{}', which is not in 'tools'", name));
}

// response_format: text | json_object (optionally with "schema") | json_schema {json_schema:
// {name, schema, strict}}. Returns the schema as JSON text, "" for plain text.
Status ReadResponseFormat(const json& body, std::string* schema) {
  auto it = body.find("response_format");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) {
    return Bad("'response_format' must be an object with a 'type'");
  }
  const std::string type = (*it)["type"].get<std::string>();
  if (type == "text") return Status::Ok();
  if (type == "json_object") {
    auto s = it->find("schema");
    *schema = s != it->end() && s->is_object() ? DumpJson(*s) : R"({"type":"object"})";
    return Status::Ok();
  }
  if (type == "json_schema") {
    auto wrapper = it->find("json_schema");
    if (wrapper == it->end() || !wrapper->is_object()) {
      return Bad("'response_format.json_schema' must be an object with a 'schema'");
    }
    auto s = wrapper->find("schema");
    if (s == wrapper->end() || s->is_null()) {
      *schema = R"({"type":"object"})";  // OpenAI allows a schema-less json_schema
    } else if (!s->is_object()) {
      return Bad(
          fmt::format("'response_format.json_schema.schema' must be a JSON schema object, "
                      "not {}",
                      TypeName(*s)));
    } else {
      *schema = DumpJson(*s);
    }
    return Status::Ok();
  }
  return Bad(fmt::format("'response_format' type '{}' is not one of text, json_object, json_schema",
                         type));
}

Status ReadGrammar(const json& body, std::string* grammar) {
  auto it = body.find("grammar");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) return Bad("'grammar' must be a string of GBNF rules");
  *grammar = it->get<std::string>();
  return Status::Ok();
}

}  // namespace

Status ValidateModelName(const std::string& name) {
  if (name.empty()) return Bad("'model' must not be empty");
  if (name.size() > 200) return Bad("'model' is longer than 200 characters");
  if (name.front() == '/' || name.front() == '.' || name.find("..") != std::string::npos) {
    return Bad(fmt::format("'{}' is not a valid model name (no paths)", name));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-' || c == ':' || c == '/';
    if (!ok) {
      return Bad(fmt::format(
          "'{}' is not a valid model name: use letters, digits and . _ - : / only", name));
    }
  }
  return Status::Ok();
}

Result<RequestJson> ParseJsonBody(const std::string& body) {
  if (body.empty()) return Bad("the request body is empty; send a JSON object");
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Bad("the request body is not valid JSON");
  if (!parsed.is_object()) return Bad("the request body must be a JSON object");
  return parsed;
}

Result<ChatRequest> ParseChatRequest(const RequestJson& body) {
  ChatRequest r;
  SNUG_RETURN_IF_ERROR(ReadParams(body, &r.params));
  for (const char* legacy : {"functions", "function_call"}) {
    if (auto t = body.find(legacy); t != body.end() && !t->is_null()) {
      return Bad(
          fmt::format("'{}' is OpenAI's retired form; send 'tools' and 'tool_choice'", legacy));
    }
  }
  bool logprobs = false;
  if (auto l = body.find("logprobs"); l != body.end() && !l->is_null()) {
    if (!l->is_boolean()) return Bad("'logprobs' must be true or false");
    logprobs = l->get<bool>();
  }
  if (auto t = body.find("top_logprobs"); t != body.end() && !t->is_null()) {
    if (!t->is_number_integer() || t->get<int64_t>() < 0 || t->get<int64_t>() > 20) {
      return Bad("'top_logprobs' must be an integer from 0 to 20");
    }
    if (!logprobs) return Bad("'top_logprobs' needs 'logprobs': true");
    r.params.logprobs = static_cast<int>(t->get<int64_t>());
  } else if (logprobs) {
    r.params.logprobs = 0;
  }
  engine::ChatInput& in = r.input;
  SNUG_RETURN_IF_ERROR(ReadMessages(body, &in.messages));
  SNUG_RETURN_IF_ERROR(ReadTools(body, &in.tools));
  SNUG_RETURN_IF_ERROR(ReadToolChoice(body, &in));
  if (auto p = body.find("parallel_tool_calls"); p != body.end() && !p->is_null()) {
    if (!p->is_boolean()) return Bad("'parallel_tool_calls' must be true or false");
    in.parallel_tool_calls = p->get<bool>();
  }
  SNUG_RETURN_IF_ERROR(ReadResponseFormat(body, &in.json_schema));
  SNUG_RETURN_IF_ERROR(ReadGrammar(body, &in.grammar));
  if (!in.grammar.empty() && !in.json_schema.empty()) {
    return Bad("send either 'response_format' with a schema or 'grammar', not both");
  }
  if (!in.grammar.empty() && !in.tools.empty() && in.tool_choice != engine::ToolChoice::kNone) {
    return Bad("'grammar' cannot be combined with 'tools': the tools' own grammar applies");
  }
  if (auto k = body.find("chat_template_kwargs"); k != body.end() && !k->is_null()) {
    if (!k->is_object()) return Bad("'chat_template_kwargs' must be an object");
    for (const auto& [key, value] : k->items()) {
      in.template_kwargs[key] = DumpJson(value);
      if (key == "enable_thinking") {
        if (!value.is_boolean())
          return Bad("'chat_template_kwargs.enable_thinking' must be true or false");
        in.enable_thinking = value.get<bool>();
      }
    }
  }
  if (auto e = body.find("reasoning_effort"); e != body.end() && !e->is_null()) {
    if (!e->is_string()) return Bad("'reasoning_effort' must be a string");
    if (e->get<std::string>() == "none") {
      in.enable_thinking = false;
    } else {
      in.template_kwargs["reasoning_effort"] = DumpJson(*e);
    }
  }
  return r;
}

Result<CompletionRequest> ParseCompletionRequest(const RequestJson& body) {
  CompletionRequest r;
  SNUG_RETURN_IF_ERROR(ReadParams(body, &r.params));
  if (auto l = body.find("logprobs"); l != body.end() && !l->is_null()) {
    if (!l->is_number_integer() || l->get<int64_t>() < 0 || l->get<int64_t>() > 5) {
      return Bad("'logprobs' must be an integer from 0 to 5");
    }
    r.params.logprobs = static_cast<int>(l->get<int64_t>());
  }
  auto it = body.find("prompt");
  if (it == body.end() || it->is_null()) return Bad("'prompt' is required");
  if (it->is_string()) {
    r.prompt = it->get<std::string>();
  } else if (it->is_array() && it->size() == 1 && (*it)[0].is_string()) {
    r.prompt = (*it)[0].get<std::string>();
  } else {
    return Bad("'prompt' must be a string (or an array holding one string)");
  }
  if (r.prompt.empty()) return Bad("'prompt' must not be empty");
  if (auto e = body.find("echo"); e != body.end() && e->is_boolean() && e->get<bool>()) {
    return Bad("'echo' is not supported");
  }
  SNUG_RETURN_IF_ERROR(ReadResponseFormat(body, &r.json_schema));
  SNUG_RETURN_IF_ERROR(ReadGrammar(body, &r.grammar));
  if (!r.grammar.empty() && !r.json_schema.empty()) {
    return Bad("send either 'response_format' with a schema or 'grammar', not both");
  }
  return r;
}

Result<EmbeddingRequest> ParseEmbeddingRequest(const RequestJson& body) {
  EmbeddingRequest r;
  SNUG_RETURN_IF_ERROR(ReadModel(body, &r.model, /*optional=*/true));
  auto it = body.find("input");
  if (it == body.end() || it->is_null()) return Bad("'input' is required");
  constexpr const char* kForms =
      "'input' must be a string, an array of strings, an array of token ids or an array of "
      "arrays of token ids, none empty";
  auto token_ids = [](const RequestJson& array, EmbeddingInput* input) {
    if (!array.is_array() || array.empty()) return false;
    for (const auto& t : array) {
      if (!t.is_number_integer() || t.get<int64_t>() < 0) return false;
      input->tokens.push_back(t.get<int64_t>());
    }
    input->is_tokens = true;
    return true;
  };
  if (it->is_string()) {
    r.inputs.push_back({it->get<std::string>(), {}, false});
  } else if (it->is_array() && !it->empty() && (*it)[0].is_number()) {
    EmbeddingInput input;
    if (!token_ids(*it, &input)) return Bad(kForms);
    r.inputs.push_back(std::move(input));
  } else if (it->is_array() && !it->empty()) {
    for (const auto& item : *it) {
      EmbeddingInput input;
      if (item.is_string()) {
        input.text = item.get<std::string>();
        if (input.text.empty()) return Bad(kForms);
      } else if (!token_ids(item, &input)) {
        return Bad(kForms);
      }
      r.inputs.push_back(std::move(input));
    }
  } else {
    return Bad(kForms);
  }
  for (const auto& input : r.inputs) {
    if (!input.is_tokens && input.text.empty()) return Bad(kForms);
  }
  if (auto f = body.find("encoding_format"); f != body.end() && !f->is_null()) {
    const std::string format = f->is_string() ? f->get<std::string>() : "";
    if (format != "float" && format != "base64") {
      return Bad("'encoding_format' must be \"float\" or \"base64\"");
    }
    r.base64 = format == "base64";
  }
  return r;
}

Result<PlanApiRequest> ParsePlanRequest(const RequestJson& body) {
  PlanApiRequest r;
  SNUG_RETURN_IF_ERROR(ReadModel(body, &r.model));
  for (auto [key, out] : {std::pair{"ctx", &r.ctx}, std::pair{"kv_type", &r.kv_type}}) {
    auto it = body.find(key);
    if (it == body.end() || it->is_null()) continue;
    if (it->is_number_integer() && it->get<int64_t>() > 0) {
      *out = std::to_string(it->get<int64_t>());
    } else if (it->is_string()) {
      *out = it->get<std::string>();
    } else {
      return Bad(fmt::format("'{}' must be a string or a positive integer", key));
    }
  }
  return r;
}

Result<std::string> ParseModelField(const RequestJson& body) {
  std::string model;
  SNUG_RETURN_IF_ERROR(ReadModel(body, &model));
  return model;
}

std::string EmbeddingBase64(const std::vector<float>& values) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string bytes;
  bytes.reserve(values.size() * 4);
  for (float v : values) {
    uint32_t bits = 0;
    std::memcpy(&bits, &v, sizeof bits);
    for (int i = 0; i < 4; ++i)  // little-endian whatever the host's order
      bytes.push_back(static_cast<char>((bits >> (8 * i)) & 0xFF));
  }
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  for (size_t i = 0; i < bytes.size(); i += 3) {
    const size_t n = std::min<size_t>(3, bytes.size() - i);
    uint32_t chunk = 0;
    for (size_t k = 0; k < 3; ++k)
      chunk = (chunk << 8) | (k < n ? static_cast<unsigned char>(bytes[i + k]) : 0u);
    for (size_t k = 0; k < 4; ++k)
      out.push_back(k <= n ? kAlphabet[(chunk >> (18 - 6 * k)) & 0x3F] : '=');
  }
  return out;
}

std::string NewId(const std::string& prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}-{:016x}", prefix, rng());
}

int64_t UnixNow() {
  return std::chrono::duration_cast<std::chrono::seconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

void NameToolResults(std::vector<engine::ChatMessage>* messages) {
  for (auto& msg : *messages) {
    if (msg.role != "tool" || !msg.tool_name.empty()) continue;
    for (const auto& other : *messages) {
      for (const auto& call : other.tool_calls) {
        if (call.id == msg.tool_call_id) msg.tool_name = call.name;
      }
    }
  }
}

}  // namespace snug::server
