// Anthropic's Messages API (https://docs.anthropic.com/en/api/messages): POST /v1/messages and
// /v1/messages/count_tokens. The request is read into a GenerationSpec here (content blocks become
// snug's chat messages, tool calls and tool results), generation.h runs it, and the answer goes
// back as Anthropic's message object or its SSE event sequence. Every error has Anthropic's shape.
#include <fmt/format.h>

#include <algorithm>
#include <climits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "engine/chat.h"
#include "engine/engine.h"
#include "server/generation.h"
#include "server/prompt_budget.h"
#include "server/respond.h"
#include "server/routes.h"
#include "server/wire.h"

namespace snug::server {
namespace {

// Ordered both ways: a tool's input_schema keeps its key order into the grammar (the order the
// model writes keys in), and a tool call's input keeps the model's order on the way out.
using json = RequestJson;

Status Bad(std::string message) {
  return Status::InvalidArgument(std::move(message));
}

std::string DumpJson(const json& value) {
  return value.dump(-1, ' ', false, json::error_handler_t::replace);
}

void SendMessageJson(HttpResponse& res, const json& body) {
  res.status = 200;
  res.SetContent(DumpJson(body), "application/json");
}

void SendAnthropicStatus(HttpResponse& res, const Status& status) {
  SendStatus(res, status, Dialect::kAnthropic);
}

// "event: NAME\ndata: {...}\n\n", the framing Anthropic's SDKs read.
std::string SseNamedEvent(std::string_view name, const json& data) {
  return fmt::format("event: {}\ndata: {}\n\n", name, DumpJson(data));
}

// Anthropic's ids look like "msg_01..."; NewId gives "prefix-hex".
std::string AnthropicId(const char* prefix) {
  std::string id = NewId(prefix);
  std::replace(id.begin(), id.end(), '-', '_');
  return id;
}

// Anthropic names fields by their path ("messages.0.content.1.text") in its error messages.
std::string At(const std::string& path, size_t index) {
  return fmt::format("{}.{}", path, index);
}

// Top-level fields snug reads.
constexpr std::string_view kReadFields[] = {
    "model",       "messages",    "max_tokens", "system",        "stop_sequences",
    "stream",      "temperature", "top_p",      "top_k",         "thinking",
    "tool_choice", "tools",       "metadata",   "output_config", "output_format"};
// Documented fields that tune Anthropic's service (tier, region, speed, prompt caching, tracing)
// and change nothing in the answer: accepted and ignored. (snug reuses a slot's cached prompt on
// its own, so cache_control needs no action.)
constexpr std::string_view kIgnoredFields[] = {
    "service_tier", "speed",           "inference_geo", "cache_control",
    "diagnostics",  "user_profile_id", "workspace_id",  "anthropic_version"};
// Documented features snug does not run: refused unless empty, so that no client takes an answer
// made without them for one made with them.
constexpr std::string_view kRefusedFields[] = {"container", "mcp_servers", "context_management"};

template <size_t N>
bool OneOf(const std::string& key, const std::string_view (&names)[N]) {
  return std::find(std::begin(names), std::end(names), key) != std::end(names);
}

bool IsEmptyValue(const json& value) {
  return value.is_null() || ((value.is_array() || value.is_object()) && value.empty());
}

Status CheckFields(const json& body) {
  for (auto it = body.begin(); it != body.end(); ++it) {
    const std::string& key = it.key();
    if (OneOf(key, kReadFields) || OneOf(key, kIgnoredFields)) continue;
    if (OneOf(key, kRefusedFields)) {
      if (IsEmptyValue(it.value())) continue;
      return Bad(
          fmt::format("{}: not supported by snug (it runs no Anthropic-hosted tools or "
                      "context editing); leave it out",
                      key));
    }
    return Bad(fmt::format("{}: Extra inputs are not permitted", key));
  }
  return Status::Ok();
}

// A text block {"type": "text", "text": "..."}; other keys (cache_control, citations) are ignored.
Status ReadTextBlock(const json& block, const std::string& path, std::string* out) {
  auto text = block.find("text");
  if (text == block.end() || !text->is_string()) {
    return Bad(fmt::format("{}.text: a text block needs 'text' as a string", path));
  }
  *out = text->get<std::string>();
  if (out->find('\0') != std::string::npos) {
    return Bad(fmt::format("{}.text: holds a NUL character", path));
  }
  return Status::Ok();
}

// Blocks of a kind snug cannot feed the model: a sentence that says so.
Status UnsupportedBlock(const std::string& type, const std::string& path) {
  if (type == "image") {
    return Bad(
        fmt::format("{}: images are not supported (snug serves text-only models); send "
                    "the content as text",
                    path));
  }
  if (type == "document") {
    return Bad(
        fmt::format("{}: document blocks (PDF, files) are not supported; send the "
                    "document's text in a text block",
                    path));
  }
  return Bad(
      fmt::format("{}: content blocks of type '{}' are not supported here (snug reads "
                  "text, thinking, tool_use and tool_result blocks)",
                  path, type));
}

// Text blocks are joined with a blank line, as separate paragraphs.
void Join(std::string* to, const std::string& text) {
  if (!to->empty() && !text.empty()) *to += "\n\n";
  *to += text;
}

Status BlockType(const json& block, const std::string& path, std::string* type) {
  if (!block.is_object()) {
    return Bad(
        fmt::format("{}: a content block must be an object, not {}", path, block.type_name()));
  }
  auto t = block.find("type");
  if (t == block.end() || !t->is_string()) {
    return Bad(fmt::format("{}.type: a content block needs 'type' as a string", path));
  }
  *type = t->get<std::string>();
  return Status::Ok();
}

// Content that may only be text: `system`, a system message, a tool result.
Status ReadTextContent(const json& value, const std::string& path, std::string* out) {
  if (value.is_string()) {
    *out = value.get<std::string>();
    if (out->find('\0') != std::string::npos) {
      return Bad(fmt::format("{}: holds a NUL character", path));
    }
    return Status::Ok();
  }
  if (!value.is_array()) {
    return Bad(fmt::format("{}: must be a string or an array of text blocks, not {}", path,
                           value.type_name()));
  }
  for (size_t k = 0; k < value.size(); ++k) {
    const std::string where = At(path, k);
    std::string type;
    SNUG_RETURN_IF_ERROR(BlockType(value[k], where, &type));
    if (type != "text") return UnsupportedBlock(type, where);
    std::string text;
    SNUG_RETURN_IF_ERROR(ReadTextBlock(value[k], where, &text));
    Join(out, text);
  }
  return Status::Ok();
}

// An assistant turn: text, earlier thinking and tool calls become one assistant message.
Status ReadAssistantBlocks(const json& blocks, const std::string& path, engine::ChatMessage* msg) {
  for (size_t k = 0; k < blocks.size(); ++k) {
    const std::string where = At(path, k);
    const json& block = blocks[k];
    std::string type;
    SNUG_RETURN_IF_ERROR(BlockType(block, where, &type));
    if (type == "text") {
      std::string text;
      SNUG_RETURN_IF_ERROR(ReadTextBlock(block, where, &text));
      Join(&msg->content, text);
    } else if (type == "thinking") {
      auto thinking = block.find("thinking");
      if (thinking == block.end() || !thinking->is_string()) {
        return Bad(
            fmt::format("{}.thinking: a thinking block needs 'thinking' as a string", where));
      }
      Join(&msg->reasoning_content, thinking->get<std::string>());
    } else if (type == "redacted_thinking") {
      continue;  // encrypted by Anthropic for its own models: nothing a local model can read
    } else if (type == "tool_use") {
      auto id = block.find("id");
      auto name = block.find("name");
      if (id == block.end() || !id->is_string() || id->get<std::string>().empty()) {
        return Bad(fmt::format("{}.id: a tool_use block needs 'id' as a non-empty string", where));
      }
      if (name == block.end() || !name->is_string() || name->get<std::string>().empty()) {
        return Bad(
            fmt::format("{}.name: a tool_use block needs 'name' as a non-empty string", where));
      }
      engine::ToolCall call;
      call.id = id->get<std::string>();
      call.name = name->get<std::string>();
      auto input = block.find("input");
      call.arguments = input == block.end() || input->is_null() ? "{}" : DumpJson(*input);
      msg->tool_calls.push_back(std::move(call));
    } else if (type == "tool_result") {
      return Bad(fmt::format("{}: tool_result blocks belong in a user message", where));
    } else {
      return UnsupportedBlock(type, where);
    }
  }
  return Status::Ok();
}

// A user turn. Each tool_result becomes a "tool" message (the form chat templates know), and the
// text around them user messages, in order.
Status ReadUserBlocks(const json& blocks, const std::string& path,
                      std::vector<engine::ChatMessage>* out) {
  engine::ChatMessage pending;
  pending.role = "user";
  bool has_text = false;
  bool has_results = false;
  auto flush = [&] {
    if (has_text) out->push_back(std::move(pending));
    pending = engine::ChatMessage{};
    pending.role = "user";
    has_text = false;
  };
  for (size_t k = 0; k < blocks.size(); ++k) {
    const std::string where = At(path, k);
    const json& block = blocks[k];
    std::string type;
    SNUG_RETURN_IF_ERROR(BlockType(block, where, &type));
    if (type == "text") {
      std::string text;
      SNUG_RETURN_IF_ERROR(ReadTextBlock(block, where, &text));
      Join(&pending.content, text);
      has_text = true;
    } else if (type == "tool_result") {
      auto id = block.find("tool_use_id");
      if (id == block.end() || !id->is_string() || id->get<std::string>().empty()) {
        return Bad(fmt::format(
            "{}.tool_use_id: a tool_result block needs 'tool_use_id' as a non-empty string",
            where));
      }
      engine::ChatMessage result;
      result.role = "tool";
      result.tool_call_id = id->get<std::string>();
      if (auto content = block.find("content"); content != block.end() && !content->is_null()) {
        SNUG_RETURN_IF_ERROR(ReadTextContent(*content, where + ".content", &result.content));
      }
      if (auto is_error = block.find("is_error"); is_error != block.end() && !is_error->is_null()) {
        if (!is_error->is_boolean()) {
          return Bad(fmt::format("{}.is_error: must be true or false", where));
        }
        // Chat templates have no field for a failed call: the model reads it in the text.
        if (is_error->get<bool>()) result.content = "Error: " + result.content;
      }
      flush();
      out->push_back(std::move(result));
      has_results = true;
    } else if (type == "tool_use" || type == "thinking" || type == "redacted_thinking") {
      return Bad(fmt::format("{}: {} blocks belong in an assistant message", where, type));
    } else {
      return UnsupportedBlock(type, where);
    }
  }
  // A user turn of tool results alone adds no user message; an empty one stays a user turn.
  if (has_text || !has_results) {
    has_text = true;
    flush();
  }
  return Status::Ok();
}

Status ReadMessages(const json& body, std::vector<engine::ChatMessage>* out) {
  auto it = body.find("messages");
  if (it == body.end() || it->is_null()) return Bad("messages: Field required");
  if (!it->is_array()) {
    return Bad(fmt::format("messages: must be an array of messages, not {}", it->type_name()));
  }
  if (it->empty()) return Bad("messages: must hold at least one message");
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string path = At("messages", i);
    const json& m = (*it)[i];
    if (!m.is_object()) {
      return Bad(fmt::format("{}: a message must be an object, not {}", path, m.type_name()));
    }
    auto role = m.find("role");
    if (role == m.end() || !role->is_string()) {
      return Bad(fmt::format("{}.role: must be \"user\" or \"assistant\"", path));
    }
    const std::string r = role->get<std::string>();
    if (r != "user" && r != "assistant" && r != "system") {
      return Bad(fmt::format("{}.role: '{}' is not \"user\" or \"assistant\"", path, r));
    }
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      return Bad(fmt::format("{}.content: Field required", path));
    }
    const std::string where = path + ".content";
    if (!content->is_string() && !content->is_array()) {
      return Bad(fmt::format("{}: must be a string or an array of content blocks, not {}", where,
                             content->type_name()));
    }
    engine::ChatMessage msg;
    msg.role = r;
    if (r == "system") {
      SNUG_RETURN_IF_ERROR(ReadTextContent(*content, where, &msg.content));
      out->push_back(std::move(msg));
    } else if (content->is_string()) {
      SNUG_RETURN_IF_ERROR(ReadTextContent(*content, where, &msg.content));
      out->push_back(std::move(msg));
    } else if (r == "assistant") {
      SNUG_RETURN_IF_ERROR(ReadAssistantBlocks(*content, where, &msg));
      out->push_back(std::move(msg));
    } else {
      SNUG_RETURN_IF_ERROR(ReadUserBlocks(*content, where, out));
    }
  }
  // Anthropic continues a final assistant message ("prefill"); the chat templates close every
  // turn they render, so the model would start a new one instead. Refused rather than answered
  // differently.
  if ((*it)[it->size() - 1]["role"] == "assistant") {
    return Bad(fmt::format(
        "messages.{}: the last message is the assistant's; continuing a prefilled answer is not "
        "supported by snug, end with a user message",
        it->size() - 1));
  }
  NameToolResults(out);
  return Status::Ok();
}

