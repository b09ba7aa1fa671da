#include "engine/probe.h"

#include <nlohmann/json.hpp>

#include "engine/chat.h"

namespace snug::engine {

using nlohmann::json;

Status ProbeModel(const ModelOptions& model, const ContextOptions& context) {
  // The context as planned: hyper-parameters, tensors and the compute graph, allocating nothing.
  SNUG_RETURN_IF_ERROR(DryRun(model, context).status());
  // The tokenizer and the chat template, as the first request will use them.
  ModelOptions vocab = model;
  vocab.vocab_only = true;
  SNUG_ASSIGN_OR_RETURN(auto loaded, Model::Load(vocab));
  SNUG_ASSIGN_OR_RETURN(auto plain, loaded->Tokenize("Hello, world! 123 <|x|> é", true, true));
  loaded->Detokenize(plain);
  ChatInput chat;
  chat.messages.push_back({"system", "You are brief.", "", {}, "", ""});
  chat.messages.push_back({"user", "Hello!", "", {}, "", ""});
  SNUG_ASSIGN_OR_RETURN(RenderedChat rendered, loaded->chat().Render(chat));
  SNUG_ASSIGN_OR_RETURN(auto prompt, loaded->TokenizeChat(rendered.prompt));
  loaded->Detokenize(prompt);
  return Status::Ok();
}

std::string ProbeRequestJson(const ModelOptions& model, const ContextOptions& context) {
  return json{{"path", model.path},
              {"chat_template", model.chat_template},
              {"n_gpu_layers", model.n_gpu_layers},
              {"use_mmap", model.use_mmap},
              {"n_ctx", context.n_ctx},
              {"kv_type", context.kv_type},
              {"flash_attn", static_cast<int>(context.flash_attn)},
              {"n_seq_max", context.n_seq_max},
              {"kv_unified", context.kv_unified},
              {"swa_full", context.swa_full},
              {"batch_invariant", context.batch_invariant},
              {"n_batch", context.n_batch},
              {"n_ubatch", context.n_ubatch},
              {"n_threads", context.n_threads}}
      .dump();
}

Status ParseProbeRequest(const std::string& text, ModelOptions* model, ContextOptions* context) {
  const json j = json::parse(text, nullptr, false);
  if (!j.is_object()) return Status::InvalidArgument("probe-model expects a JSON object on stdin");
  try {
    model->path = j.at("path").get<std::string>();
    model->chat_template = j.at("chat_template").get<std::string>();
    model->n_gpu_layers = j.at("n_gpu_layers").get<int>();
    model->use_mmap = j.at("use_mmap").get<bool>();
    context->n_ctx = j.at("n_ctx").get<uint32_t>();
    context->kv_type = j.at("kv_type").get<std::string>();
    context->flash_attn = static_cast<FlashAttn>(j.at("flash_attn").get<int>());
    context->n_seq_max = j.at("n_seq_max").get<uint32_t>();
    context->kv_unified = j.at("kv_unified").get<bool>();
    context->swa_full = j.at("swa_full").get<bool>();
    context->batch_invariant = j.at("batch_invariant").get<bool>();
    context->n_batch = j.at("n_batch").get<uint32_t>();
    context->n_ubatch = j.at("n_ubatch").get<uint32_t>();
    context->n_threads = j.at("n_threads").get<int>();
  } catch (const json::exception& e) {
    return Status::InvalidArgument(std::string("probe-model request: ") + e.what());
  }
  return Status::Ok();
}

}  // namespace snug::engine
