// Chat templates, tools, structured output and reasoning through llama.cpp's `common` chat layer
// (chat.h: the Jinja engine, per-format grammars and PEG output parsers; json-schema-to-grammar).
// common reports failures by throwing: every call into it is wrapped here and becomes a Status.
#include "engine/chat.h"

#include <chat.h>
#include <fmt/format.h>
#include <json-schema-to-grammar.h>
#include <llama.h>

#include <exception>

#include "core/log.h"

namespace snug::engine {

// The output parser of one rendered request: common's parser parameters, with its PEG arena.
class ChatParser {
 public:
  common_chat_parser_params params;
};

namespace {

common_chat_templates* Templates(void* p) {
  return static_cast<common_chat_templates*>(p);
}

// Used when the GGUF carries no template: plain, readable, and announced (used_fallback) so
// callers can tell the user why answers may look odd.
std::string PlainChat(const std::vector<ChatMessage>& messages, bool add_assistant) {
  std::string out;
  for (const auto& m : messages)
    out += m.role + ": " + m.content + "\n";
  if (add_assistant) out += "assistant:";
  return out;
}

common_chat_msg ToCommon(const ChatMessage& m) {
  common_chat_msg out;
  out.role = m.role;
  out.content = m.content;
  out.reasoning_content = m.reasoning_content;
  out.tool_call_id = m.tool_call_id;
  out.tool_name = m.tool_name;
  for (const auto& call : m.tool_calls)
    out.tool_calls.push_back({call.name, call.arguments, call.id});
  return out;
}

GrammarTrigger::Kind TriggerKind(common_grammar_trigger_type type) {
  switch (type) {
    case COMMON_GRAMMAR_TRIGGER_TYPE_TOKEN:
      return GrammarTrigger::Kind::kToken;
    case COMMON_GRAMMAR_TRIGGER_TYPE_WORD:
      return GrammarTrigger::Kind::kWord;
    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN:
      return GrammarTrigger::Kind::kPattern;
    case COMMON_GRAMMAR_TRIGGER_TYPE_PATTERN_FULL:
      return GrammarTrigger::Kind::kPatternFull;
  }
  return GrammarTrigger::Kind::kWord;
}

// common's messages start with "<function>: " or carry a whole JSON dump; the first line is
// what a user can act on.
std::string FirstLine(const std::string& text) {
  const size_t nl = text.find('\n');
  std::string line = nl == std::string::npos ? text : text.substr(0, nl);
  if (line.size() > 400) line = line.substr(0, 400) + "...";
  return line;
}

// Parses a grammar once so a bad one is the request's 400, not a failure mid-generation.
Status CheckGrammar(const Model& model, const std::string& gbnf) {
  if (gbnf.empty()) return Status::Ok();
  llama_sampler* check =
      llama_sampler_init_grammar(llama_model_get_vocab(model.raw()), gbnf.c_str(), "root");
  if (check == nullptr) {
    return Status::InvalidArgument(
        "the grammar does not parse as GBNF (llama.cpp's grammar format); check its rules");
  }
  llama_sampler_free(check);
  return Status::Ok();
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// ChatTemplates

Result<std::unique_ptr<ChatTemplates>> ChatTemplates::Create(const Model& model,
                                                             const std::string& override_source) {
  std::unique_ptr<ChatTemplates> out(new ChatTemplates());
  out->model_ = &model;
  out->overridden_ = !override_source.empty();
  const bool in_gguf = llama_model_chat_template(model.raw(), nullptr) != nullptr;
  if (!out->overridden_ && !in_gguf) return out;  // plain fallback, announced at render time
  try {
    common_chat_templates_ptr templates = common_chat_templates_init(model.raw(), override_source);
    out->templates_ = templates.release();
    out->has_template_ = true;
  } catch (const std::exception& e) {
    const std::string reason = FirstLine(e.what());
    if (out->overridden_) {
      return Status::InvalidArgument("the chat template given cannot be parsed: " + reason);
    }
    spdlog::warn(
        "{}: its chat template cannot be parsed ({}); using a plain 'role: content' format",
        model.path(), reason);
  }
  return out;
}

ChatTemplates::~ChatTemplates() {
  if (templates_) common_chat_templates_free(Templates(templates_));
}

std::string ChatTemplates::Source() const {
  return has_template_ ? common_chat_templates_source(Templates(templates_)) : std::string();
}

ChatTemplates::Info ChatTemplates::Describe() const {
  Info info;
  if (!has_template_) {
    info.tool_format = "none (no chat template)";
    return info;
  }
  info.caps = common_chat_templates_get_caps(Templates(templates_));
  // Render a one-tool request the way a client would: the format and thinking tags llama.cpp's
  // chat layer picks for it are what requests with tools will get.
  ChatInput probe;
  probe.messages = {{"user", "What is the weather in Paris?"}};
  probe.tools = {
      {"get_weather", "Current weather for a city",
       R"({"type":"object","properties":{"city":{"type":"string"}},"required":["city"]})"}};
  try {
    common_chat_templates_inputs inputs;
    for (const auto& m : probe.messages)
      inputs.messages.push_back(ToCommon(m));
    for (const auto& t : probe.tools)
      inputs.tools.push_back({t.name, t.description, t.parameters});
    inputs.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
    common_chat_params params = common_chat_templates_apply(Templates(templates_), inputs);
    info.tool_format = common_chat_format_name(params.format);
    info.supports_thinking = params.supports_thinking;
    info.thinking_start = params.thinking_start_tag;
    if (!params.thinking_end_tags.empty()) info.thinking_end = params.thinking_end_tags.front();
  } catch (const std::exception& e) {
    info.tool_format = "unavailable (" + FirstLine(e.what()) + ")";
  }
  return info;
}

Result<RenderedChat> ChatTemplates::Render(const ChatInput& input) const {
  RenderedChat out;
  if (!has_template_) {
    if (!input.tools.empty() && input.tool_choice != ToolChoice::kNone) {
      return Status::InvalidArgument(
          "this model has no chat template, so it cannot be given tools; pass one with "
          "--chat-template FILE");
    }
    out.prompt = PlainChat(input.messages, input.add_generation_prompt);
    out.used_fallback = true;
    SNUG_ASSIGN_OR_RETURN(out.grammar,
                          GrammarForCompletion(*model_, input.json_schema, input.grammar));
    return out;
  }
  common_chat_templates_inputs inputs;
  for (const auto& m : input.messages)
    inputs.messages.push_back(ToCommon(m));
  for (const auto& t : input.tools)
    inputs.tools.push_back({t.name, t.description, t.parameters});
  inputs.tool_choice = input.tool_choice == ToolChoice::kRequired ? COMMON_CHAT_TOOL_CHOICE_REQUIRED
                       : input.tool_choice == ToolChoice::kNone   ? COMMON_CHAT_TOOL_CHOICE_NONE
                                                                  : COMMON_CHAT_TOOL_CHOICE_AUTO;
  inputs.parallel_tool_calls = input.parallel_tool_calls.value_or(
      common_chat_templates_get_caps(Templates(templates_))["supports_parallel_tool_calls"]);
  inputs.json_schema = input.json_schema;
  inputs.grammar = input.grammar;
  inputs.add_generation_prompt = input.add_generation_prompt;
  // llama-server's default: thoughts go to reasoning_content, streamed or not.
  inputs.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
  inputs.enable_thinking = input.enable_thinking;
  inputs.chat_template_kwargs = input.template_kwargs;
  common_chat_params params;
  try {
    params = common_chat_templates_apply(Templates(templates_), inputs);
  } catch (const std::exception& e) {
    const std::string reason = FirstLine(e.what());
    if (!input.json_schema.empty() || !input.tools.empty()) {
      return Status::InvalidArgument(
          "the request's JSON schema or tools cannot be turned into a grammar, or the chat "
          "template failed on these messages: " +
          reason);
    }
    return Status::InvalidArgument("the model's chat template failed on these messages: " + reason);
  }
  out.prompt = std::move(params.prompt);
  out.stops = std::move(params.additional_stops);
  if (!params.grammar.empty()) {
    out.grammar.gbnf = std::move(params.grammar);
    out.grammar.lazy = params.grammar_lazy;
    for (const auto& t : params.grammar_triggers)
      out.grammar.triggers.push_back({TriggerKind(t.type), t.value, t.token});
    out.grammar.generation_prompt = params.generation_prompt;
    // Grammars derived from a schema or tools cover the whole answer, including what the
    // template already wrote; a user's own grammar starts where the answer starts.
    out.grammar.prefill = input.grammar.empty();
  } else if (!input.grammar.empty()) {
    // common's Jinja path derives grammars for schemas and tools only; a user's own grammar
    // applies from the first generated token on, as llama-server applies it.
    out.grammar.gbnf = input.grammar;
  }
  SNUG_RETURN_IF_ERROR(CheckGrammar(*model_, out.grammar.gbnf));
  auto parser = std::make_shared<ChatParser>();
  parser->params = common_chat_parser_params(params);
  parser->params.reasoning_format = COMMON_REASONING_FORMAT_DEEPSEEK;
  parser->params.parse_tool_calls = !input.tools.empty() && input.tool_choice != ToolChoice::kNone;
  try {
    if (!params.parser.empty()) parser->params.parser.load(params.parser);
  } catch (const std::exception& e) {
    return Status::Internal("llama.cpp's chat layer produced an unreadable parser: " +
                            FirstLine(e.what()));
  }
  out.parser = std::move(parser);
  out.preserved_tokens = std::move(params.preserved_tokens);
  return out;
}

Result<ChatTemplateReport> DescribeChatTemplate(const std::string& path) {
  ModelOptions options;
  options.path = path;
  options.vocab_only = true;
  SNUG_ASSIGN_OR_RETURN(auto model, Model::Load(options));
  ChatTemplateReport report;
  report.has_template = model->chat().has_template();
  report.source = model->chat().Source();
  report.info = model->chat().Describe();
  return report;
}

// ---------------------------------------------------------------------------------------------
// ChatReader

ChatReader::ChatReader(std::shared_ptr<const ChatParser> parser)
    : parser_(std::move(parser)), previous_(new common_chat_msg()) {}

ChatReader::~ChatReader() {
  delete static_cast<common_chat_msg*>(previous_);
}

std::vector<ChatDelta> ChatReader::Append(const std::string& text, bool final) {
  text_ += text;
  std::vector<ChatDelta> deltas;
  auto& previous = *static_cast<common_chat_msg*>(previous_);
  if (!parser_) {
    if (!text.empty()) deltas.push_back({text});
    message_.content = text_;
    return deltas;
  }
  common_chat_msg parsed;
  try {
    parsed = common_chat_parse(text_, /*is_partial=*/!final, parser_->params);
  } catch (const std::exception& e) {
    if (!final) return deltas;  // more text may make it parse
    // A complete answer the format rejects (cut off by max_tokens, say): keep what the client
    // already has and give the rest as content rather than lose it.
    spdlog::debug("chat output did not parse ({}); returned as content", FirstLine(e.what()));
    parsed = previous;
    const std::string shown = previous.reasoning_content + previous.content;
    parsed.content += text_.size() > shown.size() ? text_.substr(shown.size()) : std::string();
  }
  if (parsed.empty() && !final) return deltas;
  int counter = static_cast<int>(ids_.size());
  parsed.set_tool_call_ids(ids_, [&counter] { return fmt::format("call_{:08x}", ++counter); });
  std::vector<common_chat_msg_diff> diffs;
  try {
    diffs = common_chat_msg_diff::compute_diffs(previous, parsed);
  } catch (const std::exception& e) {
    spdlog::debug("chat output changed shape while streaming: {}", FirstLine(e.what()));
    return deltas;
  }
  for (auto& d : diffs) {
    // A call is announced (id and name) once its name is complete: when its arguments start,
    // another part follows, or the answer ends.
    for (size_t i = 0; i < parsed.tool_calls.size(); ++i) {
      if (static_cast<int>(i) < announced_ || parsed.tool_calls[i].name.empty()) continue;
      if (d.tool_call_index != i || !d.tool_call_delta.arguments.empty() || final) {
        ChatDelta header;
        header.tool_index = static_cast<int>(i);
        header.tool_id = parsed.tool_calls[i].id;
        header.tool_name = parsed.tool_calls[i].name;
        deltas.push_back(std::move(header));
        announced_ = static_cast<int>(i) + 1;
      }
    }
    if (d.tool_call_index == std::string::npos) {
      if (!d.content_delta.empty() || !d.reasoning_content_delta.empty()) {
        ChatDelta delta;
        delta.content = std::move(d.content_delta);
        delta.reasoning_content = std::move(d.reasoning_content_delta);
        deltas.push_back(std::move(delta));
      }
    } else if (static_cast<int>(d.tool_call_index) < announced_ &&
               !d.tool_call_delta.arguments.empty()) {
      ChatDelta delta;
      delta.tool_index = static_cast<int>(d.tool_call_index);
      delta.tool_arguments = std::move(d.tool_call_delta.arguments);
      deltas.push_back(std::move(delta));
    }
  }
  previous = parsed;
  message_.content = parsed.content;
  message_.reasoning_content = parsed.reasoning_content;
  message_.tool_calls.clear();
  for (const auto& call : parsed.tool_calls)
    message_.tool_calls.push_back({call.id, call.name, call.arguments});
  return deltas;
}

// ---------------------------------------------------------------------------------------------

Result<Grammar> GrammarForCompletion(const Model& model, const std::string& json_schema,
                                     const std::string& gbnf) {
  Grammar grammar;
  if (!json_schema.empty() && !gbnf.empty()) {
    return Status::InvalidArgument("send either a JSON schema or a grammar, not both");
  }
  if (!json_schema.empty()) {
    try {
      grammar.gbnf = json_schema_to_grammar(common_json::parse(json_schema));
    } catch (const std::exception& e) {
      return Status::InvalidArgument("the JSON schema cannot be turned into a grammar: " +
                                     FirstLine(e.what()));
    }
  } else {
    grammar.gbnf = gbnf;
  }
  SNUG_RETURN_IF_ERROR(CheckGrammar(model, grammar.gbnf));
  return grammar;
}

}  // namespace snug::engine
