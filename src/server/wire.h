// The OpenAI wire format at the edge: request bodies are parsed once into typed structs (bounds
// checked here, so the rest of the server trusts them) and responses are built from plain values.
// Nothing here throws: malformed JSON and wrong types become InvalidArgument with a sentence.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "engine/chat.h"

namespace snug::server {

// Request bodies keep the client's key order: a JSON schema's property order is the order the
// grammar makes the model write its keys in (models answer better with "reasoning" before
// "answer" when the schema says so), as OpenAI and llama-server keep it.
using RequestJson = nlohmann::ordered_json;

// Upper bound for max_tokens before the context check (which gives the precise limit).
inline constexpr int64_t kMaxTokensLimit = 1 << 24;

// Sampling and length settings shared by chat and text completions.
struct GenerationParams {
  std::string model;
  bool stream = false;
  bool include_usage = false;     // stream_options.include_usage
  std::optional<int> max_tokens;  // max_tokens or max_completion_tokens
  float temperature = 1.0f;       // OpenAI's default
  float top_p = 1.0f;
  float frequency_penalty = 0.0f;  // -2..2, over the last 64 tokens as llama-server applies it
  float presence_penalty = 0.0f;
  // logit_bias: token id -> bias (-100..100), added to the logit; ids are checked against the
  // model's vocabulary when the model is known.
  std::vector<std::pair<int64_t, float>> logit_bias;
  std::optional<uint32_t> seed;
  std::vector<std::string> stop;
  // Log-probabilities: -1 = off, else how many alternatives per token (chat: "logprobs": true
  // with "top_logprobs" 0-20; completions: "logprobs" 0-5).
  int logprobs = -1;
};

// A chat request: sampling settings plus what the template and grammar need (messages with
// tool calls and results, tools, tool_choice, response_format, a raw grammar, template kwargs).
// "developer" messages arrive as "system"; a named tool_choice keeps only that tool and makes a
// call required.
struct ChatRequest {
  GenerationParams params;
  engine::ChatInput input;
};

struct CompletionRequest {
  GenerationParams params;
  std::string prompt;
  std::string json_schema;  // response_format's schema (JSON text), "" = none
  std::string grammar;      // raw GBNF, "" = none
};

// One input of POST /v1/embeddings: text, or token ids of the model's vocabulary (OpenAI's
// array-of-integers form, which clients such as LangChain send).
struct EmbeddingInput {
  std::string text;
  std::vector<int64_t> tokens;
  bool is_tokens = false;
};

struct EmbeddingRequest {
  std::string model;
  std::vector<EmbeddingInput> inputs;
  // encoding_format "base64": each vector as base64 of its little-endian float32 bytes, as
  // OpenAI sends it (the openai SDKs ask for this unless told otherwise); "float" otherwise.
  bool base64 = false;
};

struct PlanApiRequest {
  std::string model;
  std::string ctx;      // "" = the server's default
  std::string kv_type;  // "" = the server's default
};

// Model names sent over the API: letters, digits and ._:-/ (for "org/model:tag"), no "..", no
// leading "/" or ".", at most 200 characters. A name never becomes a file path on its own.
Status ValidateModelName(const std::string& name);

Result<RequestJson> ParseJsonBody(const std::string& body);
Result<ChatRequest> ParseChatRequest(const RequestJson& body);
Result<CompletionRequest> ParseCompletionRequest(const RequestJson& body);
Result<EmbeddingRequest> ParseEmbeddingRequest(const RequestJson& body);
Result<PlanApiRequest> ParsePlanRequest(const RequestJson& body);
// {"model": "..."} for load/unload.
Result<std::string> ParseModelField(const RequestJson& body);

// An embedding as OpenAI's base64 form: the float32 values' little-endian bytes, base64-encoded.
std::string EmbeddingBase64(const std::vector<float>& values);

// Names each tool result after the call it answers (by tool_call_id), for templates that print
// the function's name; results that already carry a name keep it.
void NameToolResults(std::vector<engine::ChatMessage>* messages);

// A fresh id with the given prefix: "chatcmpl-3f9a...".
std::string NewId(const std::string& prefix);
int64_t UnixNow();

}  // namespace snug::server
