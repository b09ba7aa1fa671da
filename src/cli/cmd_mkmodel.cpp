// snug mkmodel PRESET OUT.gguf [--weights zero|random] [--seed S] [--type T] [--chat-template F]
// | snug mkmodel --list
#include <fmt/format.h>

#include <filesystem>
#include <optional>
#include <string>

#include "cli/command.h"
#include "core/size.h"
#include "synth/describe.h"
#include "synth/presets.h"
#include "synth/writer.h"

namespace snug::cli {
namespace {

const char* DescribeFileType(std::filesystem::file_type type) {
  switch (type) {
    case std::filesystem::file_type::symlink:
      return "a symbolic link";
    case std::filesystem::file_type::directory:
      return "a directory";
    case std::filesystem::file_type::block:
    case std::filesystem::file_type::character:
      return "a device";
    case std::filesystem::file_type::fifo:
      return "a FIFO";
    case std::filesystem::file_type::socket:
      return "a socket";
    default:
      return "not a regular file";
  }
}

struct MkmodelFlags {
  std::string preset;
  std::string out;
  std::string weights = "zero";
  uint64_t seed = 42;
  std::string type;
  std::string
      chat_template_file;  // replaces the preset's template (tests use llama.cpp's real ones)
  bool list = false;
};

std::string FormatParams(uint64_t n) {
  if (n >= 1'000'000'000) return fmt::format("{:.2f}B", n / 1e9);
  if (n >= 1'000'000) return fmt::format("{:.1f}M", n / 1e6);
  return fmt::format("{}", n);
}

Status ListPresets() {
  fmt::print("{:<24} {:<9} {:>8} {:>11} {:>8}\n", "PRESET", "ARCH", "PARAMS", "FILE", "CTX");
  for (const synth::Preset& p : synth::AllPresets()) {
    SNUG_ASSIGN_OR_RETURN(gguf::File file, synth::DescribePreset(p));
    fmt::print("{:<24} {:<9} {:>8} {:>11} {:>8}\n", p.name, p.arch,
               FormatParams(synth::CountParameters(file)), FormatSize(file.file_bytes),
               p.n_ctx_train);
  }
  fmt::print(
      "Any preset takes a -q4_k_m, -q8_0 or -f16 suffix (or --type) for another quantization.\n");
  return Status::Ok();
}

Status Mkmodel(const MkmodelFlags& flags) {
  if (flags.list) return ListPresets();
  if (flags.preset.empty() || flags.out.empty()) {
    return Status::InvalidArgument(
        "usage: snug mkmodel PRESET OUT.gguf [--weights zero|random] [--seed S] [--type T] "
        "[--chat-template FILE] (snug mkmodel --list shows the presets)");
  }
  auto found = synth::FindPreset(flags.preset);
  if (!found.ok()) return Status::InvalidArgument(found.status().message());
  synth::Preset preset = std::move(found).value();

  synth::WriteOptions options;
  if (flags.weights == "zero") {
    options.weights = synth::WriteOptions::Weights::kZero;
  } else if (flags.weights == "random") {
    options.weights = synth::WriteOptions::Weights::kRandom;
  } else {
    return Status::InvalidArgument(
        fmt::format("--weights must be zero or random, not '{}'", flags.weights));
  }
  options.seed = flags.seed;
  if (!flags.type.empty()) {
    SNUG_ASSIGN_OR_RETURN(preset, synth::WithType(preset, flags.type));
  }
  if (!flags.chat_template_file.empty()) {
    SNUG_ASSIGN_OR_RETURN(preset.chat_template,
                          ReadFlagFile(flags.chat_template_file, "chat template file"));
  }

  // The model is written beside OUT and renamed over it: that would replace a device node, a
  // FIFO or a symlink (not its target) with a regular file. Only a regular file is replaced.
  std::error_code ec;
  const auto existing = std::filesystem::symlink_status(flags.out, ec);
  if (!ec && existing.type() != std::filesystem::file_type::not_found &&
      existing.type() != std::filesystem::file_type::regular) {
    return Status::IoError(fmt::format(
        "{} exists and is not a regular file ({}); snug mkmodel writes only to a new path or "
        "over a regular file",
        flags.out, DescribeFileType(existing.type())));
  }
  SNUG_RETURN_IF_ERROR(synth::WriteModel(preset, flags.out, options));
  SNUG_ASSIGN_OR_RETURN(gguf::File file, synth::DescribePreset(preset));
  fmt::print("wrote {}: {} ({}, {} params, {}, {}, n_ctx_train {}, {} weights{})\n", flags.out,
             preset.name, preset.arch, FormatParams(synth::CountParameters(file)), preset.type,
             FormatSize(file.file_bytes), preset.n_ctx_train, flags.weights,
             options.weights == synth::WriteOptions::Weights::kRandom
                 ? fmt::format(", seed {}", options.seed)
                 : "");
  return Status::Ok();
}

}  // namespace

void AddMkmodelCommand(CLI::App& root, int* exit_code) {
  auto* cmd =
      root.add_subcommand("mkmodel", "Write a synthetic, shape-faithful GGUF model from a preset");
  auto flags = std::make_shared<MkmodelFlags>();
  cmd->add_option("preset", flags->preset, "Preset name, e.g. llama-3.2-3b-q4_k_m (see --list)");
  cmd->add_option("out", flags->out, "Output .gguf path");
  cmd->add_option("--weights", flags->weights,
                  "zero (default: sparse file, no disk used) or random (quantized noise)");
  cmd->add_option("--seed", flags->seed, "Seed for --weights random (default 42)");
  cmd->add_option("--type", flags->type, "Quantization: Q4_K_M, Q8_0 or F16 (overrides the name)");
  cmd->add_option("--chat-template", flags->chat_template_file,
                  "Jinja chat template file written into the model (tokenizer.chat_template)");
  cmd->add_flag("--list", flags->list, "List the presets with their size");
  cmd->callback([flags, exit_code] { *exit_code = Report(Mkmodel(*flags)); });
}

}  // namespace snug::cli
