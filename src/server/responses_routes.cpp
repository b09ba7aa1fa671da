// OpenAI's Responses API on the shared generation core: POST /v1/responses turns `input` items
// (messages, function calls and their outputs) and `instructions` into a chat, and writes the
// answer back as output items (reasoning, message, function calls), whole or as typed SSE events.
// snug keeps nothing unless a request says "store": true; those responses live in a bounded
// in-memory store (ResponseStore) for previous_response_id, GET and DELETE /v1/responses/{id}.
#include <fmt/format.h>

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "server/generation.h"
#include "server/respond.h"
#include "server/routes.h"
#include "server/wire.h"

namespace snug::server {
namespace {

using nlohmann::json;
using In = RequestJson;

Status Bad(std::string message) {
  return Status::InvalidArgument(std::move(message));
}

// OpenAI's id style ("resp_", "msg_", "fc_", "rs_", "call_" and hex); clients only compare them.
std::string NewItemId(const char* prefix) {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return fmt::format("{}_{:016x}{:016x}", prefix, rng(), rng());
}

// The string at `key`, or "" when absent or not a string (json::value would throw on a number).
std::string StringField(const In& object, const char* key) {
  auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : std::string();
}

engine::ChatMessage Message(std::string role, std::string content = "") {
  engine::ChatMessage message;
  message.role = std::move(role);
  message.content = std::move(content);
  return message;
}

bool Present(const In& body, const char* key) {
  auto it = body.find(key);
  return it != body.end() && !it->is_null();
}

// ---- The store -------------------------------------------------------------------------------

struct StoredResponse {
  json response;     // as GET /v1/responses/{id} returns it
  json input_items;  // this request's input, for GET /v1/responses/{id}/input_items
  // The conversation a follow-up continues: the previous responses', this input, this output.
  // Instructions are not part of it (OpenAI does not carry them over either).
  std::vector<engine::ChatMessage> conversation;
  size_t bytes = 0;
};

// The last kMaxResponses stored responses, at most kMaxBytes together (least recently used
// evicted first). Each keeps its whole conversation, so a long chain of follow-ups costs the
// square of its length: the byte bound is what keeps that in check.
class ResponseStore {
 public:
  static constexpr size_t kMaxResponses = 256;
  static constexpr size_t kMaxBytes = size_t{32} << 20;

  // False when this one response alone exceeds the byte bound (then it is not kept).
  bool Put(const std::string& id, StoredResponse response) {
    response.bytes = Dump(response.response).size() + Dump(response.input_items).size();
    for (const auto& m : response.conversation) {
      response.bytes += m.content.size() + m.reasoning_content.size() + 64;
      for (const auto& call : m.tool_calls)
        response.bytes += call.id.size() + call.name.size() + call.arguments.size();
    }
    if (response.bytes > kMaxBytes) return false;
    std::lock_guard<std::mutex> lock(mu_);
    EraseLocked(id);
    bytes_ += response.bytes;
    lru_.emplace_front(id, std::make_shared<const StoredResponse>(std::move(response)));
    index_[id] = lru_.begin();
    while (lru_.size() > kMaxResponses || bytes_ > kMaxBytes)
      EraseLocked(lru_.back().first);
    return true;
  }

  std::shared_ptr<const StoredResponse> Get(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(id);
    if (it == index_.end()) return nullptr;
    lru_.splice(lru_.begin(), lru_, it->second);
    return it->second->second;
  }

  bool Erase(const std::string& id) {
    std::lock_guard<std::mutex> lock(mu_);
    return EraseLocked(id);
  }

 private:
  using Entry = std::pair<std::string, std::shared_ptr<const StoredResponse>>;
  bool EraseLocked(const std::string& id) {
    auto it = index_.find(id);
    if (it == index_.end()) return false;
    bytes_ -= it->second->second->bytes;
    lru_.erase(it->second);
    index_.erase(it);
    return true;
  }