// tools: [{"name", "description"?, "input_schema"}] (custom tools, "type" absent or "custom").
Status ReadTools(const json& body, std::vector<engine::ChatTool>* out) {
  auto it = body.find("tools");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_array()) return Bad(fmt::format("tools: must be an array, not {}", it->type_name()));
  if (it->size() > 128) return Bad("tools: at most 128 tools");
  for (size_t i = 0; i < it->size(); ++i) {
    const std::string path = At("tools", i);
    const json& tool = (*it)[i];
    if (!tool.is_object()) {
      return Bad(fmt::format("{}: a tool must be an object, not {}", path, tool.type_name()));
    }
    if (auto type = tool.find("type"); type != tool.end() && !type->is_null()) {
      if (!type->is_string()) return Bad(fmt::format("{}.type: must be a string", path));
      if (type->get<std::string>() != "custom") {
        return Bad(fmt::format(
            "{}.type: '{}' is one of Anthropic's server tools, which snug does not run; only "
            "custom tools ({{\"name\", \"description\", \"input_schema\"}}) are supported",
            path, type->get<std::string>()));
      }
    }
    auto name = tool.find("name");
    if (name == tool.end() || !name->is_string() || name->get<std::string>().empty()) {
      return Bad(fmt::format("{}.name: must be a non-empty string", path));
    }
    engine::ChatTool t;
    t.name = name->get<std::string>();
    if (auto d = tool.find("description"); d != tool.end() && !d->is_null()) {
      if (!d->is_string()) return Bad(fmt::format("{}.description: must be a string", path));
      t.description = d->get<std::string>();
    }
    auto schema = tool.find("input_schema");
    if (schema == tool.end() || schema->is_null()) {
      return Bad(fmt::format("{}.input_schema: Field required", path));
    }
    if (!schema->is_object()) {
      return Bad(fmt::format("{}.input_schema: must be a JSON schema object, not {}", path,
                             schema->type_name()));
    }
    t.parameters = DumpJson(*schema);
    for (const auto& other : *out) {
      if (other.name == t.name) {
        return Bad(fmt::format("tools: two tools are named '{}'; names must be unique", t.name));
      }
    }
    out->push_back(std::move(t));
  }
  return Status::Ok();
}

