#include "plan/json.h"

namespace snug::plan {

nlohmann::json ModelToJson(const ModelShape& s) {
  nlohmann::json j = {
      {"name", s.name},
      {"arch", s.arch},
      {"n_ctx_train", s.n_ctx_train},
      {"n_layer", s.n_layer},
      {"n_embd", s.n_embd},
      {"n_vocab", s.n_vocab},
      {"n_swa", s.n_swa},
      {"n_expert", s.n_expert},
      {"n_expert_used", s.n_expert_used},
      {"tied_embeddings", s.tied_embeddings},
      {"file_bytes", s.file_bytes},
      {"weights_bytes", s.TotalWeightBytes()},
  };
  if (!s.approximation.empty()) j["approximation"] = s.approximation;
  return j;
}

nlohmann::json FitToJson(const Plan& p) {
  return {
      {"ok", p.fits},
      {"n_ctx", p.settings.n_ctx},
      {"kv_type", KvTypeName(p.settings.kv_type)},
      {"n_gpu_layers", p.settings.NGpuLayers()},
      {"n_parallel", p.settings.n_parallel},
      {"n_batch", p.settings.n_batch},
      {"n_ubatch", p.settings.n_ubatch},
      {"flash_attn", p.settings.flash_attn},
      {"kv_unified", p.settings.kv_unified},
      {"batch_invariant", p.batch_invariant},
      {"llama_n_ctx", p.settings.LlamaNCtx()},
      {"reason", p.reason},
  };
}

nlohmann::json MemoryToJson(const MemoryBreakdown& m) {
  nlohmann::json devices = nlohmann::json::array();
  for (const auto& d : m.per_device) {
    nlohmann::json dj = {{"name", d.name},
                         {"unified", d.unified},
                         {"n_layers", d.n_layers},
                         {"output", d.output},
                         {"weights_bytes", d.weights_bytes},
                         {"kv_bytes", d.kv_bytes},
                         {"compute_bytes", d.compute_bytes},
                         {"total_bytes", d.total_bytes}};
    if (!d.host.empty()) {
      dj["host"] = d.host;
      dj["transfer_bytes"] = d.transfer_bytes;
    }
    devices.push_back(std::move(dj));
  }
  return {
      {"weights_bytes", m.weights_bytes},
      {"kv_bytes", m.kv_bytes},
      {"compute_bytes", m.compute_bytes},
      {"output_bytes", m.output_bytes},
      {"overhead_bytes", m.overhead_bytes},
      {"peak_host_bytes", m.peak_host_bytes},
      {"host_required_bytes", m.host_required_bytes},
      {"host_weights_bytes", m.host_weights_bytes},
      {"repack_bytes", m.repack_bytes},
      {"host_kv_bytes", m.host_kv_bytes},
      {"host_compute_bytes", m.host_compute_bytes},
      {"host_compute_touched_bytes", m.host_compute_touched_bytes},
      {"file_cache_bytes", m.file_cache_bytes},
      {"per_device", devices},
  };
}

nlohmann::json MaxCtxToJson(const MaxCtx& m) {
  return {{"f16", m.f16}, {"q8_0", m.q8_0}, {"q4_0", m.q4_0}};
}

nlohmann::json HostsToJson(const std::vector<HostRow>& rows) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : rows) {
    out.push_back({{"host", r.host},
                   {"worker", r.worker},
                   {"n_layers", r.n_layers},
                   {"output", r.output},
                   {"weights_bytes", r.weights_bytes},
                   {"kv_bytes", r.kv_bytes},
                   {"compute_bytes", r.compute_bytes},
                   {"other_bytes", r.other_bytes},
                   {"total_bytes", r.total_bytes},
                   {"budget_bytes", r.budget_bytes},
                   {"source", r.source}});
  }
  return out;
}

}  // namespace snug::plan
