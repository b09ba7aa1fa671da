// Semantic checks of a GGUF model header before llama.cpp sees the file. llama.cpp trusts many
// header values: a vocabulary with a repeated token, 4096 layers or 100000 experts trip a
// GGML_ASSERT and abort the whole process (snug run dies; snug serve dies with every request it
// holds), and a NaN norm epsilon aborts at the first decode. These functions refuse such files with
// one sentence naming the key and its value, so callers can answer with an error instead.
//
// The checks mirror llama.cpp (the version snug builds against; each check names its source in
// validate.cpp). Everything llama.cpp asserts on is checked for every architecture; the structure
// of attention, feed-forward and the main tensor shapes is checked for the architectures whose
// loaders these checks were written from (llama, qwen2, qwen3, qwen3moe, gemma3, phi3). A file
// llama.cpp loads correctly is never refused; files it would refuse with an exception may be
// refused earlier, with a clearer message.
#pragma once

#include "core/status.h"
#include "gguf/gguf.h"

namespace snug::gguf {

// Hyperparameters, tokenizer and tensor shapes, as llama_model_load_from_file and the first graph
// build read them. OK, or Corrupt: "<path> is not a valid model: llama.block_count is 4096 but the
// file has tensors for 16 blocks (blk.0 .. blk.15)".
Status ValidateModel(const File& file);

// The tokenizer only: what a vocab_only load reads (llama.cpp skips the hyperparameters and
// tensors then). Same contract as ValidateModel.
Status ValidateVocab(const File& file);

}  // namespace snug::gguf
