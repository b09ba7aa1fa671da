// Chat prompts from the template stored in the GGUF (tokenizer.chat_template).
#include <llama.h>

#include <vector>

#include "core/log.h"
#include "engine/engine.h"

namespace snug::engine {
namespace {

// Used when the GGUF carries no template llama.cpp recognises: plain, readable, and announced
// (used_fallback) so callers can tell the user why answers may look odd.
std::string PlainChat(const std::vector<ChatMessage>& messages, bool add_assistant) {
  std::string out;
  for (const auto& m : messages)
    out += m.role + ": " + m.content + "\n";
  if (add_assistant) out += "assistant:";
  return out;
}

}  // namespace

Result<ChatPrompt> ApplyChatTemplate(const Model& model, const std::vector<ChatMessage>& messages,
                                     bool add_assistant) {
  ChatPrompt prompt;
  const char* tmpl = llama_model_chat_template(model.raw(), nullptr);
  if (tmpl == nullptr) {
    spdlog::warn("{} has no chat template; using a plain 'role: content' format", model.path());
    prompt.text = PlainChat(messages, add_assistant);
    prompt.used_fallback = true;
    return prompt;
  }
  std::vector<llama_chat_message> chat;
  size_t total = 0;
  for (const auto& m : messages) {
    chat.push_back({m.role.c_str(), m.content.c_str()});
    total += m.role.size() + m.content.size();
  }
  std::vector<char> buf(2 * total + 256);
  int32_t n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), add_assistant, buf.data(),
                                        static_cast<int32_t>(buf.size()));
  if (n > static_cast<int32_t>(buf.size())) {
    buf.resize(n);
    n = llama_chat_apply_template(tmpl, chat.data(), chat.size(), add_assistant, buf.data(),
                                  static_cast<int32_t>(buf.size()));
  }
  if (n < 0) {
    spdlog::warn(
        "{}: llama.cpp does not recognise the model's chat template; using a plain "
        "'role: content' format",
        model.path());
    prompt.text = PlainChat(messages, add_assistant);
    prompt.used_fallback = true;
    return prompt;
  }
  prompt.text.assign(buf.data(), n);
  return prompt;
}

}  // namespace snug::engine
