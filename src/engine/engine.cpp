// Loading: backend initialisation, llama.cpp log routing, the dry run, model and context.
#include "engine/engine.h"

#include "engine/chat.h"
#include "engine/workers_internal.h"

#include <fmt/format.h>
#include <llama-ext.h>
#include <llama.h>
#include <sched.h>

#include <cmath>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include "config/env.h"
#include "core/log.h"
#include "core/size.h"
#include "gguf/reader.h"
#include "gguf/validate.h"

namespace snug::engine {
namespace {

// llama.cpp logs in fragments (GGML_LOG_LEVEL_CONT continues a line); lines are assembled here and
// sent to spdlog at debug level so a normal run is quiet. The last error line is kept so a failed
// load can say why in its Status.
std::mutex g_log_mutex;
std::string g_log_line;
std::string g_last_error;
ggml_log_level g_line_level = GGML_LOG_LEVEL_DEBUG;

void LogToSpdlog(ggml_log_level level, const char* text, void* /*user_data*/) {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  if (level != GGML_LOG_LEVEL_CONT) g_line_level = level;
  g_log_line += text ? text : "";
  size_t newline;
  while ((newline = g_log_line.find('\n')) != std::string::npos) {
    std::string line = g_log_line.substr(0, newline);
    g_log_line.erase(0, newline + 1);
    if (line.empty()) continue;
    if (g_line_level == GGML_LOG_LEVEL_ERROR) g_last_error = line;
    spdlog::debug("llama.cpp: {}", line);
  }
}

std::string TakeLastLlamaError() {
  std::lock_guard<std::mutex> lock(g_log_mutex);
  std::string error = std::move(g_last_error);
  g_last_error.clear();
  return error;
}

std::string WithLlamaReason(const std::string& message) {
  std::string reason = TakeLastLlamaError();
  return reason.empty() ? message : message + " (llama.cpp: " + reason + ")";
}

Result<ggml_type> KvTypeFromName(const std::string& name) {
  if (name == "f16") return GGML_TYPE_F16;
  if (name == "q8_0") return GGML_TYPE_Q8_0;
  if (name == "q4_0") return GGML_TYPE_Q4_0;
  if (name == "f32") return GGML_TYPE_F32;
  return Status::InvalidArgument("unknown KV cache type '" + name + "'; use f16, q8_0 or q4_0");
}

// llama_model_params with the storage its device list and split point into.
struct ModelParams {
  llama_model_params params = llama_model_default_params();
  std::vector<ggml_backend_dev_t> devices;
  std::vector<float> split;
};

Result<std::unique_ptr<ModelParams>> ToModelParams(const ModelOptions& options) {
  auto out = std::make_unique<ModelParams>();
  llama_model_params& params = out->params;
  params.n_gpu_layers = options.n_gpu_layers;
  params.load_mode = options.use_mmap ? LLAMA_LOAD_MODE_MMAP : LLAMA_LOAD_MODE_NONE;
  params.vocab_only = options.vocab_only;
  if (options.devices.empty() || options.vocab_only) return out;
  // An explicit device list with the layer counts as the split: llama.cpp assigns offload
  // position p to the first device whose cumulative share exceeds p / n_gpu_layers
  // (llama-model.cpp load_tensors), so integer counts place exactly these layers.
  if (options.devices.size() > llama_max_devices()) {
    return Status::InvalidArgument(fmt::format("{} devices is more than llama.cpp's {}",
                                               options.devices.size(), llama_max_devices()));
  }
  int positions = 0;
  out->split.assign(llama_max_devices(), 0.0f);
  for (size_t i = 0; i < options.devices.size(); ++i) {
    const DeviceSlice& slice = options.devices[i];
    ggml_backend_dev_t dev = nullptr;
    if (!slice.rpc_endpoint.empty()) {
      SNUG_ASSIGN_OR_RETURN(dev, WorkerDevice(slice.rpc_endpoint, slice.rpc_device));
    } else {
      dev = ggml_backend_dev_by_name(slice.name.c_str());
      if (dev == nullptr) return Status::NotFound("no device named " + slice.name);
    }
    out->devices.push_back(dev);
    out->split[i] = static_cast<float>(slice.n_layers);
    positions += static_cast<int>(slice.n_layers);
  }
  out->devices.push_back(nullptr);
  params.devices = out->devices.data();
  params.tensor_split = out->split.data();
  params.n_gpu_layers = positions;
  return out;
}

// The CPUs this process may run on (its cpuset / affinity mask, as a container sets it), not
// the machine's: more compute threads than that only queue behind each other.
int UsableCpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0 && CPU_COUNT(&set) > 0) return CPU_COUNT(&set);
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 4 : static_cast<int>(n);
}

