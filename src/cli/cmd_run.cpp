// snug run MODEL [PROMPT]: plan settings that fit, say so in one line, load, and stream the answer.
// Without PROMPT: an interactive chat on a terminal, or the prompt read from piped stdin.
#include <fmt/format.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <iostream>
#include <iterator>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "cli/command.h"
#include "cli/model_source.h"
#include "cli/worker_budget.h"
#include "core/log.h"
#include "core/size.h"
#include "engine/chat.h"
#include "engine/engine.h"
#include "hw/detect.h"
#include "plan/fit.h"
#include "plan/request.h"
#include "plan/shape.h"

namespace snug::cli {
namespace {

struct RunFlags {
  std::string model;
  std::string prompt;
  bool prompt_given = false;
  FitFlags fit;
  int n_predict = -1;
  float temperature = 0.8f;
  uint32_t seed = 0xFFFFFFFF;
  int threads = 0;
  int top_k = 40;
  float top_p = 0.95f;
  float min_p = 0.05f;
  float repeat_penalty = 1.0f;
  bool json = false;
  bool token_ids = false;   // add "token_ids" to the --json line (tests compare with llama.cpp)
  bool raw = false;         // no chat template: the prompt is tokenized as is
  bool ignore_eos = false;  // benchmarks: always generate -n tokens
  std::string chat_template_file;  // replaces the GGUF's template
  std::string json_schema_file;    // the answer must be JSON valid against this schema
  std::string json_schema;         // its text, read once
};

// Everything decided before loading: what to load, with which settings, against which budget.
struct RunSetup {
  engine::ModelOptions model;
  engine::ContextOptions context;
  engine::LoadBudget budget;
  std::string summary;   // the one line printed to stderr before loading
  uint32_t max_ctx = 0;  // largest context that fits (for messages); 0 = unknown
};

Result<RunSetup> PlanRun(const std::string& model, const FitFlags& fit, int threads,
                         const std::string& chat_template, bool constrained) {
  SNUG_ASSIGN_OR_RETURN(plan::Request request,
                        plan::ParseRequest(fit.ctx, fit.kv_type, fit.ngl, fit.parallel));
  request.constrained_decoding = constrained;
  SNUG_ASSIGN_OR_RETURN(
      hw::BudgetOptions budget_options,
      hw::BudgetOptionsFromFlags(fit.memory_limit, fit.headroom, fit.hw_profile, fit.vram_limit));
  SNUG_ASSIGN_OR_RETURN(ModelSource source, ResolveModel(model));
  SNUG_ASSIGN_OR_RETURN(plan::ModelShape shape, plan::ShapeFromGguf(source.file));
  SNUG_ASSIGN_OR_RETURN(hw::Budget budget, hw::ResolveBudget(budget_options));
  SNUG_RETURN_IF_ERROR(AddWorkers(fit.workers, WorkerUse::kLoad, &budget));
  SNUG_ASSIGN_OR_RETURN(plan::Plan p, plan::Fit(shape, budget, request));
  if (!p.fits) {
    return p.status.ok() ? Status::DoesNotFit(p.reason) : p.status;
  }
  if (source.kind != "file" && source.kind != "store") {
    return Status::InvalidArgument(fmt::format(
        "{} fits here ({}), but 'snug run' needs the weights: pull it first, or write a "
        "synthetic file with 'snug mkmodel'",
        source.name, p.reason));
  }

  const plan::Settings& s = p.settings;
  RunSetup setup;
  setup.model.path = source.location;
  setup.model.chat_template = chat_template;
  setup.model.n_gpu_layers = s.NGpuLayers();
  setup.model.devices = DeviceSlicesFor(s);
  setup.context.n_ctx = s.LlamaNCtx();
  setup.context.kv_type = plan::KvTypeName(s.kv_type);
  setup.context.flash_attn = s.flash_attn ? engine::FlashAttn::kOn : engine::FlashAttn::kOff;
  setup.context.n_seq_max = s.n_parallel;
  setup.context.kv_unified = s.kv_unified;
  setup.context.swa_full = s.swa_full;
  setup.context.n_batch = s.n_batch;
  setup.context.n_ubatch = s.n_ubatch;
  setup.context.n_threads = threads;
  setup.budget.host_bytes = budget.host_bytes;
  for (const auto& d : budget.devices) {
    if (d.backend != "CPU" && !d.unified) setup.budget.device_bytes += d.budget_bytes;
  }
  const std::string budget_source = budget.detail.empty() ? budget.source : budget.detail;
  setup.budget.source = budget_source;
  setup.budget.host_compute_untouched_bytes =
      p.memory.host_compute_bytes - p.memory.host_compute_touched_bytes;
  setup.max_ctx = p.max_ctx.For(s.kv_type);
  setup.summary = fmt::format(
      "snug: {}: ctx {}, {} KV, {}/{} layers offloaded, planned peak {} ({} resident) of {} "
      "budget ({})",
      source.name, s.n_ctx, plan::KvTypeName(s.kv_type), std::max(0, s.NGpuLayers()), shape.n_layer,
      FormatSize(p.memory.peak_host_bytes), FormatSize(p.memory.host_required_bytes),
      FormatSize(budget.host_bytes), budget_source);
  const std::string split = HostSplitText(s, shape.n_layer);
  if (!split.empty()) setup.summary += fmt::format("; layers: {}", split);
  return setup;
}

volatile std::sig_atomic_t g_interrupted = 0;
std::chrono::steady_clock::time_point g_first_piece, g_last_piece;
int g_pieces = 0;
void OnSigint(int) {
  g_interrupted = 1;
}

engine::SamplingParams SamplingFrom(const RunFlags& f, const engine::RenderedChat* chat = nullptr) {
  engine::SamplingParams p;
  if (chat != nullptr) {
    p.grammar = chat->grammar;
    p.stop = chat->stops;
    p.kept_special_tokens = chat->preserved_tokens;
  }
  p.temperature = f.temperature;
  p.top_k = f.top_k;
  p.top_p = f.top_p;
  p.min_p = f.min_p;
  p.repeat_penalty = f.repeat_penalty;
  p.seed = f.seed;
  p.max_tokens = f.n_predict;
  p.ignore_eos = f.ignore_eos;
  return p;
}

std::string PromptTooLong(size_t n_prompt, const RunSetup& setup) {
  std::string message = engine::PromptTooLongMessage(n_prompt, setup.context.n_ctx);
  if (setup.max_ctx > 0) {
    message += fmt::format(" (the largest context that fits here is {})", setup.max_ctx);
  }
  return message;
}

// Prints what the chat reader found in the answer so far: reasoning dimmed on a terminal (and
// left out elsewhere: stdout carries the answer), content as it is.
void PrintDeltas(const std::vector<engine::ChatDelta>& deltas, bool json) {
  static const bool tty = isatty(STDOUT_FILENO);
  for (const auto& d : deltas) {
    if (json) continue;
    if (!d.reasoning_content.empty() && tty) {
      std::fprintf(stdout, "\033[2m%s\033[0m", d.reasoning_content.c_str());
    }
    if (!d.content.empty()) std::fwrite(d.content.data(), 1, d.content.size(), stdout);
  }
  std::fflush(stdout);
}

// One answer: streams text to stdout unless --json; stops on Ctrl-C.
// `runner`, when given, is the chat's: its slot keeps the conversation's cells between turns.
// The rendered chat (null with --raw) supplies the grammar and stops and reads reasoning back.
Result<engine::Generation> Answer(engine::Context* context, const RunSetup& setup,
                                  const std::vector<engine::Token>& prompt, const RunFlags& flags,
                                  const engine::RenderedChat* chat,
                                  engine::ChatReader* reader = nullptr,
                                  engine::Runner* runner = nullptr) {
  if (prompt.size() >= context->n_ctx_seq()) {
    return Status::InvalidArgument(PromptTooLong(prompt.size(), setup));
  }
  g_interrupted = 0;
  int pieces = 0;
  auto on_text = [&](std::string_view text) {
    // Wall clock from the first to the last streamed piece: decode + sampling + guard, end to end.
    const auto now = std::chrono::steady_clock::now();
    if (pieces++ == 0) g_first_piece = now;
    g_last_piece = now;
    g_pieces = pieces;
    if (reader != nullptr) {
      PrintDeltas(reader->Append(std::string(text), false), flags.json);
    } else if (!flags.json) {
      std::fwrite(text.data(), 1, text.size(), stdout);
      std::fflush(stdout);
    }
    return g_interrupted == 0;
  };
  const engine::SamplingParams sampling = SamplingFrom(flags, chat);
  auto gen = runner != nullptr ? engine::Generate(runner, prompt, sampling, on_text)
                               : engine::Generate(context, prompt, sampling, on_text);
  if (gen.ok() && reader != nullptr) PrintDeltas(reader->Append("", true), flags.json);
  return gen;
}

// The chat request for `history`: --json-schema's constraint, thinking left to the template.
engine::ChatInput ChatInputFor(std::vector<engine::ChatMessage> history, const RunFlags& flags) {
  engine::ChatInput input;
  input.messages = std::move(history);
  input.json_schema = flags.json_schema;
  return input;
}

// Pieces per second between the first and the last streamed piece (0 when fewer than two).
double StreamRate() {
  const double seconds = std::chrono::duration<double>(g_last_piece - g_first_piece).count();
  return g_pieces > 1 && seconds > 0 ? (g_pieces - 1) / seconds : 0;
}

void PrintJson(const engine::Context& context, const engine::Generation& gen, bool token_ids,
               const engine::ChatReader* reader) {
  const engine::Timings t = context.Perf();
  nlohmann::json j = {
      {"n_ctx", context.n_ctx_seq()},
      {"kv_type", context.options().kv_type},
      {"tokens", gen.tokens.size()},
      {"prompt_tokens", gen.prompt_tokens},
      {"text", gen.text},
      {"finish_reason", engine::FinishReasonName(gen.finish)},
      {"timings",
       {{"prompt_ms", t.prompt_ms},
        {"prompt_tokens", t.prompt_tokens},
        {"prompt_tokens_per_s", t.PromptTokensPerSecond()},
        {"decode_ms", t.decode_ms},
        {"decode_tokens", t.decode_tokens},
        {"decode_tokens_per_s", t.DecodeTokensPerSecond()},
        {"stream_pieces_per_s", StreamRate()}}},
  };
  if (token_ids) j["token_ids"] = gen.tokens;
  if (reader != nullptr) {
    // The answer without its reasoning, which gets a field of its own (as the API's message).
    j["text"] = reader->message().content;
    if (!reader->message().reasoning_content.empty()) {
      j["reasoning_content"] = reader->message().reasoning_content;
    }
  }
  // Random-weight models emit arbitrary bytes: invalid UTF-8 becomes U+FFFD instead of throwing.
  std::string line = j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
  std::fprintf(stdout, "%s\n", line.c_str());
  std::fflush(stdout);
}

Status RunOnce(engine::Context* context, const RunSetup& setup, const std::string& prompt_text,
               const RunFlags& flags) {
  engine::Model& model = context->model();
  std::vector<engine::Token> prompt;
  std::optional<engine::RenderedChat> chat;
  std::unique_ptr<engine::ChatReader> reader;
  if (flags.raw) {
    SNUG_ASSIGN_OR_RETURN(engine::Grammar grammar,
                          engine::GrammarForCompletion(model, flags.json_schema, ""));
    chat.emplace();
    chat->grammar = std::move(grammar);
    SNUG_ASSIGN_OR_RETURN(prompt, model.Tokenize(prompt_text, true, true));
  } else {
    engine::ChatMessage user;
    user.role = "user";
    user.content = prompt_text;
    SNUG_ASSIGN_OR_RETURN(chat, model.chat().Render(ChatInputFor({user}, flags)));
    SNUG_ASSIGN_OR_RETURN(prompt, model.TokenizeChat(chat->prompt));
    reader = std::make_unique<engine::ChatReader>(chat->parser);
  }
  SNUG_ASSIGN_OR_RETURN(engine::Generation gen,
                        Answer(context, setup, prompt, flags, &*chat, reader.get()));
  if (flags.json) {
    PrintJson(*context, gen, flags.token_ids, reader.get());
  } else if (!gen.text.empty() && gen.text.back() != '\n') {
    std::fputc('\n', stdout);
  }
  if (gen.finish == engine::FinishReason::kCancelled) {
    return Status::Cancelled("interrupted");
  }
  return Status::Ok();
}

Status Chat(engine::Context* context, const RunSetup& setup, const RunFlags& flags) {
  engine::Model& model = context->model();
  std::vector<engine::ChatMessage> history;
  engine::Runner runner(context);  // one for the chat: each turn decodes only what is new
  fmt::print(stderr, "Chat with {} (/bye or Ctrl-D to quit, Ctrl-C stops an answer)\n",
             model.path());
  while (true) {
    fmt::print(stderr, ">>> ");
    std::fflush(stderr);
    std::string line;
    g_interrupted = 0;
    if (!std::getline(std::cin, line)) {
      fmt::print(stderr, "\n");
      return Status::Ok();
    }
    if (line == "/bye") return Status::Ok();
    if (line.empty()) continue;
    engine::ChatMessage user;
    user.role = "user";
    user.content = line;
    history.push_back(user);
    SNUG_ASSIGN_OR_RETURN(engine::RenderedChat chat,
                          model.chat().Render(ChatInputFor(history, flags)));
    SNUG_ASSIGN_OR_RETURN(auto prompt, model.TokenizeChat(chat.prompt));
    engine::ChatReader reader(chat.parser);
    auto gen = Answer(context, setup, prompt, flags, &chat, &reader, &runner);
    if (!gen.ok()) {
      if (gen.status().code() == Code::kInvalidArgument) {
        // The conversation outgrew the context: say so and start over rather than truncate.
        fmt::print(stderr, "snug: {}; starting a new conversation\n", gen.status().message());
        history.clear();
        continue;
      }
      return gen.status();
    }
    std::fputc('\n', stdout);
    std::fflush(stdout);
    if (gen->finish == engine::FinishReason::kCancelled) fmt::print(stderr, "[stopped]\n");
    engine::ChatMessage answer;
    answer.role = "assistant";
    answer.content = reader.message().content;
    answer.reasoning_content = reader.message().reasoning_content;
    history.push_back(std::move(answer));
  }
}

Status Run(const RunFlags& flags) {
  std::string chat_template;
  if (!flags.chat_template_file.empty()) {
    SNUG_ASSIGN_OR_RETURN(chat_template,
                          ReadFlagFile(flags.chat_template_file, "chat template file"));
  }
  RunFlags run_flags = flags;
  if (!flags.json_schema_file.empty()) {
    SNUG_ASSIGN_OR_RETURN(run_flags.json_schema,
                          ReadFlagFile(flags.json_schema_file, "JSON schema file"));
  }
  SNUG_ASSIGN_OR_RETURN(RunSetup setup,
                        PlanRun(flags.model, flags.fit, flags.threads, chat_template,
                                /*constrained=*/!run_flags.json_schema.empty()));
  fmt::print(stderr, "{}\n", setup.summary);
  std::fflush(stderr);

  const bool interactive = !flags.prompt_given && isatty(STDIN_FILENO);
  std::string prompt = flags.prompt;
  if (!flags.prompt_given && !interactive) {
    prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    if (prompt.empty()) return Status::InvalidArgument("no prompt given and stdin is empty");
  }

  SNUG_ASSIGN_OR_RETURN(engine::Loaded loaded,
                        engine::LoadFitted(setup.model, setup.context, setup.budget));
  std::signal(SIGINT, OnSigint);
  if (interactive) return Chat(loaded.context.get(), setup, run_flags);
  return RunOnce(loaded.context.get(), setup, prompt, run_flags);
}

}  // namespace

void AddRunCommand(CLI::App& root, int* exit_code) {
  auto* cmd = root.add_subcommand("run", "Run a model on a prompt or as an interactive chat");
  auto flags = std::make_shared<RunFlags>();
  cmd->add_option("MODEL", flags->model, "A .gguf path, a local model name or a URL")->required();
  cmd->add_option("PROMPT", flags->prompt, "The prompt; omit for a chat (or to read stdin)");
  AddFitFlags(cmd, &flags->fit);
  cmd->add_option("-n,--n-predict", flags->n_predict, "Most tokens to generate (-1 = no limit)");
  cmd->add_option("--temp", flags->temperature, "Temperature (0 = greedy)")
      ->check(FiniteIn(0, 100));
  cmd->add_option("--seed", flags->seed, "Sampling seed (default random)");
  cmd->add_option("--threads", flags->threads, "CPU threads (default: all usable cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_option("--top-k", flags->top_k, "Top-k sampling (0 = off)");
  cmd->add_option("--top-p", flags->top_p, "Top-p sampling (1 = off)")->check(FiniteIn(0, 1));
  cmd->add_option("--min-p", flags->min_p, "Min-p sampling (0 = off)")->check(FiniteIn(0, 1));
  cmd->add_option("--repeat-penalty", flags->repeat_penalty, "Repeat penalty (1 = off)")
      ->check(FiniteIn(0.01, 100));
  cmd->add_flag("--json", flags->json, "Print one JSON line with the answer and its settings");
  cmd->add_flag("--token-ids", flags->token_ids, "With --json: include the generated token ids");
  cmd->add_flag("--raw", flags->raw, "Do not apply the chat template to PROMPT");
  cmd->add_flag("--ignore-eos", flags->ignore_eos, "Keep generating past end-of-text tokens");
  cmd->add_option("--chat-template", flags->chat_template_file,
                  "Jinja chat template file used instead of the model's own");
  cmd->add_option("--json-schema", flags->json_schema_file,
                  "JSON schema file: the answer is JSON that follows it");
  cmd->callback([flags, cmd, exit_code] {
    flags->prompt_given = cmd->count("PROMPT") > 0;
    *exit_code = Report(Run(*flags));
  });
}

}  // namespace snug::cli