// tool_choice: {"type": "auto" | "any" | "tool" (with "name") | "none",
// "disable_parallel_tool_use"?}.
Status ReadToolChoice(const json& body, engine::ChatInput* input) {
  auto it = body.find("tool_choice");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) {
    return Bad(
        "tool_choice: must be {\"type\": \"auto\"}, {\"type\": \"any\"}, {\"type\": \"tool\", "
        "\"name\": ...} or {\"type\": \"none\"}");
  }
  const std::string type = (*it)["type"].get<std::string>();
  if (auto p = it->find("disable_parallel_tool_use"); p != it->end() && !p->is_null()) {
    if (!p->is_boolean())
      return Bad("tool_choice.disable_parallel_tool_use: must be true or false");
    if (p->get<bool>()) input->parallel_tool_calls = false;
  }
  if (type == "auto") {
    input->tool_choice = engine::ToolChoice::kAuto;
  } else if (type == "none") {
    input->tool_choice = engine::ToolChoice::kNone;
  } else if (type == "any") {
    if (input->tools.empty()) return Bad("tool_choice: \"any\" needs 'tools'");
    input->tool_choice = engine::ToolChoice::kRequired;
  } else if (type == "tool") {
    auto name = it->find("name");
    if (name == it->end() || !name->is_string()) {
      return Bad("tool_choice.name: {\"type\": \"tool\"} needs the tool's 'name'");
    }
    const std::string wanted = name->get<std::string>();
    auto tool = std::find_if(input->tools.begin(), input->tools.end(),
                             [&](const engine::ChatTool& t) { return t.name == wanted; });
    if (tool == input->tools.end()) {
      return Bad(fmt::format("tool_choice.name: '{}' is not one of 'tools'", wanted));
    }
    // One named tool, called: a required call among that tool alone.
    engine::ChatTool only = *tool;
    input->tools = {std::move(only)};
    input->tool_choice = engine::ToolChoice::kRequired;
  } else {
    return Bad(fmt::format("tool_choice.type: '{}' is not one of auto, any, tool, none", type));
  }
  return Status::Ok();
}