int DefaultThreads() {
  return UsableCpus();
}

// An explicit thread count above the usable CPUs is lowered to them, with a warning: thousands
// of threads crash ggml's thread pool and oversubscription only slows decoding down.
int BoundedThreads(int requested, const char* what) {
  if (requested <= 0) return DefaultThreads();
  const int usable = UsableCpus();
  if (requested <= usable) return requested;
  spdlog::warn("{} {} is more than the {} CPUs this process may use; using {}", what, requested,
               usable, usable);
  return usable;
}

Result<llama_context_params> ToContextParams(const ContextOptions& options) {
  if (options.n_ctx == 0) return Status::InvalidArgument("context size must be positive");
  if (options.n_seq_max == 0) return Status::InvalidArgument("parallel sequences must be >= 1");
  if (options.batch_invariant && options.n_seq_max > 1 &&
      (options.kv_unified || options.flash_attn != FlashAttn::kOff)) {
    return Status::InvalidArgument(
        "batch-invariant decoding needs flash attention off and one KV stream per sequence");
  }
  llama_context_params params = llama_context_default_params();
  params.n_ctx = options.n_ctx;
  params.n_batch = options.n_batch;
  params.n_ubatch = std::min(options.n_ubatch, options.n_batch);
  params.n_seq_max = options.n_seq_max;
  params.kv_unified = options.kv_unified;
  params.swa_full = options.swa_full;
  params.n_threads = BoundedThreads(options.n_threads, "--threads");
  params.n_threads_batch = options.n_threads_batch > 0
                               ? BoundedThreads(options.n_threads_batch, "batch threads")
                               : params.n_threads;
  switch (options.flash_attn) {
    case FlashAttn::kAuto:
      params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_AUTO;
      break;
    case FlashAttn::kOn:
      params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_ENABLED;
      break;
    case FlashAttn::kOff:
      params.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
      break;
  }
  SNUG_ASSIGN_OR_RETURN(ggml_type kv, KvTypeFromName(options.kv_type));
  if (kv != GGML_TYPE_F16 && kv != GGML_TYPE_F32 && options.flash_attn == FlashAttn::kOff) {
    // llama.cpp cannot store a quantized V cache without flash attention (llama-context.cpp).
    return Status::InvalidArgument("a quantized KV cache (" + options.kv_type +
                                   ") needs flash attention; do not turn it off");
  }
  params.type_k = kv;
  params.type_v = kv;
  params.no_perf = false;
  return params;
}

// Every path to llama_model_load_from_file passes here: llama.cpp trusts the header and aborts
// the process on values like a repeated token or 4096 layers (gguf/validate.h), so the header is
// read and checked first. Costs one header parse (a few ms; the tokenizer dominates).
Status CheckModelFile(const ModelOptions& options) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(options.path, ec)) {
    return Status::NotFound("model file " + options.path + " does not exist");
  }
  SNUG_ASSIGN_OR_RETURN(gguf::File header, gguf::ReadFile(options.path));
  return options.vocab_only ? gguf::ValidateVocab(header) : gguf::ValidateModel(header);
}

MemoryBreakdown BreakdownOf(const llama_context* ctx) {
  MemoryBreakdown out;
  for (const auto& [buft, mb] : llama_get_memory_breakdown(ctx)) {
    MemoryPart part;
    part.buffer = ggml_backend_buft_name(buft);
    part.host = ggml_backend_buft_is_host(buft);
    part.model_bytes = mb.model;
    part.context_bytes = mb.context;
    part.compute_bytes = mb.compute;
    out.parts.push_back(std::move(part));
  }
  return out;
}

// Parses SNUG_FAULT ("decode_fail@5", "nan_logits@3", comma separated).
void ParseFault(const std::string& spec, int* fail_decode_at, int* nan_logits_at) {
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    const std::string item = spec.substr(start, end - start);
    const size_t at = item.find('@');
    if (at != std::string::npos) {
      const std::string kind = item.substr(0, at);
      const int n = std::atoi(item.c_str() + at + 1);
      if (kind == "decode_fail") *fail_decode_at = n;
      if (kind == "nan_logits") *nan_logits_at = n;
    }
    if (!item.empty() && at == std::string::npos) {
      spdlog::warn("ignoring SNUG_FAULT item '{}' (expected kind@N)", item);
    }
    start = end + 1;
  }
}

