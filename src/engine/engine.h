// The engine: the only part of snug that talks to llama.cpp. It loads a model with settings the
// planner chose (after confirming them against llama.cpp's own dry-run figures), tokenizes,
// applies the GGUF chat template, and generates text for one or many sequences that share one
// KV cache (continuous batching). Every llama_decode result and every sampled row of logits is
// checked: a backend failure ends the affected sequences with an error, never with garbage.
//
// Threading: a Model may be shared; a Context and its Runner are used from one thread at a time.
// llama.h is NOT included here: callers (cli, server) see only snug types.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

struct llama_model;
struct llama_context;

namespace snug::engine {

class ChatTemplates;  // engine/chat.h

using Token = int32_t;
using SeqId = int32_t;

// Routes llama.cpp's log through spdlog (debug level) and initialises the backends. Idempotent;
// Model::Load and DryRun call it, so callers only need it to silence logs before other work.
void InitBackend();

// ---------------------------------------------------------------------------------------------
// Loading

// Offload positions on one device, in llama.cpp's order (the first device takes the first
// offloaded layers; the output layer is the last position, on the last device).
struct DeviceSlice {
  std::string name;          // a local ggml device ("CUDA0"); unused with rpc_endpoint
  std::string rpc_endpoint;  // a worker's "HOST:PORT" (engine/workers.h)
  uint32_t rpc_device = 0;   // the device's index on that worker
  uint32_t n_layers = 0;     // its layers, plus 1 on the last slice for the output layer
};

struct ModelOptions {
  std::string path;  // local .gguf file
  // Jinja chat template that replaces the GGUF's (--chat-template FILE's text); "" = the GGUF's.
  std::string chat_template;
  int n_gpu_layers = 0;  // layers offloaded to the accelerator; -1 = all
  // The placement, device by device (the planner's, across workers too): n_gpu_layers is then
  // their sum. Empty: n_gpu_layers over this machine's accelerators as llama.cpp splits them.
  std::vector<DeviceSlice> devices;
  bool use_mmap = true;     // map the file instead of reading it into anonymous memory
  bool vocab_only = false;  // tokenizer and chat template only, no weights (fast; `snug show`)
};

enum class FlashAttn { kAuto, kOn, kOff };

struct ContextOptions {
  uint32_t n_ctx = 4096;        // total KV cells, shared by all sequences (kv_unified)
  std::string kv_type = "f16";  // "f16" | "q8_0" | "q4_0" (K and V)
  FlashAttn flash_attn = FlashAttn::kAuto;
  uint32_t n_seq_max = 1;  // parallel sequences (server slots)
  // One KV buffer for all sequences (any may use up to n_ctx) or, when false, n_ctx / n_seq_max
  // cells per sequence. Follow the plan's choice (plan::Settings::kv_unified).
  bool kv_unified = true;
  // Sliding-window layers keep the full context (llama.cpp's default) or only the window (the
  // planner's assumption, plan::Settings::swa_full = false).
  bool swa_full = false;
  // Decode so that batched sequences get bit-identical logits to solo runs: needs flash attention
  // off and kv_unified false (Create refuses otherwise). llama.cpp's CPU flash attention picks
  // its kernel by batch shape, and in a shared KV buffer a sequence's cells interleave with
  // others', changing the order attention sums them in; the remaining kernels compute each row
  // the same whatever the batch for quantized weights (tests/engine/batch_invariance_test.cpp).
  // GPU kernels are not known to be invariant.
  bool batch_invariant = false;
  uint32_t n_batch = 2048;  // logical batch (tokens per llama_decode)
  uint32_t n_ubatch = 512;  // physical batch (compute buffer size depends on it)
  int n_threads = 0;        // generation threads; 0 = hardware concurrency
  int n_threads_batch = 0;  // prompt threads; 0 = same as n_threads
};

// What llama.cpp itself allocates (or would allocate, in a dry run), per buffer type.
struct MemoryPart {
  std::string buffer;  // ggml buffer type name: "CPU", "CPU_REPACK", "CUDA0", ...
  bool host = false;   // lives in host memory
  uint64_t model_bytes = 0;
  uint64_t context_bytes = 0;  // KV cache / recurrent state
  uint64_t compute_bytes = 0;
};
struct MemoryBreakdown {
  std::vector<MemoryPart> parts;
  uint64_t HostBytes() const;    // sum over host parts
  uint64_t DeviceBytes() const;  // sum over non-host parts
  uint64_t TotalBytes() const;
  std::string ToString() const;  // "host 4.1 GiB (model 1.9 GiB, kv 0.9 GiB, compute 0.3 GiB)..."
};

// Budget the dry run is checked against (usually hw::Budget after headroom). 0 = unchecked.
struct LoadBudget {
  uint64_t host_bytes = 0;
  uint64_t device_bytes = 0;  // summed over accelerators; ignored when 0
  std::string source;         // named in the DoesNotFit message: "cgroup v1 limit"
  // Of llama.cpp's host compute buffer, the bytes generation never writes (the plan's reserved
  // minus touched compute: logits rows for n_ubatch outputs when one per sequence is asked for).
  // malloc'ed pages never written are never resident, so the check does not count them.
  uint64_t host_compute_untouched_bytes = 0;
};

// llama.cpp's own no-alloc dry run (llama_model_params.no_alloc + llama_get_memory_breakdown):
// reads only the header, allocates nothing. Costs a few hundred ms on a 3B model.
Result<MemoryBreakdown> DryRun(const ModelOptions& model, const ContextOptions& context);

class Model {
 public:
  // Loads the weights. Stores nothing and returns NotFound / Corrupt / Runtime on failure.
  static Result<std::unique_ptr<Model>> Load(const ModelOptions& options);
  ~Model();
  Model(const Model&) = delete;
  Model& operator=(const Model&) = delete;

