// The fit policy branch by branch (SPEC.md "Fit policy"), on model shapes built in the test or
// described from synth presets, against budgets built in the test or from hw profiles.
#include <gtest/gtest.h>

#include <string>

#include "core/size.h"
#include "hw/profiles.h"
#include "plan/estimate.h"
#include "plan/fit.h"
#include "plan/request.h"
#include "plan/shape.h"
#include "synth/describe.h"
#include "synth/presets.h"

namespace snug::plan {
namespace {

// A llama-like dense model: every layer holds `layer_bytes` of Q4_K weights.
ModelShape Dense(uint32_t n_layer, uint32_t n_embd, uint32_t n_head, uint32_t n_head_kv,
                 uint32_t n_ff, uint32_t n_vocab, uint32_t n_ctx_train, uint64_t layer_bytes) {
  ModelShape s;
  s.name = "test-model";
  s.arch = "llama";
  s.n_layer = n_layer;
  s.n_embd = n_embd;
  s.n_vocab = n_vocab;
  s.n_ctx_train = n_ctx_train;
  s.layers.resize(n_layer);
  for (auto& l : s.layers) {
    l.n_head = n_head;
    l.n_head_kv = n_head_kv;
    l.head_dim_k = l.head_dim_v = n_embd / n_head;
    l.n_ff = n_ff;
    l.tensors.push_back({"blk.x.ffn_up.weight", 12, layer_bytes, n_ff, 2, true, false});
  }
  s.input_tensors.push_back(
      {"token_embd.weight", 14, uint64_t{n_vocab} * n_embd * 210 / 256, n_vocab, 2, false, false});
  s.output_tensors.push_back(
      {"output.weight", 14, uint64_t{n_vocab} * n_embd * 210 / 256, n_vocab, 2, true, false});
  return s;
}

// Llama 3.2 3B's geometry (28 layers, 8 KV heads of 128).
ModelShape Llama3B() {
  return Dense(28, 3072, 24, 8, 8192, 128256, 131072, 60 * kMiB);
}
// Llama 3.1 8B's geometry.
ModelShape Llama8B() {
  return Dense(32, 4096, 32, 8, 14336, 128256, 131072, 140 * kMiB);
}

hw::Budget HostBudget(uint64_t raw) {
  hw::Budget b;
  b.host_raw_bytes = raw;
  b.headroom_bytes = hw::DefaultHeadroom(raw);
  b.host_bytes = raw - b.headroom_bytes;
  b.source = "override";
  b.detail = "test budget";
  return b;
}

hw::Device Gpu(const std::string& name, uint64_t budget, bool unified = false) {
  hw::Device d;
  d.name = name;
  d.backend = unified ? "Metal" : "CUDA";
  d.total_bytes = d.free_bytes = budget;
  d.budget_bytes = budget;
  d.unified = unified;
  return d;
}

Request Req(const std::string& ctx = "auto", const std::string& kv = "f16",
            const std::string& ngl = "auto", int parallel = 1) {
  auto r = ParseRequest(ctx, kv, ngl, parallel);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return *r;
}

FitOptions Avx2() {
  FitOptions o;
  o.cpu = CpuRepack{};
  o.cpu.avx2 = true;
  return o;
}

// Memory needed on the host at a context, CPU only.
uint64_t HostNeed(const ModelShape& s, uint32_t ctx, KvType kv = KvType::kF16) {
  Settings st;
  st.n_ctx = ctx;
  st.kv_type = kv;
  st.cpu = Avx2().cpu;
  return Estimate(s, st).host_required_bytes;
}

hw::Budget BudgetFor(uint64_t host_bytes) {
  hw::Budget b;
  b.host_bytes = host_bytes;
  b.host_raw_bytes = host_bytes;
  b.source = "override";
  b.detail = "exact test budget";
  return b;
}

TEST(KvCache, SeedFigureLlama3B131072IsFourteenGiB) {
  // The seed: 2 x 28 layers x 8 KV heads x 128 dims x 2 bytes x 131072 = 14 GiB.
  ModelShape s = Llama3B();
  Settings st;
  st.n_ctx = 131072;
  EXPECT_EQ(Estimate(s, st).kv_bytes, 14 * kGiB);
  st.kv_type = KvType::kQ8_0;  // 34 bytes per 32 values
  EXPECT_EQ(Estimate(s, st).kv_bytes, 14 * kGiB / 64 * 34);
  st.kv_type = KvType::kQ4_0;  // 18 bytes per 32 values
  EXPECT_EQ(Estimate(s, st).kv_bytes, 14 * kGiB / 64 * 18);
}

TEST(KvCache, ContextIsPaddedTo256LikeLlamaCpp) {
  ModelShape s = Llama3B();
  Settings a, b;
  a.n_ctx = 1000;
  b.n_ctx = 1024;
  EXPECT_EQ(Estimate(s, a).kv_bytes, Estimate(s, b).kv_bytes);
  EXPECT_EQ(KvCellsFull(a), 1024u);
}

TEST(KvCache, SlidingWindowLayersHoldTheWindowPlusUbatch) {
  ModelShape s = Dense(6, 1152, 4, 1, 6912, 262144, 32768, 10 * kMiB);
  s.arch = "gemma3";
  s.n_swa = 512;
  for (uint32_t il = 0; il < 6; ++il)
    s.layers[il].swa = il % 6 < 5;
  Settings st;
  st.n_ctx = 32768;
  // llama-kv-cache-iswa.cpp: GGML_PAD(min(32768, 512 + 512), 256) = 1024 cells.
  EXPECT_EQ(KvCellsSwa(s, st), 1024u);
  const uint64_t row = 2 * (2 * 288);  // K + V, f16, 1 head of 288
  EXPECT_EQ(Estimate(s, st).kv_bytes, (5 * 1024 + 32768) * row);
  st.swa_full = true;
  EXPECT_EQ(Estimate(s, st).kv_bytes, 6 * 32768 * row);
}

TEST(KvCache, ParallelSequencesMultiplyCells) {
  ModelShape s = Llama3B();
  Settings one, four;
  one.n_ctx = four.n_ctx = 4096;
  four.n_parallel = 4;
  EXPECT_EQ(Estimate(s, four).kv_bytes, 4 * Estimate(s, one).kv_bytes);
  EXPECT_EQ(four.LlamaNCtx(), 16384u);
}

TEST(Weights, RepackFollowsTheCpu) {
  ModelShape s = Llama3B();
  Settings st;
  st.cpu = Avx2().cpu;
  const auto avx2 = Estimate(s, st);
  EXPECT_EQ(avx2.repack_bytes, 28 * 60 * kMiB);  // Q4_K layers; Q6_K output is not repacked
  EXPECT_EQ(avx2.file_cache_bytes, avx2.repack_bytes);
  EXPECT_EQ(avx2.peak_host_bytes, avx2.host_required_bytes + avx2.repack_bytes);
  st.cpu = CpuRepack{};
  const auto plain = Estimate(s, st);
  EXPECT_EQ(plain.repack_bytes, 0u);
  EXPECT_EQ(plain.host_required_bytes, avx2.host_required_bytes);
}

TEST(FitPolicy, AutoPicksTheDefault8192WhenItFits) {
  auto plan = Fit(Llama3B(), HostBudget(16 * kGiB), Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->fits);
  EXPECT_EQ(plan->settings.n_ctx, 8192u);
  EXPECT_EQ(plan->settings.kv_type, KvType::kF16);
  EXPECT_TRUE(plan->status.ok());
  EXPECT_NE(plan->reason.find("8192"), std::string::npos);
  EXPECT_LE(plan->memory.host_required_bytes, HostBudget(16 * kGiB).host_bytes);
}

TEST(FitPolicy, AutoUsesTheTrainedContextWhenSmaller) {
  ModelShape s = Llama3B();
  s.n_ctx_train = 4096;
  auto plan = Fit(s, HostBudget(16 * kGiB), Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->settings.n_ctx, 4096u);
}

TEST(FitPolicy, AutoFallsBackToTheLargestMultipleOf256) {
  ModelShape s = Llama3B();
  // Room for 5000 tokens but not 8192.
  const uint64_t budget = HostNeed(s, 5000);
  auto plan = Fit(s, BudgetFor(budget), Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(plan->fits) << plan->reason;
  EXPECT_EQ(plan->settings.n_ctx % 256, 0u);
  EXPECT_GE(plan->settings.n_ctx, 4864u);
  EXPECT_LT(plan->settings.n_ctx, 8192u);
  EXPECT_LE(HostNeed(s, plan->settings.n_ctx), budget);
  EXPECT_GT(HostNeed(s, plan->settings.n_ctx + 256), budget);
  EXPECT_NE(plan->reason.find("8192"), std::string::npos) << plan->reason;
}

TEST(FitPolicy, AutoRefusesBelow2048WithNumbers) {
  ModelShape s = Llama3B();
  const uint64_t budget = HostNeed(s, 1024);
  auto plan = Fit(s, BudgetFor(budget), Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->fits);
  EXPECT_EQ(plan->status.code(), Code::kDoesNotFit);
  const std::string& m = plan->status.message();
  EXPECT_NE(m.find("test-model needs"), std::string::npos) << m;
  EXPECT_NE(m.find("ctx 8192"), std::string::npos) << m;
  EXPECT_NE(m.find("GiB"), std::string::npos) << m;
  EXPECT_NE(m.find("largest context that fits is 1024 (f16 KV)"), std::string::npos) << m;
  EXPECT_EQ(plan->max_ctx.f16, 1024u);
  EXPECT_GT(plan->max_ctx.q8_0, plan->max_ctx.f16);
}

TEST(FitPolicy, NothingFitsSaysSo) {
  auto plan = Fit(Llama3B(), BudgetFor(512 * kMiB), Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->fits);
  EXPECT_EQ(plan->max_ctx.f16, 0u);
  EXPECT_EQ(plan->max_ctx.q4_0, 0u);
  EXPECT_NE(plan->status.message().find("not even a 256-token context fits"), std::string::npos);
}

TEST(FitPolicy, MaxTakesTheTrainedContextWhenItFits) {
  auto plan = Fit(Llama3B(), HostBudget(64 * kGiB), Req("max"), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->settings.n_ctx, 131072u);
  EXPECT_EQ(plan->max_ctx.f16, 131072u);
}

TEST(FitPolicy, MaxTakesTheLargestThatFits) {
  ModelShape s = Llama3B();
  const uint64_t budget = HostNeed(s, 40000);
  auto plan = Fit(s, BudgetFor(budget), Req("max"), Avx2());
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(plan->fits);
  EXPECT_EQ(plan->settings.n_ctx, plan->max_ctx.f16);
  // llama.cpp pads 40000 to 40192 cells, so 40192 costs the same and fits.
  EXPECT_EQ(plan->settings.n_ctx, 40192u);
  // With KV auto, max prefers the trained context in a quantized cache over a shorter f16 one.
  auto q = Fit(s, BudgetFor(budget), Req("max", "auto"), Avx2());
  ASSERT_TRUE(q.ok());
  EXPECT_GT(q->settings.n_ctx, 40192u);
  EXPECT_NE(q->settings.kv_type, KvType::kF16);
}

TEST(FitPolicy, ExplicitContextIsExactOrRefused) {
  ModelShape s = Llama3B();
  const uint64_t budget = HostNeed(s, 20000);
  auto ok = Fit(s, BudgetFor(budget), Req("12000"), Avx2());
  ASSERT_TRUE(ok.ok());
  EXPECT_TRUE(ok->fits);
  EXPECT_EQ(ok->settings.n_ctx, 12000u);  // never rounded in the plan; llama.cpp pads cells
  auto no = Fit(s, BudgetFor(budget), Req("131072"), Avx2());
  ASSERT_TRUE(no.ok());
  EXPECT_FALSE(no->fits);
  EXPECT_EQ(no->settings.n_ctx, 131072u);  // the memory shown is for what was asked
  const std::string& m = no->status.message();
  EXPECT_NE(m.find("at ctx 131072 (f16 KV)"), std::string::npos) << m;
  EXPECT_NE(m.find("(q8_0 KV)"), std::string::npos) << m;
  EXPECT_NE(m.find("--kv-type auto"), std::string::npos) << m;
}

TEST(FitPolicy, KvAutoQuantizesOnlyWhenF16DoesNotFit) {
  ModelShape s = Llama3B();
  const uint64_t q8_budget = HostNeed(s, 8192, KvType::kQ8_0);
  auto f16_only = Fit(s, BudgetFor(q8_budget), Req("8192"), Avx2());
  ASSERT_TRUE(f16_only.ok());
  EXPECT_FALSE(f16_only->fits);
  auto q8 = Fit(s, BudgetFor(q8_budget), Req("auto", "auto"), Avx2());
  ASSERT_TRUE(q8.ok());
  ASSERT_TRUE(q8->fits);
  EXPECT_EQ(q8->settings.n_ctx, 8192u);
  EXPECT_EQ(q8->settings.kv_type, KvType::kQ8_0);
  EXPECT_NE(q8->reason.find("q8_0 KV because f16 needs"), std::string::npos) << q8->reason;
  const uint64_t q4_budget = HostNeed(s, 8192, KvType::kQ4_0);
  auto q4 = Fit(s, BudgetFor(q4_budget), Req("auto", "auto"), Avx2());
  ASSERT_TRUE(q4.ok());
  EXPECT_EQ(q4->settings.kv_type, KvType::kQ4_0);
  auto roomy = Fit(s, HostBudget(32 * kGiB), Req("auto", "auto"), Avx2());
  EXPECT_EQ(roomy->settings.kv_type, KvType::kF16);
}

TEST(FitPolicy, QuantizedKvNeedsFlashAttention) {
  Request r = Req("auto", "q8_0");
  r.flash_attn = FlashAttn::kOff;
  EXPECT_EQ(Fit(Llama3B(), HostBudget(16 * kGiB), r, Avx2()).status().code(),
            Code::kInvalidArgument);
}

// --- snug serve --batch-invariant --------------------------------------------------------------

Request ServeReq(const std::string& ctx = "auto", const std::string& kv = "auto",
                 const std::string& ngl = "auto", int parallel = 4) {
  Request r = Req(ctx, kv, ngl, parallel);
  r.batch_invariant = true;
  return r;
}

TEST(BatchInvariant, FlashAttentionOffF16KvOneStreamPerSlot) {
  ModelShape s = Llama3B();
  auto plain = Fit(s, HostBudget(32 * kGiB), Req("auto", "auto", "auto", 4), Avx2());
  auto plan = Fit(s, HostBudget(32 * kGiB), ServeReq(), Avx2());
  ASSERT_TRUE(plain.ok() && plan.ok());
  ASSERT_TRUE(plan->fits);
  EXPECT_TRUE(plan->batch_invariant);
  EXPECT_FALSE(plan->settings.flash_attn);
  EXPECT_FALSE(plan->settings.kv_unified);
  EXPECT_EQ(plan->settings.kv_type, KvType::kF16);
  EXPECT_EQ(plan->settings.n_ctx, plain->settings.n_ctx);
  // Without flash attention the scores are materialized: it costs memory, and the plan counts it.
  EXPECT_GT(plan->memory.host_required_bytes, plain->memory.host_required_bytes);
  EXPECT_NE(plan->reason.find("bit-identical"), std::string::npos) << plan->reason;
  EXPECT_FALSE(plain->batch_invariant);
  auto one = Fit(s, HostBudget(32 * kGiB), Req("auto", "auto", "auto", 1), Avx2());
  EXPECT_TRUE(one->batch_invariant);  // one slot never shares a batch
}

TEST(BatchInvariant, ItsExtraMemoryIsFittedNotAssumed) {
  ModelShape s = Llama3B();
  Settings st;
  st.n_ctx = 8192;
  st.n_parallel = 4;
  st.cpu = Avx2().cpu;
  const uint64_t with_fa = Estimate(s, st).host_required_bytes;
  st.flash_attn = false;
  const uint64_t without_fa = Estimate(s, st).host_required_bytes;
  ASSERT_GT(without_fa, with_fa);
  // Room for 8192 with flash attention, not without: the invariant plan takes a smaller context.
  const hw::Budget budget = BudgetFor((with_fa + without_fa) / 2);
  auto plain = Fit(s, budget, Req("auto", "f16", "auto", 4), Avx2());
  auto plan = Fit(s, budget, ServeReq(), Avx2());
  ASSERT_TRUE(plain.ok() && plan.ok());
  EXPECT_EQ(plain->settings.n_ctx, 8192u);
  ASSERT_TRUE(plan->fits);
  EXPECT_LT(plan->settings.n_ctx, 8192u);
  EXPECT_LE(plan->memory.host_required_bytes, budget.host_bytes);
  auto explicit_ctx = Fit(s, budget, ServeReq("8192"), Avx2());
  ASSERT_TRUE(explicit_ctx.ok());
  EXPECT_FALSE(explicit_ctx->fits);
  EXPECT_EQ(explicit_ctx->status.code(), Code::kDoesNotFit);
}

TEST(BatchInvariant, RefusesWhatItCannotHonour) {
  EXPECT_EQ(Fit(Llama3B(), HostBudget(32 * kGiB), ServeReq("auto", "q8_0"), Avx2()).status().code(),
            Code::kInvalidArgument);
  hw::Budget gpu = HostBudget(32 * kGiB);
  gpu.devices.push_back(Gpu("CUDA0", 22 * kGiB));
  EXPECT_EQ(Fit(Llama8B(), gpu, ServeReq("auto", "auto", "33"), Avx2()).status().code(),
            Code::kInvalidArgument);
  ModelShape f16 = Llama3B();
  f16.layers[3].tensors[0].type = 1;  // GGML_TYPE_F16
  auto refused = Fit(f16, HostBudget(32 * kGiB), ServeReq(), Avx2());
  ASSERT_EQ(refused.status().code(), Code::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("quantized weights"), std::string::npos);
}

TEST(BatchInvariant, StaysOnTheCpuWhenAGpuIsThere) {
  hw::Budget b = HostBudget(32 * kGiB);
  b.devices.push_back(Gpu("CUDA0", 22 * kGiB));
  auto plan = Fit(Llama8B(), b, ServeReq(), Avx2());
  ASSERT_TRUE(plan.ok() && plan->fits);
  EXPECT_EQ(plan->settings.NGpuLayers(), 0);
  EXPECT_TRUE(plan->batch_invariant);
}

TEST(FitPolicy, Gpu24GBTakesEveryLayer) {
  hw::Budget b = HostBudget(32 * kGiB);
  b.devices.push_back(Gpu("CUDA0", 22 * kGiB));
  auto plan = Fit(Llama8B(), b, Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(plan->fits);
  EXPECT_EQ(plan->settings.NGpuLayers(), 33);  // 32 layers + output
  ASSERT_EQ(plan->memory.per_device.size(), 1u);
  const auto& d = plan->memory.per_device[0];
  EXPECT_EQ(d.kv_bytes, plan->memory.kv_bytes);
  EXPECT_EQ(plan->memory.host_kv_bytes, 0u);
  EXPECT_LE(d.total_bytes, 22 * kGiB);
  EXPECT_LT(plan->memory.host_required_bytes, 2 * kGiB);
  EXPECT_NE(plan->reason.find("all 32 layers and the output"), std::string::npos) << plan->reason;
}

TEST(FitPolicy, Small4GBGpuTakesWhatFitsTheRestStaysOnTheHost) {
  hw::Budget b = HostBudget(32 * kGiB);
  b.devices.push_back(Gpu("CUDA0", 4 * kGiB));
  auto plan = Fit(Llama8B(), b, Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  ASSERT_TRUE(plan->fits);
  const int ngl = plan->settings.NGpuLayers();
  EXPECT_GT(ngl, 0);
  EXPECT_LT(ngl, 32);
  EXPECT_LE(plan->memory.per_device[0].total_bytes, 4 * kGiB);
  // One more layer would not fit the device.
  Request more = Req("8192", "f16", std::to_string(ngl + 1));
  auto over = Fit(Llama8B(), b, more, Avx2());
  EXPECT_FALSE(over->fits);
  EXPECT_GT(plan->memory.host_kv_bytes, 0u);
  EXPECT_NE(plan->reason.find("the rest on the CPU"), std::string::npos) << plan->reason;
}

TEST(FitPolicy, PartialOffloadIsCheckedAgainstTheHostToo) {
  hw::Budget b = BudgetFor(1 * kGiB);
  b.devices.push_back(Gpu("CUDA0", 2 * kGiB));
  auto plan = Fit(Llama8B(), b, Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->fits);
  EXPECT_NE(plan->status.message().find("on accelerators"), std::string::npos)
      << plan->status.message();
}

TEST(FitPolicy, UnifiedMemoryIsOnePool) {
  ModelShape s = Llama3B();
  for (const char* profile : {"mac-8gb", "mac-16gb"}) {
    auto p = hw::FindProfile(profile);
    ASSERT_TRUE(p.ok()) << p.status().message();
    hw::Budget b = hw::ProfileBudget(*p, std::nullopt);
    ASSERT_FALSE(b.devices.empty());
    ASSERT_TRUE(b.devices[0].unified);
    auto plan = Fit(s, b, Req(), Avx2());
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(plan->fits) << profile << ": " << plan->reason;
    ASSERT_EQ(plan->memory.per_device.size(), 1u);
    const auto& d = plan->memory.per_device[0];
    EXPECT_GT(d.total_bytes, 0u);
    // The device's bytes are host bytes: counted in the host total, and never beyond the pool.
    EXPECT_GE(plan->memory.host_required_bytes, d.total_bytes);
    EXPECT_LE(plan->memory.host_required_bytes, b.host_bytes);
    EXPECT_LE(d.total_bytes, b.devices[0].budget_bytes);
    // No file cache for a unified device: the mapped file is the device buffer.
    EXPECT_EQ(plan->memory.file_cache_bytes, plan->memory.repack_bytes);
  }
  // The 16 GB Mac holds a longer context than the 8 GB one, but not 8 GB + 16 GB worth.
  auto m8 = Fit(s, hw::ProfileBudget(*hw::FindProfile("mac-8gb"), std::nullopt), Req("max"));
  auto m16 = Fit(s, hw::ProfileBudget(*hw::FindProfile("mac-16gb"), std::nullopt), Req("max"));
  EXPECT_LT(m8->settings.n_ctx, m16->settings.n_ctx);
}

TEST(FitPolicy, VramLimitMakesAnH100TakeAPartialOffload) {
  // bench/gpu/run.sh's case: --vram-limit below the model makes --ngl auto split it on a real
  // 80 GB card; the planned device bytes stay under the cap.
  hw::Budget full = hw::ProfileBudget(*hw::FindProfile("datacenter-80gb"), std::nullopt);
  full.host_bytes = 32 * kGiB;
  auto all = Fit(Llama8B(), full, Req("8192"), Avx2());
  ASSERT_TRUE(all.ok() && all->fits);
  EXPECT_EQ(all->settings.NGpuLayers(), 33);
  hw::Budget capped = full;
  hw::CapDeviceBudgets(2 * kGiB, "--vram-limit", &capped);
  auto part = Fit(Llama8B(), capped, Req("8192"), Avx2());
  ASSERT_TRUE(part.ok() && part->fits) << part->reason;
  const int ngl = part->settings.NGpuLayers();
  EXPECT_GT(ngl, 0);
  EXPECT_LT(ngl, 32);
  ASSERT_EQ(part->memory.per_device.size(), 1u);
  EXPECT_LE(part->memory.per_device[0].total_bytes, 2 * kGiB);
  auto more = Fit(Llama8B(), capped, Req("8192", "f16", std::to_string(ngl + 1)), Avx2());
  EXPECT_FALSE(more->fits);
}

TEST(FitPolicy, ExplicitNglZeroKeepsEverythingOnTheHost) {
  hw::Budget b = HostBudget(32 * kGiB);
  b.devices.push_back(Gpu("CUDA0", 22 * kGiB));
  auto plan = Fit(Llama8B(), b, Req("auto", "f16", "0"), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->settings.NGpuLayers(), 0);
  EXPECT_EQ(plan->memory.host_kv_bytes, plan->memory.kv_bytes);
}

TEST(ParseRequest, AcceptsTheDocumentedForms) {
  auto r = ParseRequest("8k", "Q8_0", "12", 4);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->ctx_mode, CtxMode::kExplicit);
  EXPECT_EQ(r->n_ctx, 8192u);
  EXPECT_EQ(r->kv_type, KvType::kQ8_0);
  EXPECT_FALSE(r->ngl_auto);
  EXPECT_EQ(r->n_gpu_layers, 12);
  EXPECT_EQ(r->n_parallel, 4u);
  EXPECT_EQ(ParseRequest("max", "auto", "auto", 1)->ctx_mode, CtxMode::kMax);
  EXPECT_TRUE(ParseRequest("max", "auto", "auto", 1)->kv_auto);
}

TEST(ParseRequest, RejectsGarbageWithTheAcceptedForms) {
  auto bad_ctx = ParseRequest("lots", "f16", "auto", 1);
  EXPECT_EQ(bad_ctx.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad_ctx.status().message().find("'auto' or 'max'"), std::string::npos);
  EXPECT_EQ(ParseRequest("0", "f16", "auto", 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseRequest("auto", "q5_1", "auto", 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseRequest("auto", "f16", "all", 1).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(ParseRequest("auto", "f16", "auto", 0).status().code(), Code::kInvalidArgument);
}

// The seed scenario on the real preset header: a 3B Q4_K_M model in a 6 GiB container.
class SeedScenario : public ::testing::Test {
 protected:
  void SetUp() override {
    auto preset = synth::FindPreset("llama-3.2-3b-q4_k_m");
    ASSERT_TRUE(preset.ok()) << preset.status().message();
    auto file = synth::DescribePreset(*preset, std::string(SNUG_LLAMA_SRC) + "/models");
    ASSERT_TRUE(file.ok()) << file.status().message();
    auto shape = ShapeFromGguf(*file);
    ASSERT_TRUE(shape.ok()) << shape.status().message();
    shape_ = *shape;
    shape_.name = "llama-3.2-3b-q4_k_m";
    budget_ = HostBudget(6 * kGiB);
  }
  ModelShape shape_;
  hw::Budget budget_;
};

TEST_F(SeedScenario, ShapeMatchesTheModel) {
  EXPECT_EQ(shape_.arch, "llama");
  EXPECT_EQ(shape_.n_layer, 28u);
  EXPECT_EQ(shape_.n_ctx_train, 131072u);
  EXPECT_EQ(shape_.n_vocab, 128256u);
  EXPECT_EQ(shape_.layers[0].n_head_kv, 8u);
  EXPECT_EQ(shape_.layers[0].head_dim_k, 128u);
  EXPECT_TRUE(shape_.tied_embeddings);
  EXPECT_TRUE(shape_.approximation.empty());
}

TEST_F(SeedScenario, DefaultSettingsFitAt8192) {
  auto plan = Fit(shape_, budget_, Req(), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_TRUE(plan->fits) << plan->reason;
  EXPECT_EQ(plan->settings.n_ctx, 8192u);
  EXPECT_EQ(plan->memory.kv_bytes, 896 * kMiB);
  EXPECT_LT(plan->memory.peak_host_bytes, budget_.host_bytes);
}

TEST_F(SeedScenario, FullContextDoesNotFitAndSaysWhatDoes) {
  auto plan = Fit(shape_, budget_, Req("131072"), Avx2());
  ASSERT_TRUE(plan.ok());
  EXPECT_FALSE(plan->fits);
  const std::string& m = plan->status.message();
  EXPECT_EQ(m.rfind("llama-3.2-3b-q4_k_m needs 1", 0), 0u) << m;
  EXPECT_NE(m.find("at ctx 131072 (f16 KV) but the budget is 5.4 GiB"), std::string::npos) << m;
  EXPECT_NE(m.find("headroom"), std::string::npos) << m;
  EXPECT_GT(plan->max_ctx.f16, 8192u);
  EXPECT_LT(plan->max_ctx.f16, 131072u);
  EXPECT_GT(plan->max_ctx.q8_0, plan->max_ctx.f16);
  EXPECT_GT(plan->max_ctx.q4_0, plan->max_ctx.q8_0);
  EXPECT_NE(m.find(std::to_string(plan->max_ctx.f16) + " (f16 KV)"), std::string::npos) << m;
}

TEST(Shape, RefusesRecurrentArchitectures) {
  gguf::File f;
  f.kv["general.architecture"].type = gguf::ValueType::kString;
  f.kv["general.architecture"].data = std::string("mamba");
  auto shape = ShapeFromGguf(f);
  EXPECT_EQ(shape.status().code(), Code::kUnimplemented);
  EXPECT_NE(shape.status().message().find("recurrent"), std::string::npos);
}

TEST(Shape, EveryPresetIsModelled) {
  for (const auto& preset : synth::AllPresets()) {
    auto file = synth::DescribePreset(preset, std::string(SNUG_LLAMA_SRC) + "/models");
    ASSERT_TRUE(file.ok()) << preset.name << ": " << file.status().message();
    auto shape = ShapeFromGguf(*file);
    ASSERT_TRUE(shape.ok()) << preset.name << ": " << shape.status().message();
    EXPECT_EQ(shape->n_layer, preset.n_layer) << preset.name;
    EXPECT_EQ(shape->n_vocab, preset.n_vocab) << preset.name;
    // llama.cpp ignores Phi-3's declared window (src/models/phi3.cpp): so does snug.
    EXPECT_EQ(shape->n_swa, preset.arch == "phi3" ? 0 : preset.n_swa) << preset.name;
    EXPECT_EQ(shape->tied_embeddings, preset.tied_embeddings) << preset.name;
    EXPECT_EQ(shape->n_expert, preset.n_expert) << preset.name;
    EXPECT_EQ(shape->TotalWeightBytes() >= file->TensorBytes(), true) << preset.name;
  }
}

}  // namespace
}  // namespace snug::plan