// The pooling the GGUF asks for ("<arch>.pooling_type"), or UNSPECIFIED when it names none.
enum llama_pooling_type ModelPooling(const llama_model* model) {
  char arch[128];
  if (llama_model_meta_val_str(model, "general.architecture", arch, sizeof(arch)) <= 0) {
    return LLAMA_POOLING_TYPE_UNSPECIFIED;
  }
  char value[32];
  const std::string key = std::string(arch) + ".pooling_type";
  if (llama_model_meta_val_str(model, key.c_str(), value, sizeof(value)) <= 0) {
    return LLAMA_POOLING_TYPE_UNSPECIFIED;
  }
  return static_cast<enum llama_pooling_type>(std::atoi(value));
}

}  // namespace

void InitBackend() {
  static std::once_flag once;
  std::call_once(once, [] {
    llama_log_set(LogToSpdlog, nullptr);
    llama_backend_init();
    InstallWorkerGuard();
  });
}

// ---------------------------------------------------------------------------------------------

uint64_t MemoryBreakdown::HostBytes() const {
  uint64_t total = 0;
  for (const auto& p : parts) {
    if (p.host) total += p.model_bytes + p.context_bytes + p.compute_bytes;
  }
  return total;
}

uint64_t MemoryBreakdown::DeviceBytes() const {
  uint64_t total = 0;
  for (const auto& p : parts) {
    if (!p.host) total += p.model_bytes + p.context_bytes + p.compute_bytes;
  }
  return total;
}

uint64_t MemoryBreakdown::TotalBytes() const {
  return HostBytes() + DeviceBytes();
}

std::string MemoryBreakdown::ToString() const {
  std::string out;
  for (const auto& p : parts) {
    if (!out.empty()) out += "; ";
    out += fmt::format("{} {} (model {}, kv {}, compute {})", p.buffer,
                       FormatSize(p.model_bytes + p.context_bytes + p.compute_bytes),
                       FormatSize(p.model_bytes), FormatSize(p.context_bytes),
                       FormatSize(p.compute_bytes));
  }
  return out;
}

namespace {

// llama.cpp's no-alloc dry run of a context with these parameters (as common/fit.cpp does:
// nothing is read, mapped or allocated).
Result<MemoryBreakdown> DryRunWith(const ModelOptions& model_options,
                                   const llama_context_params& cparams) {
  InitBackend();
  SNUG_RETURN_IF_ERROR(CheckModelFile(model_options));
  SNUG_ASSIGN_OR_RETURN(std::unique_ptr<ModelParams> holder, ToModelParams(model_options));
  llama_model_params& mparams = holder->params;
  mparams.no_alloc = true;
  mparams.load_mode = LLAMA_LOAD_MODE_NONE;
  std::unique_ptr<llama_model, decltype(&llama_model_free)> model(
      llama_model_load_from_file(model_options.path.c_str(), mparams), &llama_model_free);
  if (model == nullptr) {
    return Status::Corrupt(WithLlamaReason("llama.cpp could not read " + model_options.path));
  }
  std::unique_ptr<llama_context, decltype(&llama_free)> ctx(
      llama_init_from_model(model.get(), cparams), &llama_free);
  if (ctx == nullptr) {
    return Status::Runtime(
        WithLlamaReason("llama.cpp could not plan a context for " + model_options.path));
  }
  return BreakdownOf(ctx.get());
}

}  // namespace

Result<MemoryBreakdown> DryRun(const ModelOptions& model_options,
                               const ContextOptions& context_options) {
  SNUG_ASSIGN_OR_RETURN(llama_context_params cparams, ToContextParams(context_options));
  return DryRunWith(model_options, cparams);
}

// ---------------------------------------------------------------------------------------------
// Model