// thinking: {"type": "enabled", "budget_tokens"} | {"type": "adaptive"} | {"type": "disabled"}.
// Off unless asked, as Anthropic's API has it; templates that can switch reasoning off (Qwen3's
// enable_thinking) then do.
Status ReadThinking(const json& body, engine::ChatInput* input) {
  input->enable_thinking = false;
  auto it = body.find("thinking");
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_object() || !it->contains("type") || !(*it)["type"].is_string()) {
    return Bad(
        "thinking: must be {\"type\": \"enabled\", \"budget_tokens\": N} or "
        "{\"type\": \"disabled\"}");
  }
  const std::string type = (*it)["type"].get<std::string>();
  if (auto budget = it->find("budget_tokens"); budget != it->end() && !budget->is_null()) {
    // The model's own thinking length is not capped (max_tokens bounds the whole answer).
    if (!budget->is_number_integer() || budget->get<int64_t>() < 1) {
      return Bad("thinking.budget_tokens: must be a positive integer");
    }
  }
  if (type == "enabled" || type == "adaptive" || type == "between_tools") {
    input->enable_thinking = true;
  } else if (type != "disabled") {
    return Bad(fmt::format("thinking.type: '{}' is not one of enabled, adaptive, disabled", type));
  }
  return Status::Ok();
}

