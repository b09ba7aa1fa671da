// Chat at the engine boundary: prompts rendered with the model's Jinja chat template, tool
// definitions, structured output and reasoning, all through llama.cpp's own `common` chat layer
// (the one `llama-server --jinja` uses), and the model's raw output parsed back into content,
// reasoning and tool calls. Only engine/ sees common's headers; callers see these snug types.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/engine.h"

namespace snug::engine {

struct ToolCall {
  std::string id;
  std::string name;
  std::string arguments;  // JSON text, as OpenAI sends and expects it
};

struct ChatMessage {
  std::string role;  // "system" | "user" | "assistant" | "tool"
  std::string content;
  std::string reasoning_content;     // assistant: earlier thoughts, for templates that keep them
  std::vector<ToolCall> tool_calls;  // assistant
  std::string tool_call_id;          // tool: the call this message answers
  std::string tool_name;             // tool: the function's name, when known
};

struct ChatTool {
  std::string name;
  std::string description;
  std::string parameters;  // JSON schema text of the arguments object
};

enum class ToolChoice { kAuto, kNone, kRequired };

// What a chat request asks of the template and the sampler.
struct ChatInput {
  std::vector<ChatMessage> messages;
  std::vector<ChatTool> tools;
  ToolChoice tool_choice = ToolChoice::kAuto;
  // Several calls in one answer; unset = what the template supports (llama-server's default).
  std::optional<bool> parallel_tool_calls;
  // Constrain the answer: a JSON schema (text; "{}" = any JSON object) or a raw GBNF grammar.
  std::string json_schema;
  std::string grammar;
  bool enable_thinking = true;
  // Extra template variables (chat_template_kwargs): name -> JSON text of the value.
  std::map<std::string, std::string> template_kwargs;
  bool add_generation_prompt = true;
};

// How the model's output is read back; opaque outside the engine.
class ChatParser;

struct RenderedChat {
  std::string prompt;  // tokenize with Model::TokenizeChat
  // True when the GGUF has no chat template and a plain "role: content" format was used.
  bool used_fallback = false;
  Grammar grammar;                 // empty when the answer is unconstrained
  std::vector<std::string> stops;  // extra stop strings the format needs
  // Special tokens the output parser reads ("<tool_call>"): keep their text in the answer
  // (SamplingParams::kept_special_tokens).
  std::vector<std::string> preserved_tokens;
  std::shared_ptr<const ChatParser> parser;  // null: the output is plain content
};

// The model's chat templates (the GGUF's, or an override given at load), parsed once.
class ChatTemplates {
 public:
  // `override_source`: Jinja text that replaces the GGUF's template ("" = use the GGUF's).
  // InvalidArgument when the template cannot be parsed (the message quotes llama.cpp's reason).
  static Result<std::unique_ptr<ChatTemplates>> Create(const Model& model,
                                                       const std::string& override_source);
  ~ChatTemplates();
  ChatTemplates(const ChatTemplates&) = delete;
  ChatTemplates& operator=(const ChatTemplates&) = delete;

  // Renders the conversation and derives the grammar (tools, schema), stops and output parser.
  // InvalidArgument for what the request gets wrong (an invalid or unsupported JSON schema, a
  // template that fails on these messages: the message says which).
  Result<RenderedChat> Render(const ChatInput& input) const;

  bool has_template() const { return has_template_; }
  bool overridden() const { return overridden_; }
  std::string Source() const;  // the Jinja text in use ("" without one)
  // What llama.cpp's chat layer detected, for `snug show`: the output format used with tools,
  // the template's capabilities (tools, parallel calls, system role, thinking) and whether it
  // separates reasoning ("<think>" ... "</think>").
  struct Info {
    std::string tool_format;
    std::string thinking_start;
    std::string thinking_end;
    bool supports_thinking = false;
    std::map<std::string, bool> caps;
  };
  Info Describe() const;

 private:
  ChatTemplates() = default;
  const Model* model_ = nullptr;
  void* templates_ = nullptr;  // common_chat_templates*
  bool has_template_ = false;
  bool overridden_ = false;
};

// The chat template of a model file and what llama.cpp's chat layer detects in it, from its
// tokenizer alone (no weights are read).
struct ChatTemplateReport {
  bool has_template = false;
  std::string source;
  ChatTemplates::Info info;
};
Result<ChatTemplateReport> DescribeChatTemplate(const std::string& path);

// One step of an answer read back: what to add to each part since the last update.
struct ChatDelta {
  std::string content;
  std::string reasoning_content;
  // A tool call's new text: index in the message's tool_calls, and its id and name on the first
  // delta of that call; arguments grow by `arguments` each time.
  int tool_index = -1;
  std::string tool_id;
  std::string tool_name;
  std::string tool_arguments;
};

struct ParsedChat {
  std::string content;
  std::string reasoning_content;
  std::vector<ToolCall> tool_calls;
};

// Reads a growing answer (streamed or whole) with the request's parser.
class ChatReader {
 public:
  explicit ChatReader(std::shared_ptr<const ChatParser> parser);
  ~ChatReader();
  // Adds newly generated text. `final` on the last call (the answer is complete). Returns the
  // deltas since the previous call. A complete answer the format's parser rejects (a call cut
  // off by max_tokens, say) is kept as plain content rather than lost.
  std::vector<ChatDelta> Append(const std::string& text, bool final);
  const ParsedChat& message() const { return message_; }

 private:
  std::shared_ptr<const ChatParser> parser_;
  std::string text_;
  ParsedChat message_;
  void* previous_ = nullptr;      // common_chat_msg of the last parse
  int announced_ = 0;             // tool calls whose id and name were sent
  std::vector<std::string> ids_;  // tool call ids handed out, by index (stable across updates)
};

// A raw GBNF grammar or a JSON schema for plain completions (no template): the grammar llama.cpp
// derives, checked to parse. InvalidArgument with the reason otherwise.
Result<Grammar> GrammarForCompletion(const Model& model, const std::string& json_schema,
                                     const std::string& gbnf);

}  // namespace snug::engine