  std::mutex mu_;
  std::list<Entry> lru_;  // most recently used first
  std::unordered_map<std::string, std::list<Entry>::iterator> index_;
  size_t bytes_ = 0;
};

ResponseStore& Store() {
  static ResponseStore store;
  return store;
}

// 404 for a response id the store does not hold (not "model_not_found", which a NotFound
// Status would say).
void SendNotStored(HttpResponse& res, const std::string& id) {
  ApiError error = ErrorFromStatus(Status::NotFound(fmt::format(
      "response '{}' is not stored: snug keeps only responses created with \"store\": true, the "
      "last {} of them (at most {} MiB) while the server runs",
      id, ResponseStore::kMaxResponses, ResponseStore::kMaxBytes >> 20)));
  error.code = "response_not_found";
  SendError(res, error);
}

// ---- The request -----------------------------------------------------------------------------

struct ResponsesRequest {
  GenerationParams params;
  engine::ChatInput chat;                  // tools, tool_choice, format; messages come later
  std::string instructions;                // "" = none
  std::vector<engine::ChatMessage> input;  // this request's input as chat messages
  json input_items = json::array();        // the same, as items with ids (input_items listing)
  std::string previous_response_id;
  bool store = false;
  json echo = json::object();  // request fields the response object repeats
};

// Text parts of a message or a function_call_output: input_text, output_text, refusal.
Status ReadParts(const In& content, const std::string& where, std::string* out) {
  if (content.is_string()) {
    *out = content.get<std::string>();
    return Status::Ok();
  }
  if (!content.is_array()) {
    return Bad(fmt::format("'{}' must be a string or an array of input_text parts, not {}", where,
                           content.type_name()));
  }
  for (size_t k = 0; k < content.size(); ++k) {
    const In& part = content[k];
    const std::string type = part.is_object() ? StringField(part, "type") : "";
    const char* key = type == "refusal" ? "refusal" : "text";
    if (type == "input_text" || type == "output_text" || type == "refusal") {
      auto text = part.find(key);
      if (text == part.end() || !text->is_string()) {
        return Bad(fmt::format("'{}[{}].{}' must be a string", where, k, key));
      }
      *out += text->get<std::string>();
    } else if (type == "input_image" || type == "input_file" || type == "input_audio") {
      return Bad(fmt::format(
          "'{}[{}]' is an {} part, which is not supported: snug serves text models, so input "
          "holds text only",
          where, k, type));
    } else {
      return Bad(fmt::format(
          "'{}[{}]' must be a {{\"type\":\"input_text\",\"text\":...}} part (or output_text)",
          where, k));
    }
  }
  return Status::Ok();
}

Status ReadInput(const In& body, ResponsesRequest* r) {
  auto it = body.find("input");
  if (it == body.end() || it->is_null()) {
    return Bad("'input' is required: a string or an array of input items");
  }
  auto& messages = r->input;
  if (it->is_string()) {
    messages.push_back(Message("user", it->get<std::string>()));
    r->input_items.push_back(
        {{"id", NewItemId("msg")},
         {"type", "message"},
         {"role", "user"},
         {"status", "completed"},
         {"content", json::array({{{"type", "input_text"}, {"text", messages.back().content}}})}});
    return Status::Ok();
  }
  if (!it->is_array() || it->empty()) {
    return Bad(fmt::format("'input' must be a string or a non-empty array of input items, not {}",
                           it->is_array() ? "an empty array" : it->type_name()));
  }
  std::string reasoning;  // a reasoning item's text, for the assistant turn that follows it
  auto assistant_turn = [&]() -> engine::ChatMessage& {
    if (messages.empty() || messages.back().role != "assistant") {
      messages.push_back(Message("assistant"));
    }
    if (!reasoning.empty()) messages.back().reasoning_content = std::move(reasoning);
    reasoning.clear();
    return messages.back();
  };
  for (size_t i = 0; i < it->size(); ++i) {
    const In& item = (*it)[i];
    const std::string where = fmt::format("input[{}]", i);
    if (!item.is_object()) return Bad(fmt::format("'{}' must be an object", where));
    if (Present(item, "type") && !item["type"].is_string()) {
      return Bad(fmt::format("'{}.type' must be a string", where));
    }
    // Messages may leave out "type" (EasyInputMessage).
    const std::string type = Present(item, "type") ? StringField(item, "type") : "message";
    json stored = json(item);
    if (!item.contains("id") || !item["id"].is_string()) {
      stored["id"] = NewItemId(type == "function_call_output" ? "fco" : "msg");
    }
    stored["type"] = type;
    if (type == "message") {
      const std::string role = StringField(item, "role");
      if (role != "user" && role != "assistant" && role != "system" && role != "developer") {
        return Bad(
            fmt::format("'{}.role' must be one of user, assistant, system, developer", where));
      }
      std::string text;
      if (!Present(item, "content")) return Bad(fmt::format("'{}.content' is required", where));
      SNUG_RETURN_IF_ERROR(ReadParts(item["content"], where + ".content", &text));
      if (text.find('\0') != std::string::npos) {
        return Bad(fmt::format("'{}.content' holds a NUL character", where));
      }
      if (role == "assistant") {
        engine::ChatMessage& turn = assistant_turn();
        // A second message of the same turn (rare) continues its text.
        turn.content += text;
      } else {
        messages.push_back(Message(role == "developer" ? "system" : role, text));
        reasoning.clear();  // thoughts belong to the assistant turn right after them
      }
    } else if (type == "function_call") {
      engine::ToolCall call;
      call.id = StringField(item, "call_id");
      call.name = StringField(item, "name");
      if (call.id.empty())
        return Bad(fmt::format("'{}.call_id' must be a non-empty string", where));
      if (call.name.empty()) return Bad(fmt::format("'{}.name' must be a non-empty string", where));
      auto args = item.find("arguments");
      if (args == item.end() || args->is_null()) {
        call.arguments = "{}";
      } else if (args->is_string()) {
        call.arguments = args->get<std::string>();
      } else if (args->is_object()) {
        call.arguments = Dump(json(*args));
      } else {
        return Bad(fmt::format("'{}.arguments' must be a string of JSON", where));
      }
      assistant_turn().tool_calls.push_back(std::move(call));
    } else if (type == "function_call_output") {
      engine::ChatMessage result = Message("tool");
      result.tool_call_id = StringField(item, "call_id");
      if (result.tool_call_id.empty()) {
        return Bad(
            fmt::format("'{}.call_id' must be a non-empty string: the call it answers", where));
      }
      if (!Present(item, "output")) return Bad(fmt::format("'{}.output' is required", where));
      SNUG_RETURN_IF_ERROR(ReadParts(item["output"], where + ".output", &result.content));
      if (result.content.find('\0') != std::string::npos) {
        return Bad(fmt::format("'{}.output' holds a NUL character", where));
      }
      messages.push_back(std::move(result));
      reasoning.clear();
    } else if (type == "reasoning") {
      // Earlier thoughts sent back: kept for templates that show them, else dropped.
      if (auto content = item.find("content"); content != item.end() && content->is_array()) {
        for (const auto& part : *content) {
          if (part.is_object()) reasoning += StringField(part, "text");
        }
      }
    } else if (type == "item_reference") {
      return Bad(
          fmt::format("'{}' is an item_reference, which is not supported: send the item itself, or "
                      "previous_response_id with a stored response",
                      where));
    } else {
      return Bad(
          fmt::format("'{}.type' '{}' is not supported: input items are message, function_call, "
                      "function_call_output and reasoning",
                      where, type));
    }
    r->input_items.push_back(std::move(stored));
  }
  return Status::Ok();
}

// tools: [{"type":"function","name","description"?,"parameters"?,"strict"?}] (flat, unlike chat).
Status ReadTools(const In& body, ResponsesRequest* r) {
  r->echo["tools"] = json::array();
  auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Bad("'tools' must be an array of {\"type\":\"function\",...}");
  if (it->size() > 128) return Bad("'tools' may hold at most 128 tools");
  for (size_t i = 0; i < it->size(); ++i) {
    const In& tool = (*it)[i];
    if (!tool.is_object() || !tool.contains("type") || !tool["type"].is_string()) {
      return Bad(fmt::format("'tools[{}]' must be an object with a 'type'", i));
    }
    const std::string type = tool["type"].get<std::string>();
    if (type != "function") {
      return Bad(fmt::format(
          "'tools[{}]' has type '{}', which snug does not provide: only function tools are "
          "supported",
          i, type));
    }
    engine::ChatTool t;
    t.name = StringField(tool, "name");
    if (t.name.empty()) return Bad(fmt::format("'tools[{}].name' must be a non-empty string", i));
    if (Present(tool, "description")) {
      if (!tool["description"].is_string()) {
        return Bad(fmt::format("'tools[{}].description' must be a string", i));
      }
      t.description = tool["description"].get<std::string>();
    }
    json parameters = {{"type", "object"}, {"properties", json::object()}};
    if (Present(tool, "parameters")) {
      if (!tool["parameters"].is_object()) {
        return Bad(fmt::format("'tools[{}].parameters' must be a JSON schema object, not {}", i,
                               tool["parameters"].type_name()));
      }
      // Dumped from the ordered form: the schema's key order is the order the model writes.
      t.parameters = tool["parameters"].dump(-1, ' ', false, In::error_handler_t::replace);
      parameters = json(tool["parameters"]);
    } else {
      t.parameters = Dump(parameters);
    }
    for (const auto& other : r->chat.tools) {
      if (other.name == t.name) return Bad(fmt::format("two tools are named '{}'", t.name));
    }
    bool strict = true;  // OpenAI's default for function tools in this API
    if (Present(tool, "strict")) {
      if (!tool["strict"].is_boolean()) {
        return Bad(fmt::format("'tools[{}].strict' must be true or false", i));
      }
      strict = tool["strict"].get<bool>();
    }
    r->echo["tools"].push_back(
        {{"type", "function"},
         {"name", t.name},
         {"description", t.description.empty() ? json(nullptr) : json(t.description)},
         {"parameters", std::move(parameters)},
         {"strict", strict}});
    r->chat.tools.push_back(std::move(t));
  }
  return Status::Ok();
}

// Keeps only the named tools; false when one is not among them.
bool KeepTools(engine::ChatInput* chat, const std::vector<std::string>& names,
               std::string* missing) {
  std::vector<engine::ChatTool> kept;
  for (const auto& name : names) {
    bool found = false;
    for (const auto& tool : chat->tools) {
      if (tool.name == name) {
        kept.push_back(tool);
        found = true;
      }
    }
    if (!found) {
      *missing = name;
      return false;
    }
  }
  chat->tools = std::move(kept);
  return true;
}

Status ReadToolChoice(const In& body, ResponsesRequest* r) {
  r->echo["tool_choice"] = "auto";
  auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return Status::Ok();
  engine::ChatInput& chat = r->chat;
  r->echo["tool_choice"] = json(*it);
  std::string missing;
  if (it->is_string()) {
    const std::string choice = it->get<std::string>();
    if (choice == "auto") {
      chat.tool_choice = engine::ToolChoice::kAuto;
    } else if (choice == "none") {
      chat.tool_choice = engine::ToolChoice::kNone;
    } else if (choice == "required") {
      if (chat.tools.empty()) return Bad("'tool_choice' is \"required\" but no 'tools' were given");
      chat.tool_choice = engine::ToolChoice::kRequired;
    } else {
      return Bad(fmt::format("'tool_choice' '{}' is not one of auto, none, required", choice));
    }
    return Status::Ok();
  }
  const std::string type = it->is_object() ? StringField(*it, "type") : "";
  if (type == "function") {
    const std::string name = StringField(*it, "name");
    if (name.empty()) return Bad("'tool_choice.name' must name a function of 'tools'");
    if (!KeepTools(&chat, {name}, &missing)) {
      return Bad(
          fmt::format("'tool_choice' names the function '{}', which is not in 'tools'", name));
    }
    chat.tool_choice = engine::ToolChoice::kRequired;  // a named choice is a required call
    return Status::Ok();
  }
  if (type == "allowed_tools") {
    const std::string mode = StringField(*it, "mode");
    if (mode != "auto" && mode != "required") {
      return Bad("'tool_choice.mode' must be \"auto\" or \"required\"");
    }
    auto tools = it->find("tools");
    if (tools == it->end() || !tools->is_array() || tools->empty()) {
      return Bad(
          "'tool_choice.tools' must be a non-empty array of {\"type\":\"function\",\"name\"}");
    }
    std::vector<std::string> names;
    for (const auto& tool : *tools) {
      if (!tool.is_object() || StringField(tool, "type") != "function" ||
          StringField(tool, "name").empty()) {
        return Bad("'tool_choice.tools' may only list {\"type\":\"function\",\"name\":...}");
      }
      names.push_back(StringField(tool, "name"));
    }
    if (!KeepTools(&chat, names, &missing)) {
      return Bad(fmt::format("'tool_choice.tools' names the function '{}', which is not in 'tools'",
                             missing));
    }
    chat.tool_choice =
        mode == "required" ? engine::ToolChoice::kRequired : engine::ToolChoice::kAuto;
    return Status::Ok();
  }
  if (!type.empty()) {
    return Bad(
        fmt::format("'tool_choice' type '{}' is not supported: only function tools are", type));
  }
  return Bad(
      "'tool_choice' must be \"auto\", \"none\", \"required\" or "
      "{\"type\":\"function\",\"name\":...}");
}

// text.format: {"type":"text"} | {"type":"json_object"} | {"type":"json_schema","schema",...}.
Status ReadTextFormat(const In& body, ResponsesRequest* r) {
  r->echo["text"] = {{"format", {{"type", "text"}}}};
  auto it = body.find("text");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_object()) return Bad("'text' must be an object such as {\"format\":{...}}");
  r->echo["text"] = json(*it);
  auto format = it->find("format");
  if (format == it->end() || format->is_null()) {
    r->echo["text"]["format"] = {{"type", "text"}};
    return Status::Ok();
  }
  if (!format->is_object() || StringField(*format, "type").empty()) {
    return Bad("'text.format' must be an object with a 'type': text, json_object or json_schema");
  }
  const std::string type = StringField(*format, "type");
  if (type == "text") return Status::Ok();
  if (type == "json_object") {
    r->chat.json_schema = R"({"type":"object"})";
    return Status::Ok();
  }
  if (type != "json_schema") {
    return Bad(
        fmt::format("'text.format.type' '{}' is not one of text, json_object, json_schema", type));
  }
  if (Present(*format, "name") && !(*format)["name"].is_string()) {
    return Bad("'text.format.name' must be a string");
  }
  auto schema = format->find("schema");
  if (schema == format->end() || !schema->is_object()) {
    return Bad("'text.format.schema' must be a JSON schema object");
  }
  r->chat.json_schema = schema->dump(-1, ' ', false, In::error_handler_t::replace);
  return Status::Ok();
}

Status ReadNumber(const In& body, const char* key, double lo, double hi, float* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_number())
    return Bad(fmt::format("'{}' must be a number, not {}", key, it->type_name()));
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) {
    return Bad(fmt::format("'{}' must be between {} and {}, got {}", key, lo, hi, v));
  }
  *out = static_cast<float>(v);
  return Status::Ok();
}