  // add_special: prepend BOS etc. as the model's vocab asks. parse_special: "<|im_start|>" in the
  // text becomes the control token (true for chat-templated prompts).
  Result<std::vector<Token>> Tokenize(std::string_view text, bool add_special,
                                      bool parse_special) const;
  // Tokenizes a rendered chat prompt (chat().Render): special tokens parsed, BOS added as the vocab
  // asks unless the template already spelled it out (Llama 3's "<|begin_of_text|>"), so the model
  // never sees two BOS tokens. run and serve both use this, so a chat tokenizes the same way in
  // each.
  Result<std::vector<Token>> TokenizeChat(std::string_view templated_text) const;
  // Raw bytes of one token (may be an incomplete UTF-8 sequence). Control tokens render as "".
  std::string TokenPiece(Token token) const;
  // The text of a token, control tokens included ("<tool_call>"), for parsers that read them.
  std::string TokenText(Token token) const;
  // The single token this text is, if the vocabulary has one (special tokens included).
  std::optional<Token> SingleToken(const std::string& text) const;
  // The chat templates: the GGUF's or ModelOptions::chat_template, parsed once at load.
  const ChatTemplates& chat() const { return *chat_; }
  std::string Detokenize(const std::vector<Token>& tokens) const;
  bool IsEndOfGeneration(Token token) const;

  // The most input bytes one token can stand for: the longest token text, for tokenizers that
  // keep every input byte (byte-level BPE, SentencePiece). Then a text of N bytes is at least
  // N / longest tokens, so a prompt far too long for the context is known without tokenizing
  // it. 0 for tokenizers that normalize (WordPiece, Unigram), where no such bound holds.
  size_t longest_token_bytes() const { return longest_token_bytes_; }

  int n_ctx_train() const;
  int n_layer() const;
  int n_vocab() const;
  int n_embd() const;               // width of the hidden state (and of Embed's vectors)
  std::string Description() const;  // "llama 1B Q4_K - Medium"
  const std::string& path() const { return path_; }

  llama_model* raw() const { return model_; }  // for engine internals

