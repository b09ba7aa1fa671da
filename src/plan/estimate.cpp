#include "plan/estimate.h"

#include <algorithm>

#include "core/size.h"

namespace snug::plan {
namespace {

uint64_t Pad(uint64_t v, uint64_t to) {
  return (v + to - 1) / to * to;
}

// llama-context.cpp: n_ctx padded to 256; without a unified KV cache each sequence gets
// n_ctx / n_seq_max cells, padded to 256 again.
struct CtxGeometry {
  uint64_t n_ctx = 0;      // cells over all streams
  uint64_t n_ctx_seq = 0;  // cells per stream
  uint64_t n_stream = 1;
  uint64_t n_batch = 0;
  uint64_t n_ubatch = 0;
};

CtxGeometry Geometry(const Settings& s) {
  CtxGeometry g;
  const uint64_t n_seq = std::max<uint32_t>(1, s.n_parallel);
  g.n_ctx = Pad(std::max<uint64_t>(1, uint64_t{s.n_ctx} * n_seq), 256);
  if (s.kv_unified) {
    g.n_ctx_seq = g.n_ctx;
    g.n_stream = 1;
  } else {
    g.n_ctx_seq = Pad(g.n_ctx / n_seq, 256);
    g.n_ctx = g.n_ctx_seq * n_seq;
    g.n_stream = n_seq;
  }
  g.n_batch = std::min<uint64_t>(g.n_ctx, s.n_batch);
  g.n_ubatch = std::min<uint64_t>(g.n_batch, s.n_ubatch);
  return g;
}

// `on_host`: duplicated tensors (tied output) share the original's host buffer.
uint64_t TensorsBytes(const std::vector<TensorShape>& tensors, bool on_host = true) {
  uint64_t sum = 0;
  for (const auto& t : tensors) {
    if (!(on_host && t.duplicate)) sum += t.bytes;
  }
  return sum;
}

uint64_t RepackedBytes(const std::vector<TensorShape>& tensors, const CpuRepack& cpu) {
  uint64_t sum = 0;
  for (const auto& t : tensors) {
    if (t.matmul && !t.duplicate && IsRepacked(cpu, t.type, t.ne1, t.n_dims)) sum += t.bytes;
  }
  return sum;
}

}  // namespace

int Settings::NGpuLayers() const {
  int n = 0;
  for (const auto& d : devices)
    n += static_cast<int>(d.n_layers);
  return n + (output_on_device ? 1 : 0);
}

uint64_t KvCellsFull(const Settings& s) {
  return Geometry(s).n_ctx;
}

uint64_t KvCellsSwa(const ModelShape& shape, const Settings& s) {
  const CtxGeometry g = Geometry(s);
  if (s.swa_full || shape.n_swa == 0) return g.n_ctx;
  // llama-kv-cache-iswa.cpp: GGML_PAD(min(size_base, n_swa * (unified ? n_seq_max : 1) +
  // n_ubatch), 256) cells per stream.
  const uint64_t n_seq = std::max<uint32_t>(1, s.n_parallel);
  const uint64_t per_stream =
      Pad(std::min<uint64_t>(g.n_ctx_seq,
                             uint64_t{shape.n_swa} * (s.kv_unified ? n_seq : 1) + g.n_ubatch),
          256);
  return per_stream * g.n_stream;
}

uint64_t LayerKvBytes(const ModelShape& shape, const LayerShape& layer, const Settings& s) {
  if (!layer.has_kv) return 0;
  const uint64_t cells = layer.swa ? KvCellsSwa(shape, s) : KvCellsFull(s);
  // Without flash attention V is stored transposed and padded to the widest layer
  // (llama-kv-cache.cpp [TAG_V_CACHE_VARIABLE]).
  const uint64_t v_width = s.flash_attn ? layer.n_embd_v_gqa() : shape.MaxHeadDimV();
  return cells * (KvRowBytes(s.kv_type, layer.n_embd_k_gqa()) + KvRowBytes(s.kv_type, v_width));
}

uint64_t OutputBytes(const ModelShape& shape, const Settings& s) {
  // llama-context.cpp output_reserve(n_seq_max): logits of max(n_outputs, n_seq_max) rows. A
  // generation asks for one output per sequence; the buffer only grows when a caller requests
  // logits for every prompt token (perplexity), which snug never does.
  const uint64_t n_seq = std::max<uint32_t>(1, s.n_parallel);
  return uint64_t{shape.n_vocab} * n_seq * sizeof(float);
}

namespace {

struct ComputePhases {
  uint64_t layer = 0;
  uint64_t output_reserved = 0;  // logits for n_ubatch outputs: what llama.cpp reserves
  uint64_t output_decode = 0;    // logits for one output per sequence: what generation touches
};

ComputePhases Phases(const ModelShape& shape, const Settings& s) {
  // llama.cpp reserves the worst-case graph (llama-context.cpp sched_reserve): n_ubatch tokens
  // against the full KV cache, with n_ubatch outputs (n_outputs_max = n_batch). ggml-alloc reuses
  // memory between tensors whose lifetimes do not overlap, so the buffer is the largest set of
  // tensors alive at one node. Two phases dominate (sizes fitted to the dry run, see
  // bench/results/plan-dryrun.md):
  //  - the output: logits [n_vocab, n_ubatch] f32 plus two [n_embd, n_ubatch] activations (a
  //    third with a quantized KV cache);
  //  - a layer: the FFN intermediates (up, gate, their product) plus residual-stream activations
  //    plus the attention masks ([n_kv, n_ubatch], f16 with flash attention, f32 without), and
  //    without flash attention the scores [n_kv, n_ubatch, n_head] f32.
  const CtxGeometry g = Geometry(s);
  const uint64_t ub = g.n_ubatch;
  const uint64_t act = uint64_t{shape.n_embd} * ub * sizeof(float);  // one activation
  const bool quantized_kv = s.kv_type != KvType::kF16;

  // A quantized K cache with head size % 64 == 0 makes llama.cpp rotate Q and K (Hadamard,
  // llama-kv-cache.cpp attn_rot_k), which adds one activation to the output phase and removes one
  // from the layer phase once the mask outgrows an activation (measured; below that the
  // allocator packs both the same as with f16).
  uint32_t head_dim_k = 0;
  for (const auto& l : shape.layers)
    head_dim_k = std::max(head_dim_k, l.head_dim_k);
  const bool rotated = quantized_kv && head_dim_k > 0 && head_dim_k % 64 == 0;

  uint64_t n_ff = 0;
  uint32_t n_head = 0;
  bool any_swa = false;
  for (const auto& l : shape.layers) {
    n_ff = std::max<uint64_t>(n_ff, l.n_ff);
    n_head = std::max(n_head, l.n_head);
    any_swa = any_swa || l.swa;
  }
  uint64_t ffn = 3 * n_ff * ub * sizeof(float);
  if (shape.n_expert > 0 && shape.n_ff_exp > 0) {
    // Routed experts: up/gate/product for n_expert_used experts per token, plus router logits.
    const uint64_t experts = 3 * uint64_t{shape.n_ff_exp} *
                                 std::max<uint32_t>(1, shape.n_expert_used) * ub * sizeof(float) +
                             2 * uint64_t{shape.n_expert} * ub * sizeof(float);
    ffn = std::max(ffn, experts);
  }
  const uint64_t mask_elem = s.flash_attn ? 2 : 4;
  uint64_t masks = g.n_ctx_seq * ub * mask_elem;
  if (any_swa) masks += KvCellsSwa(shape, s) / g.n_stream * ub * mask_elem;
  const bool big_mask = masks >= act;
  const uint64_t out_acts = (rotated && big_mask ? 3 : 2) * act;
  const uint64_t output = uint64_t{shape.n_vocab} * ub * sizeof(float) + out_acts;
  const uint64_t output_decode =
      uint64_t{shape.n_vocab} * std::max<uint32_t>(1, s.n_parallel) * sizeof(float) + out_acts;
  uint64_t layer = ffn + (shape.fused_qkv ? 3 : 4) * act + masks;
  if (rotated && big_mask) layer -= act;
  if (shape.fused_gate_up && masks < act) {
    // Measured (phi3, llama.cpp v0.4.0): while the mask is smaller than one activation the
    // allocator keeps the fused up projection [2 n_ff] alive beside the others.
    layer = std::max(layer, n_ff * ub * sizeof(float) * 5415 / 1000 + masks);
  }
  if (!s.flash_attn) {
    const uint64_t scores = g.n_ctx_seq * ub * n_head * sizeof(float);
    // Beside the scores: Q, K, V (one fused QKV tensor with views instead), the residual stream
    // and the normed input (fitted to the dry run with flash attention off).
    layer = std::max(layer, scores + masks + (shape.fused_qkv ? 5 : 6) * act);
  }
  return {layer, output, output_decode};
}

}  // namespace

uint64_t ComputeBytes(const ModelShape& shape, const Settings& s) {
  const ComputePhases p = Phases(shape, s);
  return std::max(p.layer, p.output_reserved);
}

uint64_t ComputeTouchedBytes(const ModelShape& shape, const Settings& s) {
  const ComputePhases p = Phases(shape, s);
  return std::min(ComputeBytes(shape, s), std::max(p.layer, p.output_decode));
}

uint64_t OverheadBytes(const ModelShape& shape, const Settings& s) {
  // Measured (bench/results/plan-accuracy.md): libraries, ggml contexts and thread pools, plus the
  // vocabulary (token strings, scores, maps, merges), which grows with the token count. Fitted to
  // the peaks of phi-3.5 (32k tokens) and gemma-3 (262k); llama-3 and qwen2.5 land within 1%.
  // Grammar-constrained answers (tool calls, JSON schemas) keep a candidate array of the whole
  // vocabulary per slot (12-byte llama_token_data), and a constrained pick makes llama.cpp's
  // grammar decode every candidate's text and copy the candidate list once per grammar stack
  // (llama-grammar.cpp, llama_grammar_apply_impl / reject_candidates). Picks run one at a time on
  // the scheduler thread, and the allocator keeps that peak afterwards: measured as the server's
  // RSS growth from free answers to 32 concurrent JSON-schema and tool-call answers, +88 MiB at
  // a 128k vocabulary (llama-3) and +90 MiB at 152k (qwen2.5), i.e. up to ~690 bytes a token.
  const uint64_t grammar =
      s.constrained_decoding
          ? uint64_t{shape.n_vocab} * (704 + 12 * std::max<uint32_t>(1, s.n_parallel))
          : 0;
  return 20 * kMiB + uint64_t{shape.n_vocab} * 442 + grammar;
}

DeviceMemory EstimateDevice(const ModelShape& shape, const Settings& s, uint32_t first_layer,
                            uint32_t n_layers, bool output, bool remote) {
  DeviceMemory dm;
  dm.output = output;
  uint64_t largest = 0;
  for (uint32_t il = first_layer; il < first_layer + n_layers && il < shape.n_layer; ++il) {
    const LayerShape& layer = shape.layers[il];
    dm.n_layers++;
    dm.weights_bytes += layer.WeightBytes();
    dm.kv_bytes += LayerKvBytes(shape, layer, s);
    for (const auto& t : layer.tensors)
      largest = std::max(largest, t.bytes);
  }
  if (output) {
    dm.weights_bytes += TensorsBytes(shape.output_tensors, /*on_host=*/false);
    for (const auto& t : shape.output_tensors)
      largest = std::max(largest, t.bytes);
  }
  // Every device that runs layers reserves the worst-case graph of its own part: llama.cpp's
  // scheduler sizes each backend's buffer by the graph splits it runs, so only the device with
  // the output layer reserves the logits of n_ubatch outputs.
  if (output) {
    dm.compute_bytes = ComputeBytes(shape, s);
  } else if (dm.n_layers > 0) {
    dm.compute_bytes = Phases(shape, s).layer;
  }
  dm.transfer_bytes = remote ? largest : 0;
  dm.total_bytes = dm.weights_bytes + dm.kv_bytes + dm.compute_bytes + dm.transfer_bytes;
  return dm;
}

MemoryBreakdown Estimate(const ModelShape& shape, const Settings& s) {
  MemoryBreakdown m;
  const uint32_t n_layer = shape.n_layer;
  uint32_t offloaded = 0;
  for (const auto& d : s.devices)
    offloaded += d.n_layers;
  offloaded = std::min(offloaded, n_layer);
  const uint32_t first_device_layer = n_layer - offloaded;

  // Host: input tensors, CPU layers, and the output layer unless offloaded.
  uint64_t host_weights = TensorsBytes(shape.input_tensors);
  uint64_t repack = RepackedBytes(shape.input_tensors, s.cpu);
  for (uint32_t il = 0; il < first_device_layer; ++il) {
    host_weights += shape.layers[il].WeightBytes();
    repack += RepackedBytes(shape.layers[il].tensors, s.cpu);
    m.host_kv_bytes += LayerKvBytes(shape, shape.layers[il], s);
  }
  const bool output_on_device = s.output_on_device && !s.devices.empty();
  if (!output_on_device) {
    host_weights += TensorsBytes(shape.output_tensors);
    repack += RepackedBytes(shape.output_tensors, s.cpu);
  }

  // Devices: consecutive layer ranges in order; the output layer on the last one.
  uint32_t il = first_device_layer;
  uint64_t uploaded_from_file = 0;
  for (size_t d = 0; d < s.devices.size(); ++d) {
    const auto& place = s.devices[d];
    const uint32_t n = std::min(place.n_layers, n_layer - il);
    DeviceMemory dm = EstimateDevice(shape, s, il, n, output_on_device && d + 1 == s.devices.size(),
                                     !place.host.empty());
    dm.name = place.name;
    dm.unified = place.unified;
    dm.host = place.host;
    il += n;
    if (!dm.unified) uploaded_from_file += dm.weights_bytes;
    m.per_device.push_back(dm);
  }
  const uint64_t device_compute = ComputeBytes(shape, s);

  // The host's graph buffer: the whole graph when the host runs layers, otherwise the inputs
  // and the copies between backends.
  const bool host_runs_layers = first_device_layer > 0 || !output_on_device;
  m.host_compute_bytes =
      host_runs_layers
          ? device_compute
          : uint64_t{shape.n_embd} * std::min<uint32_t>(s.n_ubatch, s.n_batch) * sizeof(float) * 4;

  // Host graph buffers are malloc'ed: pages the graphs never write stay uncommitted. Generation
  // asks for one output per sequence, so the logits part reserved for n_ubatch outputs is never
  // touched (measured: bench/results/plan-accuracy.md); device buffers are committed in full.
  m.host_compute_touched_bytes = host_runs_layers
                                     ? std::min(m.host_compute_bytes, ComputeTouchedBytes(shape, s))
                                     : m.host_compute_bytes;

  m.host_weights_bytes = host_weights;
  m.repack_bytes = repack;
  m.output_bytes = OutputBytes(shape, s);
  m.overhead_bytes = OverheadBytes(shape, s);
  m.file_cache_bytes = repack + uploaded_from_file;

  m.weights_bytes = host_weights;
  m.kv_bytes = m.host_kv_bytes;
  m.compute_bytes = m.host_compute_bytes;
  uint64_t unified_total = 0;
  for (const auto& dm : m.per_device) {
    m.weights_bytes += dm.weights_bytes;
    m.kv_bytes += dm.kv_bytes;
    m.compute_bytes += dm.compute_bytes;
    if (dm.unified) unified_total += dm.total_bytes;
  }
  m.host_required_bytes = m.host_weights_bytes + m.host_kv_bytes + m.host_compute_touched_bytes +
                          m.output_bytes + m.overhead_bytes + unified_total;
  m.peak_host_bytes = m.host_required_bytes + m.file_cache_bytes;
  return m;
}

}  // namespace snug::plan