Result<std::unique_ptr<Model>> Model::Load(const ModelOptions& options) {
  InitBackend();
  SNUG_RETURN_IF_ERROR(CheckModelFile(options));
  SNUG_ASSIGN_OR_RETURN(std::unique_ptr<ModelParams> params, ToModelParams(options));
  llama_model* model = llama_model_load_from_file(options.path.c_str(), params->params);
  if (model == nullptr) {
    return Status::Corrupt(WithLlamaReason("llama.cpp could not load " + options.path));
  }
  std::unique_ptr<Model> loaded(new Model(model, options.path));
  SNUG_ASSIGN_OR_RETURN(loaded->chat_, ChatTemplates::Create(*loaded, options.chat_template));
  const llama_vocab* vocab = llama_model_get_vocab(model);
  const auto type = llama_vocab_type(vocab);
  if (type == LLAMA_VOCAB_TYPE_BPE || type == LLAMA_VOCAB_TYPE_SPM) {
    for (Token id = 0; id < loaded->n_vocab(); ++id) {
      loaded->longest_token_bytes_ =
          std::max(loaded->longest_token_bytes_, loaded->TokenText(id).size());
    }
  }
  return loaded;
}

Model::Model(llama_model* model, std::string path) : model_(model), path_(std::move(path)) {}

Model::~Model() {
  chat_.reset();  // before the model it reads
  llama_model_free(model_);
}

Result<std::vector<Token>> Model::Tokenize(std::string_view text, bool add_special,
                                           bool parse_special) const {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  if (text.size() > static_cast<size_t>(INT32_MAX / 2)) {
    return Status::InvalidArgument("prompt is too large to tokenize");
  }
  std::vector<Token> tokens(text.size() + 8);
  int32_t n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                             static_cast<int32_t>(tokens.size()), add_special, parse_special);
  if (n == INT32_MIN) return Status::InvalidArgument("prompt is too large to tokenize");
  if (n < 0) {
    tokens.resize(-n);
    n = llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), tokens.data(),
                       static_cast<int32_t>(tokens.size()), add_special, parse_special);
    if (n < 0) return Status::Internal("tokenizer disagreed with itself about the token count");
  }
  tokens.resize(n);
  return tokens;
}

Result<std::vector<Token>> Model::TokenizeChat(std::string_view templated_text) const {
  SNUG_ASSIGN_OR_RETURN(auto tokens, Tokenize(templated_text, true, true));
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  const Token bos = llama_vocab_bos(vocab);
  if (llama_vocab_get_add_bos(vocab) && bos != LLAMA_TOKEN_NULL && tokens.size() >= 2 &&
      tokens[0] == bos && tokens[1] == bos) {
    tokens.erase(tokens.begin());
  }
  return tokens;
}

std::string Model::TokenPiece(Token token) const {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  char small[64];
  int32_t n = llama_token_to_piece(vocab, token, small, sizeof(small), 0, false);
  if (n >= 0) return std::string(small, n);
  std::string big(-n, '\0');
  n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), 0, false);
  big.resize(n < 0 ? 0 : n);
  return big;
}

std::string Model::TokenText(Token token) const {
  const llama_vocab* vocab = llama_model_get_vocab(model_);
  char small[64];
  int32_t n = llama_token_to_piece(vocab, token, small, sizeof(small), 0, /*special=*/true);
  if (n >= 0) return std::string(small, n);
  std::string big(-n, '\0');
  n = llama_token_to_piece(vocab, token, big.data(), static_cast<int32_t>(big.size()), 0, true);
  big.resize(n < 0 ? 0 : n);
  return big;
}

std::optional<Token> Model::SingleToken(const std::string& text) const {
  auto tokens = Tokenize(text, /*add_special=*/false, /*parse_special=*/true);
  if (!tokens.ok() || tokens->size() != 1) return std::nullopt;
  return (*tokens)[0];
}

std::string Model::Detokenize(const std::vector<Token>& tokens) const {
  std::string out;
  for (Token t : tokens)
    out += TokenPiece(t);
  return out;
}

bool Model::IsEndOfGeneration(Token token) const {
  return llama_vocab_is_eog(llama_model_get_vocab(model_), token);
}

int Model::n_ctx_train() const {
  return llama_model_n_ctx_train(model_);
}
int Model::n_layer() const {
  return llama_model_n_layer(model_);
}
int Model::n_vocab() const {
  return llama_vocab_n_tokens(llama_model_get_vocab(model_));
}
int Model::n_embd() const {
  return llama_model_n_embd(model_);
}

std::string Model::Description() const {
  char buf[256];
  const int n = llama_model_desc(model_, buf, sizeof(buf));
  return n > 0 ? std::string(buf, std::min<int>(n, sizeof(buf) - 1)) : std::string();
}