// Structured output: output_config.format (or the earlier beta's output_format) as
// {"type": "json_schema", "schema": {...}}. output_config.effort is Anthropic's own dial.
Status ReadOutputFormat(const json& body, std::string* schema) {
  const json* format = nullptr;
  std::string path;
  if (auto config = body.find("output_config"); config != body.end() && !config->is_null()) {
    if (!config->is_object()) return Bad("output_config: must be an object");
    for (auto f = config->begin(); f != config->end(); ++f) {
      if (f.key() != "format" && f.key() != "effort") {
        return Bad(fmt::format("output_config.{}: Extra inputs are not permitted", f.key()));
      }
    }
    if (auto f = config->find("format"); f != config->end() && !f->is_null()) {
      format = &*f;
      path = "output_config.format";
    }
  }
  if (auto f = body.find("output_format"); f != body.end() && !f->is_null()) {
    format = &*f;
    path = "output_format";
  }
  if (format == nullptr) return Status::Ok();
  auto type = format->is_object() ? format->find("type") : format->end();
  if (type == format->end() || *type != "json_schema") {
    return Bad(fmt::format("{}: must be {{\"type\": \"json_schema\", \"schema\": {{...}}}}", path));
  }
  auto s = format->find("schema");
  if (s == format->end() || !s->is_object()) {
    return Bad(fmt::format("{}.schema: must be a JSON schema object", path));
  }
  *schema = DumpJson(*s);
  return Status::Ok();
}

Status ReadNumber(const json& body, const char* key, double lo, double hi, float* out) {
  auto it = body.find(key);
  if (it == body.end() || it->is_null()) return Status::Ok();
  if (!it->is_number()) {
    return Bad(fmt::format("{}: must be a number, not {}", key, it->type_name()));
  }
  const double v = it->get<double>();
  if (!(v >= lo && v <= hi)) {
    return Bad(fmt::format("{}: must be between {} and {}, got {}", key, lo, hi, v));
  }
  *out = static_cast<float>(v);
  return Status::Ok();
}

Status ReadSampling(const json& body, GenerationSpec* spec) {
  GenerationParams& p = spec->params;
  auto max = body.find("max_tokens");
  if (max == body.end() || max->is_null()) {
    return Bad(
        "max_tokens: Field required (the most tokens to generate, an integer of at least 1)");
  }
  if (!max->is_number_integer()) {
    return Bad(fmt::format("max_tokens: must be an integer, not {}", max->type_name()));
  }
  // Read as signed 64-bit, huge unsigned values saturated, so both ends are reported as such.
  const int64_t max_tokens = max->is_number_unsigned() && max->get<uint64_t>() > uint64_t(INT64_MAX)
                                 ? INT64_MAX
                                 : max->get<int64_t>();
  if (max_tokens < 1) return Bad(fmt::format("max_tokens: must be at least 1, got {}", max_tokens));
  if (max_tokens > kMaxTokensLimit) {
    return Bad(fmt::format("max_tokens: {} is more than any context this server can hold ({})",
                           max_tokens, kMaxTokensLimit));
  }
  p.max_tokens = static_cast<int>(max_tokens);

  if (auto it = body.find("stream"); it != body.end() && !it->is_null()) {
    if (!it->is_boolean()) return Bad("stream: must be true or false");
    p.stream = it->get<bool>();
  }
  // Anthropic's ranges: temperature 0-1 (default 1), top_p 0-1.
  p.temperature = 1.0f;
  p.top_p = 1.0f;
  SNUG_RETURN_IF_ERROR(ReadNumber(body, "temperature", 0.0, 1.0, &p.temperature));
  SNUG_RETURN_IF_ERROR(ReadNumber(body, "top_p", 0.0, 1.0, &p.top_p));
  if (auto it = body.find("top_k"); it != body.end() && !it->is_null()) {
    if (!it->is_number_integer()) {
      return Bad(fmt::format("top_k: must be an integer, not {}", it->type_name()));
    }
    if (it->is_number_unsigned() ? it->get<uint64_t>() > uint64_t(INT_MAX)
                                 : (it->get<int64_t>() < 0 || it->get<int64_t>() > INT_MAX)) {
      return Bad("top_k: must be a non-negative integer");
    }
    spec->top_k = static_cast<int>(it->get<int64_t>());
  }
  if (auto it = body.find("stop_sequences"); it != body.end() && !it->is_null()) {
    if (!it->is_array()) {
      return Bad(
          fmt::format("stop_sequences: must be an array of strings, not {}", it->type_name()));
    }
    if (it->size() > 64) return Bad("stop_sequences: at most 64 strings");
    for (size_t k = 0; k < it->size(); ++k) {
      const json& s = (*it)[k];
      if (!s.is_string()) return Bad(fmt::format("stop_sequences.{}: must be a string", k));
      if (s.get<std::string>().empty()) {
        return Bad(fmt::format("stop_sequences.{}: must not be empty", k));
      }
      p.stop.push_back(s.get<std::string>());
    }
  }
  if (auto it = body.find("metadata"); it != body.end() && !it->is_null()) {
    if (!it->is_object()) return Bad("metadata: must be an object");
    if (auto user = it->find("user_id");
        user != it->end() && !user->is_null() && !user->is_string()) {
      return Bad("metadata.user_id: must be a string");
    }
  }
  return Status::Ok();
}