 private:
  Model(llama_model* model, std::string path);
  llama_model* model_;
  std::string path_;
  std::unique_ptr<ChatTemplates> chat_;
  size_t longest_token_bytes_ = 0;
};

// ---------------------------------------------------------------------------------------------
// Context

struct Timings {
  double prompt_ms = 0;
  int prompt_tokens = 0;
  double decode_ms = 0;
  int decode_tokens = 0;
  double PromptTokensPerSecond() const;
  double DecodeTokensPerSecond() const;
};

class Context {
 public:
  // Creates the context (allocates KV cache and compute buffers). The model must outlive it.
  // Fault injection (SNUG_FAULT, see env.h) is read here once.
  static Result<std::unique_ptr<Context>> Create(Model* model, const ContextOptions& options);
  ~Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  Model& model() const { return *model_; }
  uint32_t n_ctx() const;      // total KV cells
  uint32_t n_ctx_seq() const;  // most positions one sequence may use
  uint32_t n_seq_max() const;
  uint32_t n_batch() const;
  const ContextOptions& options() const { return options_; }
  // A sequence's logits do not depend on what else is decoded with it (one slot, or
  // ContextOptions::batch_invariant).
  bool batch_invariant() const;
  MemoryBreakdown Memory() const;  // what llama.cpp actually allocated
  Timings Perf() const;            // llama.cpp's perf counters since creation / last reset
  void ResetPerf();

  llama_context* raw() const { return ctx_; }

 private:
  friend class Runner;
  Context() = default;
  // llama_decode with fault injection: counts calls; returns llama.cpp's status code (llama.h)
  // or an injected failure (-3, as a failed backend compute would).
  int Decode(const void* llama_batch_ptr);
  // True when the last decode's logits are to be overwritten with NaN (injection).
  bool nan_injected_ = false;

  Model* model_ = nullptr;
  llama_context* ctx_ = nullptr;
  ContextOptions options_;
  int decode_calls_ = 0;
  int fail_decode_at_ = 0;  // 1-based decode call that fails; 0 = never
  int nan_logits_at_ = 0;   // 1-based decode call whose logits become NaN; 0 = never
};

// Model + context loaded together, after a dry run confirmed llama.cpp's own figures fit the
// budget: returns DoesNotFit (nothing allocated) when they do not, so a wrong analytic estimate
// cannot lead to an OOM kill. The dry-run breakdown is kept for comparison with the planner.
struct Loaded {
  std::unique_ptr<Model> model;
  std::unique_ptr<Context> context;
  std::optional<MemoryBreakdown> dry_run;  // absent when the budget was unchecked
};
Result<Loaded> LoadFitted(const ModelOptions& model, const ContextOptions& context,
                          const LoadBudget& budget);

// ---------------------------------------------------------------------------------------------
// Generation (one or many sequences in one KV cache)

// A grammar the answer must follow (GBNF, as llama.cpp's grammar sampler takes it). Lazy grammars
// (tool calls under tool_choice "auto") apply only from the first trigger on: free text before a
// call stays free, the call itself is valid JSON for its schema.
struct GrammarTrigger {
  enum class Kind { kToken, kWord, kPattern, kPatternFull };
  Kind kind = Kind::kWord;
  std::string value;  // word or regular expression
  Token token = -1;   // kToken
};
struct Grammar {
  std::string gbnf;  // "" = no grammar
  bool lazy = false;
  std::vector<GrammarTrigger> triggers;
  // Text the template already put at the start of the answer (e.g. "<think>\n"): a grammar
  // derived for the whole answer is advanced past it first (prefill).
  std::string generation_prompt;
  bool prefill = false;
  bool empty() const { return gbnf.empty(); }
};

struct SamplingParams {
  float temperature = 0.8f;     // 0 = greedy (argmax)
  int top_k = 40;               // <= 0 = off
  float top_p = 0.95f;          // 1 = off
  float min_p = 0.05f;          // 0 = off
  float repeat_penalty = 1.0f;  // 1 = off
  int repeat_last_n = 64;
  // OpenAI's penalties (-2..2, 0 = off), over the last repeat_last_n tokens as llama-server does.
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  // Added to a token's logit before sampling (OpenAI's logit_bias; -inf bans the token).
  std::vector<std::pair<Token, float>> logit_bias;
  uint32_t seed = 0xFFFFFFFF;     // 0xFFFFFFFF = random
  int max_tokens = -1;            // -1 = until EOG / stop / context full
  std::vector<std::string> stop;  // the stop string itself is not emitted
  bool ignore_eos = false;        // never sample end-of-generation tokens (benchmarks, tests)
  // Report each sampled token's log-probability and that many most likely alternatives (0-20);
  // -1 = off. Of the model's own distribution (softmax of the logits, before sampling settings).
  int logprobs = -1;
  Grammar grammar;
  // Special tokens whose text is kept in the answer (a chat format's markers such as
  // "<tool_call>", which the output parser reads); other control tokens render as "".
  std::vector<std::string> kept_special_tokens;
};

struct TokenLogprobs {
  Token token = -1;
  float logprob = 0;
  std::vector<std::pair<Token, float>> top;  // most likely first
};

enum class FinishReason { kNone, kStop, kLength, kCancelled, kError };
const char* FinishReasonName(FinishReason reason);  // "stop" | "length" | "cancelled" | "error"

// One thing that happened to one sequence during a Step.
struct StepEvent {
  SeqId seq_id = 0;
  // Set when a token was sampled this step (-1 otherwise, e.g. while the prompt is processed or
  // when the sequence ended with an error).
  Token token = -1;
  // Text that is now safe to show: complete UTF-8, with any possible stop-string prefix held
  // back. May be empty even when a token was sampled.
  std::string text;
  FinishReason finish = FinishReason::kNone;  // != kNone: the sequence is over and removed
  std::string stop;       // the stop string that ended it (finish kStop by a stop string), else ""
  Status error;           // set when finish == kError
  int prompt_tokens = 0;  // prompt length of this sequence
  int generated_tokens = 0;               // tokens sampled so far (including this one)
  std::optional<TokenLogprobs> logprobs;  // for `token`, when SamplingParams::logprobs >= 0
};

// Schedules sequences over one Context. Each Step decodes the next token of every generating
// sequence and pending prompt chunks, samples each sequence with its own sampler chain and reports
// per-sequence events. Sampling state never crosses sequences (per-sequence samplers, per-row
// logits). On a batch-invariant context (Context::batch_invariant) the logits of a sequence are
// also bit-identical to a solo run: the next tokens go in one batch and each prompt chunk in a
// batch of its own, cut at multiples of n_batch as a solo run cuts it, so every row is computed
// by the same kernels. Elsewhere prompt chunks share the batch with the next tokens (fewer
// decodes), and llama.cpp's kernels pick their path by batch shape (flash attention's split-KV vs
// tiled path, ggml-cpu/ops.cpp), so a near-tie greedy pick can flip between batched and solo runs.
class Runner {
 public:
  explicit Runner(Context* context);
  ~Runner();
  Runner(const Runner&) = delete;
  Runner& operator=(const Runner&) = delete;