// ---------------------------------------------------------------------------------------------
// Context

double Timings::PromptTokensPerSecond() const {
  return prompt_ms > 0 ? prompt_tokens * 1000.0 / prompt_ms : 0;
}
double Timings::DecodeTokensPerSecond() const {
  return decode_ms > 0 ? decode_tokens * 1000.0 / decode_ms : 0;
}

Result<std::unique_ptr<Context>> Context::Create(Model* model, const ContextOptions& options) {
  SNUG_ASSIGN_OR_RETURN(llama_context_params params, ToContextParams(options));
  llama_context* ctx = llama_init_from_model(model->raw(), params);
  if (ctx == nullptr) {
    return Status::Runtime(WithLlamaReason(fmt::format(
        "llama.cpp could not create a context of {} tokens with {} KV cache (out of memory?)",
        options.n_ctx, options.kv_type)));
  }
  std::unique_ptr<Context> context(new Context());
  context->model_ = model;
  context->ctx_ = ctx;
  context->options_ = options;
  if (auto fault = env::Fault()) {
    ParseFault(*fault, &context->fail_decode_at_, &context->nan_logits_at_);
    spdlog::debug("fault injection: decode_fail@{} nan_logits@{}", context->fail_decode_at_,
                  context->nan_logits_at_);
  }
  return context;
}

Context::~Context() {
  llama_free(ctx_);
}

uint32_t Context::n_ctx() const {
  return llama_n_ctx(ctx_);
}
uint32_t Context::n_ctx_seq() const {
  return llama_n_ctx_seq(ctx_);
}
bool Context::batch_invariant() const {
  return n_seq_max() == 1 || options_.batch_invariant;
}

uint32_t Context::n_seq_max() const {
  return llama_n_seq_max(ctx_);
}
uint32_t Context::n_batch() const {
  return llama_n_batch(ctx_);
}
MemoryBreakdown Context::Memory() const {
  return BreakdownOf(ctx_);
}

Timings Context::Perf() const {
  const llama_perf_context_data perf = llama_perf_context(ctx_);
  Timings t;
  t.prompt_ms = perf.t_p_eval_ms;
  t.prompt_tokens = perf.n_p_eval;
  t.decode_ms = perf.t_eval_ms;
  t.decode_tokens = perf.n_eval;
  return t;
}

void Context::ResetPerf() {
  llama_perf_context_reset(ctx_);
}

int Context::Decode(const void* batch_ptr) {
  ++decode_calls_;
  nan_injected_ = nan_logits_at_ > 0 && decode_calls_ == nan_logits_at_;
  if (fail_decode_at_ > 0 && decode_calls_ == fail_decode_at_) {
    spdlog::debug("fault injection: decode call {} fails", decode_calls_);
    return -3;
  }
  return llama_decode(ctx_, *static_cast<const llama_batch*>(batch_ptr));
}

// ---------------------------------------------------------------------------------------------

Result<Loaded> LoadFitted(const ModelOptions& model_options, const ContextOptions& context_options,
                          const LoadBudget& budget) {
  Loaded loaded;
  if (budget.host_bytes > 0 || budget.device_bytes > 0) {
    SNUG_ASSIGN_OR_RETURN(MemoryBreakdown dry, DryRun(model_options, context_options));
    const std::string source = budget.source.empty() ? "" : " (" + budget.source + ")";
    uint64_t host_compute = 0;
    for (const MemoryPart& part : dry.parts)
      host_compute += part.host ? part.compute_bytes : 0;
    const uint64_t host_need =
        dry.HostBytes() - std::min(budget.host_compute_untouched_bytes, host_compute);
    if (budget.host_bytes > 0 && host_need > budget.host_bytes) {
      return Status::DoesNotFit(fmt::format(
          "llama.cpp's own dry run needs {} of host memory at ctx {} with {} KV cache ({}{}), "
          "but the budget is {}{}; lower --ctx or allow --kv-type auto",
          FormatSize(host_need), context_options.n_ctx, context_options.kv_type, dry.ToString(),
          budget.host_compute_untouched_bytes > 0
              ? fmt::format(", less {} of compute buffer generation never writes",
                            FormatSize(dry.HostBytes() - host_need))
              : "",
          FormatSize(budget.host_bytes), source));
    }
    if (budget.device_bytes > 0 && dry.DeviceBytes() > budget.device_bytes) {
      return Status::DoesNotFit(fmt::format(
          "llama.cpp's own dry run needs {} of accelerator memory ({}), but {} is free{}; lower "
          "--ngl or --ctx",
          FormatSize(dry.DeviceBytes()), dry.ToString(), FormatSize(budget.device_bytes), source));
    }
    spdlog::debug("dry run: {} (host {}, budget {})", dry.ToString(), FormatSize(dry.HostBytes()),
                  FormatSize(budget.host_bytes));
    loaded.dry_run = std::move(dry);
  }
  SNUG_ASSIGN_OR_RETURN(loaded.model, Model::Load(model_options));
  SNUG_ASSIGN_OR_RETURN(loaded.context, Context::Create(loaded.model.get(), context_options));
  return loaded;
}