// The body of /v1/messages (`count_only` false) or /v1/messages/count_tokens (true).
Result<GenerationSpec> ParseMessagesRequest(const json& body, bool count_only) {
  if (!body.is_object()) return Bad("the request body must be a JSON object");
  SNUG_RETURN_IF_ERROR(CheckFields(body));
  GenerationSpec spec;
  if (auto it = body.find("model"); it != body.end() && !it->is_null()) {
    if (!it->is_string()) {
      return Bad(fmt::format("model: must be a string, not {}", it->type_name()));
    }
    spec.params.model = it->get<std::string>();
    SNUG_RETURN_IF_ERROR(ValidateModelName(spec.params.model));
  }
  engine::ChatInput& chat = spec.chat;
  if (auto it = body.find("system"); it != body.end() && !it->is_null()) {
    engine::ChatMessage system;
    system.role = "system";
    SNUG_RETURN_IF_ERROR(ReadTextContent(*it, "system", &system.content));
    chat.messages.push_back(std::move(system));
  }
  SNUG_RETURN_IF_ERROR(ReadMessages(body, &chat.messages));
  SNUG_RETURN_IF_ERROR(ReadTools(body, &chat.tools));
  SNUG_RETURN_IF_ERROR(ReadToolChoice(body, &chat));
  SNUG_RETURN_IF_ERROR(ReadThinking(body, &chat));
  SNUG_RETURN_IF_ERROR(ReadOutputFormat(body, &chat.json_schema));
  // count_tokens accepts the generation settings unread: clients often send it the same body.
  if (!count_only) SNUG_RETURN_IF_ERROR(ReadSampling(body, &spec));
  return spec;
}

struct StopInfo {
  const char* reason = "end_turn";
  json sequence = nullptr;
};

// `matched`: the stop string the engine ended on; a template's own end marker is not one of the
// request's stop_sequences and ends the turn.
StopInfo StopReason(engine::FinishReason finish, bool called_tools,
                    const std::vector<std::string>& stops, const std::string& matched) {
  StopInfo info;
  if (finish == engine::FinishReason::kLength) {
    info.reason = "max_tokens";
  } else if (called_tools) {
    info.reason = "tool_use";
  } else if (!matched.empty() && std::find(stops.begin(), stops.end(), matched) != stops.end()) {
    info.reason = "stop_sequence";
    info.sequence = matched;
  }
  return info;
}

// input_tokens counts the prompt tokens not read from the cache, as Anthropic's does.
json UsageJson(int prompt_tokens, int cached_tokens, int output_tokens) {
  return {{"input_tokens", prompt_tokens - cached_tokens},
          {"cache_creation_input_tokens", 0},
          {"cache_read_input_tokens", cached_tokens},
          {"output_tokens", output_tokens}};
}

// A tool call's arguments as the input object; text that is not JSON (it cannot be once the
// parser accepted the call, but a template's parser is not ours) is kept under "arguments".
json ToolInput(const std::string& arguments) {
  json input = json::parse(arguments, nullptr, /*allow_exceptions=*/false);
  if (input.is_discarded()) return {{"arguments", arguments}};
  return input;
}

json MessageJson(const std::string& id, const std::string& model, json content,
                 const StopInfo& stop, json usage) {
  return {{"id", id},
          {"type", "message"},
          {"role", "assistant"},
          {"model", model},
          {"content", std::move(content)},
          {"stop_reason", stop.reason == nullptr ? json(nullptr) : json(stop.reason)},
          {"stop_sequence", stop.sequence},
          {"usage", std::move(usage)}};
}

