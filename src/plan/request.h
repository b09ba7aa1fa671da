// What the user asked for (fit flags), parsed once at the edge; plan, run and serve share it.
#pragma once

#include <cstdint>
#include <string>

#include "core/status.h"

namespace snug::plan {

enum class KvType { kF16, kQ8_0, kQ4_0 };
const char* KvTypeName(KvType type);  // "f16", "q8_0", "q4_0"
// ggml_type value of the cache tensors (llama_context_params.type_k / type_v).
uint32_t KvGgmlType(KvType type);
// Bytes of `n` cache values of this type (q8_0: 34 bytes per 32 values, q4_0: 18 per 32).
uint64_t KvRowBytes(KvType type, uint64_t n);

enum class CtxMode { kAuto, kMax, kExplicit };
enum class FlashAttn { kAuto, kOn, kOff };

struct Request {
  CtxMode ctx_mode = CtxMode::kAuto;
  uint32_t n_ctx = 0;  // per sequence; only for kExplicit
  bool kv_auto = false;
  KvType kv_type = KvType::kF16;  // when !kv_auto
  bool ngl_auto = true;
  int n_gpu_layers = 0;  // when !ngl_auto; llama.cpp semantics (n_layer + 1 = output too)
  uint32_t n_parallel = 1;
  uint32_t n_batch = 2048;
  uint32_t n_ubatch = 512;
  // llama.cpp's default (auto) resolves to on wherever the backend runs flash attention for the
  // layer's device (llama-context.cpp resolve_fused_ops), which every snug backend does.
  FlashAttn flash_attn = FlashAttn::kAuto;
  // `snug serve --batch-invariant`: settings under which a request decoded in a batch gives
  // bit-identical logits to the same request decoded alone (flash attention off, so f16 KV; one
  // KV stream per slot; CPU only; quantized weights).
  bool batch_invariant = false;
  // Whether answers may be grammar-constrained (tools, JSON schemas): the grammar's working
  // memory is planned for. Off only where no grammar can be asked for (`snug run` without
  // --json-schema).
  bool constrained_decoding = true;
};

// Parses the fit flags' text ("auto" | "max" | N, "f16" | "q8_0" | "q4_0" | "auto", "auto" | N,
// parallel >= 1). InvalidArgument with the accepted forms on bad input.
Result<Request> ParseRequest(const std::string& ctx, const std::string& kv_type,
                             const std::string& ngl, int parallel);

}  // namespace snug::plan