// ---------------------------------------------------------------------------------------------
// Embeddings

namespace {

// Tokens per decode when snug averages token states itself. llama.cpp computes logits for every
// token of an embedding context (llama-context.cpp: "when computing embeddings, all tokens are
// output"), so a whole 4k-token input of a 128k-vocabulary model would take 2 GiB of logits; in
// chunks of 128 it takes 64 MiB.
constexpr size_t kEmbedChunk = 128;

// True when the GGUF names no pooling (every generative model): the embedding is then the mean of
// the token states, which snug sums chunk by chunk (causal attention makes chunks exact).
bool AveragesTokenStates(const Model& model) {
  const enum llama_pooling_type pooling = ModelPooling(model.raw());
  return pooling == LLAMA_POOLING_TYPE_UNSPECIFIED || pooling == LLAMA_POOLING_TYPE_NONE;
}

// The embedding context for inputs of up to `longest` tokens, its size rounded up to 256 so that
// a few sizes cover every request (their memory, EmbedContextBytes, is measured once each).
// Models with their own pooling (encoders, which attend over the whole input at once) need the
// input in one physical batch; token-state averaging decodes kEmbedChunk tokens at a time.
Result<llama_context_params> EmbedContextParams(const Model& model, size_t longest, int n_threads) {
  const enum llama_pooling_type pooling = ModelPooling(model.raw());
  if (pooling == LLAMA_POOLING_TYPE_RANK) {
    return Status::InvalidArgument(model.Description() +
                                   " is a reranking model; it scores pairs instead of embedding");
  }
  const bool averages = AveragesTokenStates(model);
  size_t n_ctx = (longest + 255) / 256 * 256;
  if (model.n_ctx_train() > 0) {
    n_ctx = std::max(longest, std::min(n_ctx, static_cast<size_t>(model.n_ctx_train())));
  }
  ContextOptions context_options;
  context_options.n_ctx = static_cast<uint32_t>(n_ctx);
  context_options.n_batch = static_cast<uint32_t>(averages ? std::min(n_ctx, kEmbedChunk) : n_ctx);
  context_options.n_ubatch = context_options.n_batch;
  context_options.n_seq_max = 1;
  context_options.n_threads = n_threads;
  SNUG_ASSIGN_OR_RETURN(llama_context_params params, ToContextParams(context_options));
  params.embeddings = true;
  params.pooling_type = averages ? LLAMA_POOLING_TYPE_NONE : pooling;
  params.no_perf = true;
  return params;
}

}  // namespace

Result<uint64_t> EmbedContextBytes(const Model& model, size_t longest) {
  SNUG_ASSIGN_OR_RETURN(llama_context_params params, EmbedContextParams(model, longest, 1));
  static std::mutex mu;
  static std::map<std::pair<std::string, uint32_t>, uint64_t> measured;
  const auto key = std::make_pair(model.path(), params.n_ctx);
  {
    std::lock_guard lock(mu);
    if (auto it = measured.find(key); it != measured.end()) return it->second;
  }
  // llama.cpp's own no-alloc dry run of that context, everything counted on the host.
  ModelOptions model_options;
  model_options.path = model.path();
  SNUG_ASSIGN_OR_RETURN(MemoryBreakdown dry, DryRunWith(model_options, params));
  uint64_t bytes = 0;
  for (const MemoryPart& part : dry.parts)
    bytes += part.context_bytes + part.compute_bytes;
  // Plus the pooled output, one vector per sequence.
  bytes += static_cast<uint64_t>(model.n_embd()) * sizeof(float);
  std::lock_guard lock(mu);
  measured[key] = bytes;
  return bytes;
}