Status ReadBool(const In& body, const char* key, std::optional<bool>* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_boolean()) return Bad(fmt::format("'{}' must be true or false", key));
  *out = it->get<bool>();
  return Status::Ok();
}

Result<ResponsesRequest> ParseResponsesRequest(const In& body) {
  ResponsesRequest r;
  GenerationParams& p = r.params;
  if (Present(body, "model")) {
    if (!body["model"].is_string()) {
      return Bad(fmt::format("'model' must be a string, not {}", body["model"].type_name()));
    }
    p.model = body["model"].get<std::string>();
    SNUG_RETURN_IF_ERROR(ValidateModelName(p.model));
  }
  std::optional<bool> flag;
  SNUG_RETURN_IF_ERROR(ReadBool(body, "stream", &flag));
  p.stream = flag.value_or(false);
  flag.reset();
  SNUG_RETURN_IF_ERROR(ReadBool(body, "store", &flag));
  // OpenAI stores by default; snug keeps nothing unless asked, so the echo says what was done.
  r.store = flag.value_or(false);
  r.echo["store"] = r.store;
  flag.reset();
  SNUG_RETURN_IF_ERROR(ReadBool(body, "background", &flag));
  if (flag.value_or(false)) {
    return Bad("'background' responses are not supported: send the request and wait, or stream");
  }
  r.echo["background"] = false;
  for (const char* unsupported : {"conversation", "prompt"}) {
    if (Present(body, unsupported)) {
      return Bad(fmt::format("'{}' is not supported by snug's Responses API", unsupported));
    }
  }
  if (auto it = body.find("max_output_tokens"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return Bad("'max_output_tokens' must be an integer");
    const int64_t v = it->is_number_unsigned() && it->get<uint64_t>() > uint64_t(INT64_MAX)
                          ? INT64_MAX
                          : it->get<int64_t>();
    if (v < 1 || v > kMaxTokensLimit) {
      return Bad(
          fmt::format("'max_output_tokens' must be from 1 to {}, got {}", kMaxTokensLimit, v));
    }
    p.max_tokens = static_cast<int>(v);
  }
  r.echo["max_output_tokens"] = p.max_tokens ? json(*p.max_tokens) : json(nullptr);
  SNUG_RETURN_IF_ERROR(ReadNumber(body, "temperature", 0.0, 2.0, &p.temperature));
  SNUG_RETURN_IF_ERROR(ReadNumber(body, "top_p", 0.0, 1.0, &p.top_p));
  r.echo["temperature"] = p.temperature;
  r.echo["top_p"] = p.top_p;
  // Extensions beside OpenAI's fields, as chat completions take them: a seed for repeatable
  // sampling and logit_bias ({"token id": -100..100}; ids are checked once the model is known).
  if (auto it = body.find("seed"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) return Bad("'seed' must be an integer");
    p.seed = static_cast<uint32_t>(it->get<int64_t>() & 0x7FFFFFFF);
  }
  if (auto it = body.find("logit_bias"); it != body.end() && !it->is_null()) {
    if (!it->is_object() || it->size() > 1024) {
      return Bad("'logit_bias' must be an object of at most 1024 token id -> bias entries");
    }
    for (const auto& [key, value] : it->items()) {
      int64_t id = -1;
      if (!key.empty() && key.size() <= 9 &&
          key.find_first_not_of("0123456789") == std::string::npos) {
        id = std::stoll(key);
      }
      if (id < 0) return Bad(fmt::format("'logit_bias' key '{}' is not a token id", key));
      if (!value.is_number() || !(value.get<double>() >= -100.0 && value.get<double>() <= 100.0)) {
        return Bad(fmt::format("'logit_bias' for token {} must be a number from -100 to 100", key));
      }
      p.logit_bias.emplace_back(id, value.get<float>());
    }
  }
  if (auto it = body.find("top_logprobs"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer() || it->get<int64_t>() != 0) {
      return Bad("'top_logprobs' is not supported by snug's Responses API (use chat completions)");
    }
  }
  if (Present(body, "instructions")) {
    if (!body["instructions"].is_string()) return Bad("'instructions' must be a string");
    r.instructions = body["instructions"].get<std::string>();
  }
  r.echo["instructions"] = r.instructions.empty() ? json(nullptr) : json(r.instructions);
  if (Present(body, "previous_response_id")) {
    if (!body["previous_response_id"].is_string() ||
        body["previous_response_id"].get<std::string>().empty()) {
      return Bad("'previous_response_id' must be a response id string");
    }
    r.previous_response_id = body["previous_response_id"].get<std::string>();
  }
  r.echo["previous_response_id"] =
      r.previous_response_id.empty() ? json(nullptr) : json(r.previous_response_id);
  if (Present(body, "truncation")) {
    const std::string truncation = StringField(body, "truncation");
    if (truncation == "auto") {
      // Dropping the start of a conversation silently would change its meaning; an over-long
      // input is answered with 400 instead, as "disabled" does.
      return Bad(
          "'truncation' \"auto\" is not supported: snug answers an input longer than the context "
          "with an error (\"disabled\")");
    }
    if (truncation != "disabled") return Bad("'truncation' must be \"disabled\"");
  }
  r.echo["truncation"] = "disabled";
  if (Present(body, "metadata")) {
    const In& metadata = body["metadata"];
    if (!metadata.is_object() || metadata.size() > 16) {
      return Bad("'metadata' must be an object of at most 16 string values");
    }
    for (const auto& [key, value] : metadata.items()) {
      if (!value.is_string()) return Bad(fmt::format("'metadata.{}' must be a string", key));
    }
    r.echo["metadata"] = json(metadata);
  } else {
    r.echo["metadata"] = json::object();
  }
  if (Present(body, "user")) {
    if (!body["user"].is_string()) return Bad("'user' must be a string");
    r.echo["user"] = body["user"].get<std::string>();
  }
  r.echo["reasoning"] = {{"effort", nullptr}, {"summary", nullptr}};
  if (Present(body, "reasoning")) {
    const In& reasoning = body["reasoning"];
    if (!reasoning.is_object())
      return Bad("'reasoning' must be an object such as {\"effort\":...}");
    if (Present(reasoning, "effort")) {
      if (!reasoning["effort"].is_string()) return Bad("'reasoning.effort' must be a string");
      const std::string effort = reasoning["effort"].get<std::string>();
      // As chat completions' reasoning_effort: "none" turns thinking off, the rest goes to
      // templates that read it (gpt-oss); other models think as they do.
      if (effort == "none") {
        r.chat.enable_thinking = false;
      } else {
        r.chat.template_kwargs["reasoning_effort"] = Dump(json(effort));
      }
      r.echo["reasoning"]["effort"] = effort;
    }
    if (Present(reasoning, "summary")) r.echo["reasoning"]["summary"] = json(reasoning["summary"]);
  }
  flag.reset();
  SNUG_RETURN_IF_ERROR(ReadBool(body, "parallel_tool_calls", &flag));
  if (flag) r.chat.parallel_tool_calls = *flag;
  r.echo["parallel_tool_calls"] = flag.value_or(true);
  SNUG_RETURN_IF_ERROR(ReadTools(body, &r));
  SNUG_RETURN_IF_ERROR(ReadToolChoice(body, &r));
  SNUG_RETURN_IF_ERROR(ReadTextFormat(body, &r));
  SNUG_RETURN_IF_ERROR(ReadInput(body, &r));
  return r;
}

// ---- The response ----------------------------------------------------------------------------

struct ResponseHead {
  std::string id;
  int64_t created_at = 0;
  std::string model;
  json echo;
};

json UsageJson(int input, int cached, int output) {
  return {{"input_tokens", input},
          {"input_tokens_details", {{"cached_tokens", cached}}},
          {"output_tokens", output},
          {"output_tokens_details", {{"reasoning_tokens", 0}}},
          {"total_tokens", input + output}};
}

// The response object; `status` in_progress, completed, incomplete or failed.
json ResponseJson(const ResponseHead& head, const std::string& status, json output, json usage,
                  json error = nullptr) {
  json r = {{"id", head.id},       {"object", "response"},        {"created_at", head.created_at},
            {"status", status},    {"error", std::move(error)},   {"incomplete_details", nullptr},
            {"model", head.model}, {"output", std::move(output)}, {"usage", std::move(usage)}};
  if (status == "incomplete") r["incomplete_details"] = {{"reason", "max_output_tokens"}};
  if (status == "completed") r["completed_at"] = UnixNow();
  for (const auto& [key, value] : head.echo.items())
    r[key] = value;
  return r;
}

json MessageItem(const std::string& text, const std::string& status) {
  return {{"id", NewItemId("msg")},
          {"type", "message"},
          {"status", status},
          {"role", "assistant"},
          {"content", json::array({{{"type", "output_text"},
                                    {"text", text},
                                    {"annotations", json::array()},
                                    {"logprobs", json::array()}}})}};
}

json ReasoningItem(const std::string& text) {
  return {{"id", NewItemId("rs")},
          {"type", "reasoning"},
          {"summary", json::array()},
          {"content", json::array({{{"type", "reasoning_text"}, {"text", text}}})}};
}

json FunctionCallItem(const engine::ToolCall& call, const std::string& status) {
  return {{"id", NewItemId("fc")}, {"type", "function_call"},
          {"status", status},      {"call_id", call.id.empty() ? NewItemId("call") : call.id},
          {"name", call.name},     {"arguments", call.arguments}};
}

json OutputItems(const engine::ParsedChat& parsed, bool incomplete) {
  json output = json::array();
  if (!parsed.reasoning_content.empty()) output.push_back(ReasoningItem(parsed.reasoning_content));
  // Always a message when there is no call, so output_text is a string even for an empty answer.
  if (!parsed.content.empty() || parsed.tool_calls.empty()) {
    output.push_back(MessageItem(parsed.content, incomplete ? "incomplete" : "completed"));
  }
  for (const auto& call : parsed.tool_calls)
    output.push_back(FunctionCallItem(call, "completed"));
  return output;
}

// The assistant turn the output items make, for a follow-up's conversation.
engine::ChatMessage AssistantTurn(const json& output) {
  engine::ChatMessage turn = Message("assistant");
  for (const auto& item : output) {
    const std::string type = item.value("type", "");
    if (type == "message") {
      turn.content += item["content"][0].value("text", "");
    } else if (type == "reasoning") {
      turn.reasoning_content += item["content"][0].value("text", "");
    } else if (type == "function_call") {
      turn.tool_calls.push_back(
          {item.value("call_id", ""), item.value("name", ""), item.value("arguments", "")});
    }
  }
  return turn;
}

// ---- Streaming -------------------------------------------------------------------------------

// Writes the typed events of one streamed response and keeps its output items as they grow.
class EventWriter {
 public:
  EventWriter(StreamSink& sink, const ResponseHead& head) : sink_(sink), head_(head) {}

  bool Emit(const std::string& type, json data) {
    data["type"] = type;
    data["sequence_number"] = sequence_++;
    return sink_.Write("event: " + type + "\n" + SseEvent(data));
  }

  bool Begin() {
    json response = ResponseJson(head_, "in_progress", json::array(), nullptr);
    return Emit("response.created", {{"response", response}}) &&
           Emit("response.in_progress", {{"response", std::move(response)}});
  }

  bool Apply(const engine::ChatDelta& d) {
    if (d.tool_index >= 0) {
      auto it = calls_.find(d.tool_index);
      if (it == calls_.end()) {
        if (!CloseText("completed")) return false;
        engine::ToolCall call{d.tool_id, d.tool_name, ""};
        json item = FunctionCallItem(call, "in_progress");
        it = calls_.emplace(d.tool_index, output_.size()).first;
        open_calls_.push_back(output_.size());
        output_.push_back(item);
        if (!Emit("response.output_item.added", {{"output_index", it->second}, {"item", item}})) {
          return false;
        }
      }
      if (d.tool_arguments.empty()) return true;
      json& item = output_[it->second];
      item["arguments"] = item["arguments"].get<std::string>() + d.tool_arguments;
      return Emit(
          "response.function_call_arguments.delta",
          {{"item_id", item["id"]}, {"output_index", it->second}, {"delta", d.tool_arguments}});
    }
    if (!d.reasoning_content.empty() && !AppendText(true, d.reasoning_content)) return false;
    return d.content.empty() || AppendText(false, d.content);
  }

  // The last update: closes what is open and writes the final event.
  bool End(const Job::Update& u, const StoredResponse* to_store) {
    if (u.finish == engine::FinishReason::kError || u.finish == engine::FinishReason::kCancelled) {
      const ApiError e =
          ErrorFromStatus(u.error.ok() ? Status::Internal("generation failed") : u.error);
      const std::string code = e.code.empty() ? e.type : e.code;
      json error = {{"code", code}, {"message", e.message}};
      Emit("error", {{"code", code}, {"message", e.message}, {"param", nullptr}});
      return Emit(
          "response.failed",
          {{"response", ResponseJson(head_, "failed", output_, nullptr, std::move(error))}});
    }
    const bool incomplete = u.finish == engine::FinishReason::kLength;
    if (!CloseText(incomplete ? "incomplete" : "completed") || !CloseCalls()) return false;
    if (!has_message_ && calls_.empty()) {
      // As the whole answer has it: an empty message rather than no text at all.
      if (!AppendText(false, "") || !CloseText(incomplete ? "incomplete" : "completed")) {
        return false;
      }
    }
    const std::string status = incomplete ? "incomplete" : "completed";
    json response = ResponseJson(head_, status, output_,
                                 UsageJson(u.prompt_tokens, u.cached_tokens, u.completion_tokens));
    if (to_store) {
      StoredResponse stored = *to_store;
      stored.response = response;
      stored.conversation.push_back(AssistantTurn(output_));
      Store().Put(head_.id, std::move(stored));
    }
    return Emit("response." + status, {{"response", std::move(response)}});
  }

 private:
  // Opens a message (or reasoning) item unless that kind is the one open, and adds the text.
  bool AppendText(bool reasoning, const std::string& text) {
    if (open_text_ < 0 || open_is_reasoning_ != reasoning) {
      if (!CloseText("completed") || !CloseCalls()) return false;
      json item = reasoning ? ReasoningItem("") : MessageItem("", "in_progress");
      json part = item["content"][0];
      item["content"] = json::array();
      open_text_ = static_cast<int>(output_.size());
      open_is_reasoning_ = reasoning;
      has_message_ |= !reasoning;
      output_.push_back(item);
      if (!Emit("response.output_item.added", {{"output_index", open_text_}, {"item", item}}) ||
          !Emit("response.content_part.added", {{"item_id", item["id"]},
                                                {"output_index", open_text_},
                                                {"content_index", 0},
                                                {"part", part}})) {
        return false;
      }
      output_[open_text_]["content"].push_back(std::move(part));
    }
    if (text.empty()) return true;
    json& part = output_[open_text_]["content"][0];
    part["text"] = part["text"].get<std::string>() + text;
    json delta = {{"item_id", output_[open_text_]["id"]},
                  {"output_index", open_text_},
                  {"content_index", 0},
                  {"delta", text}};
    if (!reasoning) delta["logprobs"] = json::array();
    return Emit(reasoning ? "response.reasoning_text.delta" : "response.output_text.delta",
                std::move(delta));
  }

  bool CloseText(const std::string& status) {
    if (open_text_ < 0) return true;
    const int index = open_text_;
    open_text_ = -1;
    json& item = output_[index];
    const json& part = item["content"][0];
    json done = {{"item_id", item["id"]},
                 {"output_index", index},
                 {"content_index", 0},
                 {"text", part["text"]}};
    if (!open_is_reasoning_) done["logprobs"] = json::array();
    if (!Emit(open_is_reasoning_ ? "response.reasoning_text.done" : "response.output_text.done",
              std::move(done)) ||
        !Emit("response.content_part.done", {{"item_id", item["id"]},
                                             {"output_index", index},
                                             {"content_index", 0},
                                             {"part", part}})) {
      return false;
    }
    if (!open_is_reasoning_) item["status"] = status;
    return Emit("response.output_item.done", {{"output_index", index}, {"item", item}});
  }

  bool CloseCalls() {
    for (size_t index : open_calls_) {
      json& item = output_[index];
      item["status"] = "completed";
      if (!Emit("response.function_call_arguments.done", {{"item_id", item["id"]},
                                                          {"output_index", index},
                                                          {"name", item["name"]},
                                                          {"arguments", item["arguments"]}}) ||
          !Emit("response.output_item.done", {{"output_index", index}, {"item", item}})) {
        return false;
      }
    }
    open_calls_.clear();
    return true;
  }

  StreamSink& sink_;
  const ResponseHead& head_;
  int64_t sequence_ = 0;
  json output_ = json::array();
  int open_text_ = -1;  // the message or reasoning item being written, -1 = none
  bool open_is_reasoning_ = false;
  bool has_message_ = false;
  std::map<int, size_t> calls_;     // tool_index -> output index
  std::vector<size_t> open_calls_;  // function_call items not yet done
};

// ---- The routes ------------------------------------------------------------------------------

void CreateResponse(const RouteContext& ctx, HttpRequest& req, HttpResponse& res) {
  if (*ctx.stopping) return SendStatus(res, Status::Unavailable("the server is shutting down"));
  auto body = ParseJsonBody(req.body);
  if (!body.ok()) return SendStatus(res, body.status());
  auto request = ParseResponsesRequest(*body);
  if (!request.ok()) return SendStatus(res, request.status());

  // The conversation: the previous response's, then this input; instructions go first.
  std::vector<engine::ChatMessage> conversation;
  if (!request->previous_response_id.empty()) {
    auto previous = Store().Get(request->previous_response_id);
    if (!previous) return SendNotStored(res, request->previous_response_id);
    conversation = previous->conversation;
  }
  conversation.insert(conversation.end(), request->input.begin(), request->input.end());
  NameToolResults(&conversation);
  GenerationSpec spec;
  spec.params = request->params;
  spec.chat = request->chat;
  if (!request->instructions.empty()) {
    spec.chat.messages.push_back(Message("system", request->instructions));
  }
  spec.chat.messages.insert(spec.chat.messages.end(), conversation.begin(), conversation.end());

  auto started = StartGeneration(ctx, std::move(spec), req.client_gone);
  if (!started.ok()) return SendStatus(res, started.status());
  std::shared_ptr<Generation> generation = std::move(*started);

  auto head = std::make_shared<ResponseHead>();
  head->id = NewItemId("resp");
  head->created_at = UnixNow();
  head->model = generation->model_name();
  head->echo = std::move(request->echo);
  std::shared_ptr<StoredResponse> to_store;
  if (request->store) {
    to_store = std::make_shared<StoredResponse>();
    to_store->input_items = std::move(request->input_items);
    to_store->conversation = std::move(conversation);
  }

  if (!request->params.stream) {
    auto result = generation->Finish(req.client_gone);
    if (!result.ok()) return SendStatus(res, result.status());
    ctx.metrics->CountTokens(result->prompt_tokens, result->completion_tokens);
    const bool incomplete = result->finish == engine::FinishReason::kLength;
    json output = OutputItems(result->chat, incomplete);
    json response = ResponseJson(
        *head, incomplete ? "incomplete" : "completed", output,
        UsageJson(result->prompt_tokens, result->cached_tokens, result->completion_tokens));
    if (to_store) {
      to_store->response = response;
      to_store->conversation.push_back(AssistantTurn(output));
      Store().Put(head->id, std::move(*to_store));
    }
    return SendJson(res, 200, response);
  }

  res.SetHeader("Cache-Control", "no-cache");
  res.SetHeader("X-Accel-Buffering", "no");
  res.content_type = "text/event-stream";
  res.stream = [ctx, generation, head, to_store](StreamSink& sink) {
    EventWriter events(sink, *head);
    if (!events.Begin()) return;  // client gone: destroying the generation cancels it
    generation->Pump(sink, [&](const Job::Update& u, const std::vector<engine::ChatDelta>& deltas) {
      for (const auto& d : deltas) {
        if (!events.Apply(d)) return false;
      }
      if (!u.done) return true;
      ctx.metrics->CountTokens(u.prompt_tokens, u.completion_tokens);
      return events.End(u, to_store.get());
    });
  };
}

// GET /v1/responses/{id}, GET /v1/responses/{id}/input_items, DELETE /v1/responses/{id}.
void StoredRoute(HttpRequest& req, HttpResponse& res, bool erase) {
  std::string id = req.path_tail;
  bool input_items = false;
  if (const size_t slash = id.find('/'); slash != std::string::npos) {
    input_items = id.substr(slash) == "/input_items";
    if (!input_items || erase) {
      return SendStatus(res, Status::NotFound(fmt::format("no such route: {}", req.path)));
    }
    id.resize(slash);
  }
  if (erase) {
    if (!Store().Erase(id)) return SendNotStored(res, id);
    return SendJson(res, 200, {{"id", id}, {"object", "response"}, {"deleted", true}});
  }
  auto stored = Store().Get(id);
  if (!stored) return SendNotStored(res, id);
  if (!input_items) return SendJson(res, 200, stored->response);
  // OpenAI lists the newest item first unless asked for "order=asc".
  json data = json::array();
  const bool ascending = req.query.find("order=asc") != std::string::npos;
  for (size_t i = 0; i < stored->input_items.size(); ++i) {
    data.push_back(stored->input_items[ascending ? i : stored->input_items.size() - 1 - i]);
  }
  json first = data.empty() ? json(nullptr) : data.front()["id"];
  json last = data.empty() ? json(nullptr) : data.back()["id"];
  SendJson(res, 200,
           {{"object", "list"},
            {"data", std::move(data)},
            {"first_id", std::move(first)},
            {"last_id", std::move(last)},
            {"has_more", false}});
}

}  // namespace

void AddResponsesRoutes(Router& router, const RouteContext& ctx) {
  // Also without the /v1 prefix, as the other OpenAI routes (clients whose base URL lacks it).
  for (const std::string prefix : {"/v1", ""}) {
    router.Post(prefix + "/responses",
                [ctx](HttpRequest& req, HttpResponse& res) { CreateResponse(ctx, req, res); });
    router.Get(prefix + "/responses/*",
               [](HttpRequest& req, HttpResponse& res) { StoredRoute(req, res, false); });
    router.Delete(prefix + "/responses/*",
                  [](HttpRequest& req, HttpResponse& res) { StoredRoute(req, res, true); });
  }
}

}  // namespace snug::server
