#include "server/wire.h"

#include <fmt/format.h>

#include <chrono>
#include <cmath>
#include <random>

namespace snug::server {
namespace {

using nlohmann::json;

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

Status ReadModel(const json& body, std::string* out) {
  auto it = body.find("model");
  if (it == body.end() || it->is_null()) return Bad("'model' is required");
  if (!it->is_string()) return Bad(fmt::format("'model' must be a string, not {}", TypeName(*it)));
  *out = it->get<std::string>();
  return ValidateModelName(*out);
}

Status ReadParams(const json& body, GenerationParams* p) {
  if (!body.is_object()) return Bad("the request body must be a JSON object");
  SNUG_RETURN_IF_ERROR(ReadModel(body, &p->model));
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

Result<nlohmann::json> ParseJsonBody(const std::string& body) {
  if (body.empty()) return Bad("the request body is empty; send a JSON object");
  json parsed = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (parsed.is_discarded()) return Bad("the request body is not valid JSON");
  if (!parsed.is_object()) return Bad("the request body must be a JSON object");
  return parsed;
}

Result<ChatRequest> ParseChatRequest(const nlohmann::json& body) {
  ChatRequest r;
  SNUG_RETURN_IF_ERROR(ReadParams(body, &r.params));
  // Silently answering without what these ask for would mislead the client.
  for (const char* unsupported : {"tools", "functions", "tool_choice", "function_call"}) {
    if (auto t = body.find(unsupported); t != body.end() && !t->is_null() &&
                                         !(t->is_array() && t->empty()) &&
                                         !(t->is_string() && t->get<std::string>() == "none")) {
      return Bad(fmt::format("'{}' is not supported: snug does not call tools", unsupported));
    }
  }
  if (auto f = body.find("response_format"); f != body.end() && !f->is_null()) {
    if (!f->is_object() || f->value("type", "") != "text") {
      return Bad("only 'response_format': {\"type\": \"text\"} is supported (no JSON mode)");
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
    Message msg;
    msg.role = role->get<std::string>();
    if (msg.role == "developer") msg.role = "system";
    if (msg.role != "system" && msg.role != "user" && msg.role != "assistant" &&
        msg.role != "tool") {
      return Bad(fmt::format(
          "messages[{}].role '{}' is not one of system, developer, user, assistant, tool", i,
          msg.role));
    }
    SNUG_RETURN_IF_ERROR(ReadContent(m, i, &msg.content));
    r.messages.push_back(std::move(msg));
  }
  return r;
}

Result<CompletionRequest> ParseCompletionRequest(const nlohmann::json& body) {
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
  return r;
}

Result<EmbeddingRequest> ParseEmbeddingRequest(const nlohmann::json& body) {
  EmbeddingRequest r;
  SNUG_RETURN_IF_ERROR(ReadModel(body, &r.model));
  auto it = body.find("input");
  if (it == body.end() || it->is_null()) return Bad("'input' is required");
  constexpr const char* kForms =
      "'input' must be a string, an array of strings, an array of token ids or an array of "
      "arrays of token ids, none empty";
  auto token_ids = [](const nlohmann::json& array, EmbeddingInput* input) {
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
    if (!f->is_string() || f->get<std::string>() != "float") {
      return Bad("only 'encoding_format': \"float\" is supported");
    }
  }
  return r;
}

Result<PlanApiRequest> ParsePlanRequest(const nlohmann::json& body) {
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

Result<std::string> ParseModelField(const nlohmann::json& body) {
  std::string model;
  SNUG_RETURN_IF_ERROR(ReadModel(body, &model));
  return model;
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

}  // namespace snug::server