Result<std::vector<std::vector<float>>> Embed(const Model& model,
                                              const std::vector<std::vector<Token>>& inputs,
                                              const EmbedOptions& options) {
  if (inputs.empty()) return Status::InvalidArgument("there is nothing to embed: give an input");
  const int n_ctx_train = model.n_ctx_train();
  size_t longest = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (inputs[i].empty()) {
      return Status::InvalidArgument(fmt::format("input {} is empty; give it some text", i));
    }
    if (n_ctx_train > 0 && inputs[i].size() > static_cast<size_t>(n_ctx_train)) {
      return Status::InvalidArgument(
          fmt::format("input {} is {} tokens but the model was trained on at most {}; shorten it",
                      i, inputs[i].size(), n_ctx_train));
    }
    longest = std::max(longest, inputs[i].size());
  }

  SNUG_ASSIGN_OR_RETURN(llama_context_params params,
                        EmbedContextParams(model, longest, options.n_threads));
  std::unique_ptr<llama_context, decltype(&llama_free)> ctx(
      llama_init_from_model(model.raw(), params), &llama_free);
  if (ctx == nullptr) {
    return Status::Runtime(WithLlamaReason(
        fmt::format("llama.cpp could not create an embedding context of {} tokens (out of memory?)",
                    params.n_ctx)));
  }

  const int n_embd = model.n_embd();
  const bool averages = AveragesTokenStates(model);
  std::vector<std::vector<float>> out;
  out.reserve(inputs.size());
  std::vector<double> sum(n_embd);
  std::vector<float> mean(n_embd);
  for (size_t i = 0; i < inputs.size(); ++i) {
    // Each input is its own sequence 0 in an emptied cache, so inputs never see each other.
    llama_memory_clear(llama_get_memory(ctx.get()), true);
    std::vector<Token> tokens = inputs[i];
    const size_t step = averages ? params.n_batch : tokens.size();
    std::fill(sum.begin(), sum.end(), 0.0);
    for (size_t start = 0; start < tokens.size(); start += step) {
      const auto n = static_cast<int32_t>(std::min(step, tokens.size() - start));
      // Positions continue from what the cache holds for sequence 0.
      const int rc = llama_decode(ctx.get(), llama_batch_get_one(tokens.data() + start, n));
      if (rc != 0) {
        return Status::Runtime(WithLlamaReason(fmt::format(
            "llama_decode failed with status {} while embedding input {}; no vector was returned",
            rc, i)));
      }
      for (int32_t t = 0; averages && t < n; ++t) {
        const float* state = llama_get_embeddings_ith(ctx.get(), t);
        if (state == nullptr) {
          return Status::Runtime(
              WithLlamaReason(fmt::format("llama.cpp returned no token state for input {}", i)));
        }
        for (int j = 0; j < n_embd; ++j)
          sum[j] += state[j];
      }
    }
    const float* pooled = nullptr;
    if (averages) {
      for (int j = 0; j < n_embd; ++j)
        mean[j] = static_cast<float>(sum[j] / static_cast<double>(tokens.size()));
      pooled = mean.data();
    } else {
      pooled = llama_get_embeddings_seq(ctx.get(), 0);
    }
    if (pooled == nullptr) {
      return Status::Runtime(
          WithLlamaReason(fmt::format("llama.cpp returned no pooled embedding for input {}", i)));
    }
    double norm_sq = 0;
    for (int j = 0; j < n_embd; ++j)
      norm_sq += static_cast<double>(pooled[j]) * pooled[j];
    if (!std::isfinite(norm_sq) || norm_sq <= 0) {
      return Status::Runtime(fmt::format(
          "the embedding of input {} is not a finite non-zero vector (backend fault?); it was "
          "discarded",
          i));
    }
    const double inv_norm = 1.0 / std::sqrt(norm_sq);
    std::vector<float> vector(n_embd);
    for (int j = 0; j < n_embd; ++j)
      vector[j] = static_cast<float>(pooled[j] * inv_norm);
    out.push_back(std::move(vector));
  }
  return out;
}

std::string PromptTooLongMessage(size_t prompt_tokens, uint32_t n_ctx) {
  return fmt::format(
      "prompt is {} tokens but the context holds {}; raise --ctx or shorten the prompt",
      prompt_tokens, n_ctx);
}

}  // namespace snug::engine