// The content blocks of a whole answer: thinking, text, then the tool calls. An answer with
// nothing in it still has one (empty) text block: clients read content[0].text.
json ContentJson(const engine::ParsedChat& parsed) {
  json content = json::array();
  if (!parsed.reasoning_content.empty()) {
    content.push_back(
        {{"type", "thinking"}, {"thinking", parsed.reasoning_content}, {"signature", ""}});
  }
  if (!parsed.content.empty() || (parsed.reasoning_content.empty() && parsed.tool_calls.empty())) {
    content.push_back({{"type", "text"}, {"text", parsed.content}});
  }
  for (const auto& call : parsed.tool_calls) {
    content.push_back({{"type", "tool_use"},
                       {"id", call.id},
                       {"name", call.name},
                       {"input", ToolInput(call.arguments)}});
  }
  return content;
}

// Writes a streamed answer as Anthropic's event sequence: message_start, then each content block
// (content_block_start, its deltas, content_block_stop) in the order the model wrote them (a new
// block whenever the kind of text changes), message_delta with the stop reason and usage, and
// message_stop; or an error event when the generation fails.
class EventWriter {
 public:
  EventWriter(StreamSink& sink, std::string id, std::string model)
      : sink_(sink), id_(std::move(id)), model_(std::move(model)) {}

  bool Start(int prompt_tokens, int cached_tokens) {
    json message = MessageJson(id_, model_, json::array(), StopInfo{nullptr, nullptr},
                               UsageJson(prompt_tokens, cached_tokens, 0));
    return Write("message_start", {{"type", "message_start"}, {"message", std::move(message)}});
  }

  bool Delta(const engine::ChatDelta& d) {
    if (!d.reasoning_content.empty()) {
      if (!Open(Kind::kThinking, -1, d)) return false;
      if (!WriteDelta({{"type", "thinking_delta"}, {"thinking", d.reasoning_content}})) {
        return false;
      }
    }
    if (!d.content.empty()) {
      if (!Open(Kind::kText, -1, d)) return false;
      if (!WriteDelta({{"type", "text_delta"}, {"text", d.content}})) return false;
    }
    if (d.tool_index >= 0) {
      if (!Open(Kind::kTool, d.tool_index, d)) return false;
      if (!d.tool_arguments.empty() &&
          !WriteDelta({{"type", "input_json_delta"}, {"partial_json", d.tool_arguments}})) {
        return false;
      }
    }
    return true;
  }

  bool Finish(const StopInfo& stop, int prompt_tokens, int cached_tokens, int output_tokens) {
    // As in the whole answer, a stream with no block at all has one empty text block.
    if (index_ < 0 && !Open(Kind::kText, -1, engine::ChatDelta{})) return false;
    if (!Close()) return false;
    json delta = {{"stop_reason", stop.reason}, {"stop_sequence", stop.sequence}};
    if (!Write("message_delta",
               {{"type", "message_delta"},
                {"delta", std::move(delta)},
                {"usage", UsageJson(prompt_tokens, cached_tokens, output_tokens)}})) {
      return false;
    }
    return Write("message_stop", {{"type", "message_stop"}});
  }

  bool Error(const Status& status) {
    return Write("error", ErrorFromStatus(status).ToJson(Dialect::kAnthropic));
  }

 private:
  enum class Kind { kNone, kText, kThinking, kTool };

  bool Write(std::string_view event, const json& data) {
    return sink_.Write(SseNamedEvent(event, data));
  }
  bool WriteDelta(json delta) {
    return Write("content_block_delta",
                 {{"type", "content_block_delta"}, {"index", index_}, {"delta", std::move(delta)}});
  }
  bool Close() {
    if (kind_ == Kind::kNone) return true;
    kind_ = Kind::kNone;
    return Write("content_block_stop", {{"type", "content_block_stop"}, {"index", index_}});
  }
  // Makes the open block one of `kind` (and of that tool call), closing the one before.
  bool Open(Kind kind, int tool_index, const engine::ChatDelta& d) {
    if (kind == kind_ && tool_index == tool_index_) return true;
    if (!Close()) return false;
    kind_ = kind;
    tool_index_ = tool_index;
    ++index_;
    json block;
    if (kind == Kind::kText) {
      block = {{"type", "text"}, {"text", ""}};
    } else if (kind == Kind::kThinking) {
      block = {{"type", "thinking"}, {"thinking", ""}, {"signature", ""}};
    } else {
      block = {{"type", "tool_use"},
               {"id", d.tool_id},
               {"name", d.tool_name},
               {"input", json::object()}};
    }
    return Write(
        "content_block_start",
        {{"type", "content_block_start"}, {"index", index_}, {"content_block", std::move(block)}});
  }

  StreamSink& sink_;
  const std::string id_;
  const std::string model_;
  int index_ = -1;
  Kind kind_ = Kind::kNone;
  int tool_index_ = -1;
};