  // Queues a sequence. InvalidArgument when the prompt is empty, seq_id is out of range
  // [0, n_seq_max) or in use, or the prompt does not fit the context ("prompt is 9120 tokens but
  // the context holds 8192; ..."). Unavailable when the KV cache has no room for it right now.
  // The slot keeps the KV cells of its last request after it ends: a prompt that starts with
  // the same tokens (the next turn of a chat) decodes only the rest; *reused (optional) says how
  // many were skipped. Kept cells give way, least recently used first, when others need room.
  // Not on a batch-invariant context with several slots (it would move where prompts are cut).
  Status AddSequence(SeqId seq_id, std::vector<Token> prompt, SamplingParams params,
                     size_t* reused = nullptr);
  // How many leading tokens of `prompt` the slot still holds from its last request.
  size_t CachedPrefixLength(SeqId seq_id, const std::vector<Token>& prompt) const;
  // Decodes one batch. Returns the first runtime error of this step (decode failure, non-finite
  // logits) or OK; every affected sequence also gets a kError event and is removed. Sequences
  // that finish (EOG, stop, max_tokens, context full) get their final event and are removed.
  Status Step(std::vector<StepEvent>* events);
  // Ends a sequence early (client gone, Ctrl-C); its cells are kept for reuse as when it ends
  // normally. No event is produced.
  void RemoveSequence(SeqId seq_id);

  bool HasWork() const;  // any sequence active
  size_t ActiveSequences() const;
  bool IsActive(SeqId seq_id) const;
  uint32_t UsedCells() const;  // KV cells held by active sequences and kept prefixes
  uint32_t FreeCells() const;  // n_ctx - UsedCells()
  Context& context() const { return *context_; }
  // Called with every row of logits before it is sampled (tests compare runs bit for bit).
  using LogitsObserver = std::function<void(SeqId seq_id, const float* logits, int n_vocab)>;
  void ObserveLogits(LogitsObserver observer) { observer_ = std::move(observer); }

 private:
  struct Sequence;
  struct CachedPrefix {
    std::vector<Token> tokens;
    uint64_t used_at = 0;
  };
  void AddRow(Sequence& seq, Token token, bool want_logits);
  // Removes a sequence; with keep_prefix its cells stay as the slot's cached prefix.
  void EndSequence(SeqId seq_id, bool keep_prefix);
  void DropPrefix(SeqId seq_id);
  // Drops kept prefixes, least recently used first, until `cells` are free (or none is left).
  void MakeRoom(uint32_t cells);
  uint32_t CachedCells() const;  // cells of kept prefixes that other sequences could use
  void AddPromptChunk(Sequence& seq, size_t max_tokens);
  // Decodes the batch built so far, samples the sequences with logits in it and resets the batch.
  Status DecodeBatch(std::vector<StepEvent>* events);
  StepEvent FinishEvent(const Sequence& seq, FinishReason reason, std::string text,
                        Status error) const;
  Context* context_;
  std::map<SeqId, std::unique_ptr<Sequence>> sequences_;
  uint64_t next_order_ = 0;
  const bool keep_prefixes_;
  std::map<SeqId, CachedPrefix> cached_;  // idle slots' kept cells
  uint64_t clock_ = 0;
  LogitsObserver observer_;
  void* batch_ = nullptr;  // llama_batch*, sized n_batch
};

// Convenience for one prompt: runs a single sequence to completion on an otherwise idle
// context. on_text receives safe-to-show text; returning false cancels (finish = kCancelled).
struct Generation {
  std::vector<Token> tokens;  // sampled token ids (stop/EOG tokens included as sampled)
  std::string text;
  FinishReason finish = FinishReason::kNone;
  int prompt_tokens = 0;
};
Result<Generation> Generate(Context* context, const std::vector<Token>& prompt,
                            const SamplingParams& params,
                            const std::function<bool(std::string_view)>& on_text = nullptr);
// The same as sequence 0 of a Runner the caller keeps, so that the next call's prompt reuses the
// cells this one leaves (the turns of an interactive chat).
Result<Generation> Generate(Runner* runner, const std::vector<Token>& prompt,
                            const SamplingParams& params,
                            const std::function<bool(std::string_view)>& on_text = nullptr);

// ---------------------------------------------------------------------------------------------
// Embeddings

struct EmbedOptions {
  int n_threads = 0;  // 0 = hardware concurrency
};

// One sentence embedding per input (n_embd floats each), L2-normalized to unit length so a dot
// product is the cosine similarity. Uses the model's own pooling when its GGUF names one (CLS,
// MEAN, LAST), else mean pooling, so a generative model gives a mean-pooled embedding. Creates a
// short-lived context of its own sized to the longest input (embeddings on, separate from any
// generation Context), so it may run on a Model another thread generates with.
// InvalidArgument when there are no inputs, an input is empty or longer than the model's trained
// context, or the model is a reranker; Runtime when decoding fails or a vector is not finite.
Result<std::vector<std::vector<float>>> Embed(const Model& model,
                                              const std::vector<std::vector<Token>>& inputs,
                                              const EmbedOptions& options = {});

// Host bytes the embedding context for inputs of up to `longest` tokens allocates (KV cache,
// compute and output buffers; not the weights), from llama.cpp's own no-alloc dry run of exactly
// that context. Measured once per model and size (Embed rounds sizes up to 256 tokens); the first
// call for a size reads the model's header again (tens to hundreds of ms).
Result<uint64_t> EmbedContextBytes(const Model& model, size_t longest);

// The user-facing sentence for a prompt that cannot fit, shared by Runner and callers.
std::string PromptTooLongMessage(size_t prompt_tokens, uint32_t n_ctx);

}  // namespace snug::engine