void HandleMessages(const RouteContext& ctx, HttpRequest& req, HttpResponse& res) {
  auto body = ParseJsonBody(req.body);
  if (!body.ok()) return SendAnthropicStatus(res, body.status());
  auto spec = ParseMessagesRequest(*body, /*count_only=*/false);
  if (!spec.ok()) return SendAnthropicStatus(res, spec.status());
  const bool stream = spec->params.stream;
  const std::vector<std::string> stops = spec->params.stop;
  auto started = StartGeneration(ctx, std::move(*spec), req.client_gone);
  if (!started.ok()) return SendAnthropicStatus(res, started.status());
  std::shared_ptr<Generation> g = std::move(*started);
  const std::string id = AnthropicId("msg");
  res.SetHeader("request-id", AnthropicId("req"));

  if (!stream) {
    auto result = g->Finish(req.client_gone);
    if (!result.ok()) return SendAnthropicStatus(res, result.status());
    ctx.metrics->CountTokens(result->prompt_tokens, result->completion_tokens);
    const StopInfo stop =
        StopReason(result->finish, !result->chat.tool_calls.empty(), stops, result->stop);
    return SendMessageJson(res, MessageJson(id, g->model_name(), ContentJson(result->chat), stop,
                                            UsageJson(result->prompt_tokens, result->cached_tokens,
                                                      result->completion_tokens)));
  }

  res.SetHeader("Cache-Control", "no-cache");
  res.SetHeader("X-Accel-Buffering", "no");
  res.content_type = "text/event-stream";
  res.stream = [ctx, g, id, stops](StreamSink& sink) {
    EventWriter events(sink, id, g->model_name());
    bool started = false;
    g->Pump(sink, [&](const Job::Update& u, const std::vector<engine::ChatDelta>& deltas) {
      // message_start waits for the first update: it carries how much of the prompt was cached.
      if (!started) {
        started = true;
        if (!events.Start(u.prompt_tokens > 0 ? u.prompt_tokens : g->prompt_tokens(),
                          u.cached_tokens)) {
          return false;
        }
      }
      for (const auto& d : deltas) {
        if (!events.Delta(d)) return false;
      }
      if (!u.done) return true;
      ctx.metrics->CountTokens(u.prompt_tokens, u.completion_tokens);
      if (u.finish == engine::FinishReason::kError ||
          u.finish == engine::FinishReason::kCancelled) {
        return events.Error(u.error);
      }
      const StopInfo stop = StopReason(u.finish, !g->chat().tool_calls.empty(), stops, u.stop);
      return events.Finish(stop, u.prompt_tokens, u.cached_tokens, u.completion_tokens);
    });
  };
}

void HandleCountTokens(const RouteContext& ctx, HttpRequest& req, HttpResponse& res) {
  auto body = ParseJsonBody(req.body);
  if (!body.ok()) return SendAnthropicStatus(res, body.status());
  auto spec = ParseMessagesRequest(*body, /*count_only=*/true);
  if (!spec.ok()) return SendAnthropicStatus(res, spec.status());
  if (*ctx.stopping) {
    return SendAnthropicStatus(res, Status::Unavailable("the server is shutting down"));
  }
  std::string name = spec->params.model;
  if (Status named = ResolveModelName(ctx, &name); !named.ok()) {
    return SendAnthropicStatus(res, named);
  }
  // The count is the model's own: its template renders the chat, its tokenizer counts it.
  auto lease = ctx.pool->Acquire(name);
  if (!lease.ok()) return SendAnthropicStatus(res, lease.status());
  const engine::Model& model = lease->scheduler().model();
  const uint32_t n_ctx = lease->scheduler().n_ctx_seq();
  size_t user_bytes = 0;
  for (const auto& message : spec->chat.messages)
    if (message.role == "user") user_bytes += message.content.size();
  if (Status fits = CheckPromptBytes(model, n_ctx, user_bytes); !fits.ok()) {
    return SendAnthropicStatus(res, fits);
  }
  auto rendered = model.chat().Render(spec->chat);
  if (!rendered.ok()) return SendAnthropicStatus(res, rendered.status());
  auto tokens = TokenizeWithinLimits(*ctx.pool, model, n_ctx, rendered->prompt, PromptKind::kChat);
  if (!tokens.ok()) return SendAnthropicStatus(res, tokens.status());
  SendMessageJson(res, {{"input_tokens", tokens->size()}});
}

}  // namespace

void AddAnthropicRoutes(Router& router, const RouteContext& ctx) {
  router.Post("/v1/messages",
              [ctx](HttpRequest& req, HttpResponse& res) { HandleMessages(ctx, req, res); });
  router.Post("/v1/messages/count_tokens",
              [ctx](HttpRequest& req, HttpResponse& res) { HandleCountTokens(ctx, req, res); });
}

}  // namespace snug::server
