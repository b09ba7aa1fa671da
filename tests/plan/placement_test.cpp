// Placement across hosts (--worker): each worker is a device with its own budget; layers go in
// consecutive ranges so that every host fits, the fewest hosts first.
#include <gtest/gtest.h>

#include <chrono>
#include <string>

#include "core/size.h"
#include "plan/fit.h"
#include "plan/hosts.h"
#include "plan/placement.h"
#include "plan/request.h"
#include "plan/shape.h"

namespace snug::plan {
namespace {

// Llama 3.2 3B's geometry: 28 layers of 60 MiB (Q4_K), a 128k vocabulary, tied-size output.
ModelShape Llama3B() {
  ModelShape s;
  s.name = "llama-3b";
  s.arch = "llama";
  s.n_layer = 28;
  s.n_embd = 3072;
  s.n_vocab = 128256;
  s.n_ctx_train = 131072;
  s.layers.resize(s.n_layer);
  for (auto& l : s.layers) {
    l.n_head = 24;
    l.n_head_kv = 8;
    l.head_dim_k = l.head_dim_v = 128;
    l.n_ff = 8192;
    l.tensors.push_back({"blk.x.ffn_up.weight", 12, 40 * kMiB, 8192, 2, true, false});
    l.tensors.push_back({"blk.x.attn_q.weight", 12, 20 * kMiB, 3072, 2, true, false});
  }
  const uint64_t embd = uint64_t{s.n_vocab} * s.n_embd * 210 / 256;
  s.input_tensors.push_back({"token_embd.weight", 14, embd, s.n_vocab, 2, false, false});
  s.output_tensors.push_back({"output.weight", 14, embd, s.n_vocab, 2, true, false});
  return s;
}

hw::Budget Host(uint64_t bytes) {
  hw::Budget b;
  b.host_bytes = b.host_raw_bytes = bytes;
  b.source = "override";
  b.detail = "test budget";
  return b;
}

void AddWorker(hw::Budget* b, const std::string& endpoint, uint64_t bytes) {
  hw::WorkerHost w;
  w.endpoint = endpoint;
  w.protocol = "6.0.0";
  w.source = "cgroup";
  w.detail = "cgroup v2 limit (test)";
  b->workers.push_back(w);
  hw::Device d;
  d.name = "RPC[" + endpoint + "]/CPU";
  d.backend = "RPC";
  d.total_bytes = d.free_bytes = d.budget_bytes = bytes;
  d.host = endpoint;
  b->devices.push_back(d);
}

Request Req(const std::string& ctx = "auto") {
  auto r = ParseRequest(ctx, "f16", "auto", 1);
  EXPECT_TRUE(r.ok());
  return *r;
}

FitOptions Avx2() {
  FitOptions o;
  o.cpu.avx2 = true;
  return o;
}

uint32_t LayersOn(const Plan& p, const std::string& host) {
  uint32_t n = 0;
  for (const auto& d : p.memory.per_device)
    if (d.host == host) n += d.n_layers;
  return n;
}

TEST(Placement, FitsHereAloneLeavesTheWorkersOut) {
  hw::Budget b = Host(16 * kGiB);
  AddWorker(&b, "10.0.0.2:50052", 8 * kGiB);
  auto p = Fit(Llama3B(), b, Req(), Avx2());
  ASSERT_TRUE(p.ok() && p->fits) << p->reason;
  EXPECT_TRUE(p->settings.devices.empty());
  EXPECT_NE(p->reason.find("workers are not needed"), std::string::npos) << p->reason;
}

TEST(Placement, TwoWorkersTogetherHoldWhatNeitherHoldsAlone) {
  // This host keeps the embeddings and a few layers; each worker has 1.5 GiB.
  hw::Budget b = Host(900 * kMiB);
  AddWorker(&b, "127.0.0.1:50052", 1536 * kMiB);
  AddWorker(&b, "127.0.0.1:50062", 1536 * kMiB);
  auto p = Fit(Llama3B(), b, Req("2048"), Avx2());
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->fits) << p->reason << p->status.message();
  const uint32_t w1 = LayersOn(*p, "127.0.0.1:50052");
  const uint32_t w2 = LayersOn(*p, "127.0.0.1:50062");
  EXPECT_GT(w1, 0u);
  EXPECT_GT(w2, 0u);
  uint32_t offloaded = 0;
  for (const auto& d : p->settings.devices)
    offloaded += d.n_layers;
  EXPECT_EQ(offloaded + (28 - offloaded), 28u);
  EXPECT_LE(p->memory.host_required_bytes, b.host_bytes);
  for (const auto& d : p->memory.per_device) {
    EXPECT_LE(d.total_bytes, 1536 * kMiB) << d.host;
    EXPECT_GT(d.transfer_bytes, 0u);  // a worker receives whole tensors
  }
  // The output layer goes with the last worker (llama.cpp offloads it first).
  EXPECT_TRUE(p->settings.output_on_device);
  EXPECT_TRUE(p->memory.per_device.back().output);
  // Neither worker alone would do.
  hw::Budget one = Host(900 * kMiB);
  AddWorker(&one, "127.0.0.1:50052", 1536 * kMiB);
  auto alone = Fit(Llama3B(), one, Req("2048"), Avx2());
  ASSERT_TRUE(alone.ok());
  EXPECT_FALSE(alone->fits);
  // The per-host rows add up to the plan.
  auto rows = HostRows(Llama3B(), *p, b);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(rows[0].host, "this host");
  EXPECT_EQ(rows[0].n_layers + rows[1].n_layers + rows[2].n_layers, 28u);
  EXPECT_EQ(rows[0].total_bytes, p->memory.host_required_bytes);
  for (const auto& r : rows)
    EXPECT_LE(r.total_bytes, r.budget_bytes) << r.host;
}

TEST(Placement, TheLargestWorkerIsFilledFirstSoFewerHostsAreUsed) {
  hw::Budget b = Host(900 * kMiB);
  AddWorker(&b, "small:1", 600 * kMiB);
  AddWorker(&b, "big:1", 6 * kGiB);
  auto p = Fit(Llama3B(), b, Req("2048"), Avx2());
  ASSERT_TRUE(p.ok() && p->fits) << p->reason;
  EXPECT_EQ(LayersOn(*p, "small:1"), 0u);
  EXPECT_GT(LayersOn(*p, "big:1"), 0u);
  EXPECT_EQ(p->memory.per_device.size(), 1u);
}

TEST(Placement, TooSmallTogetherIsExit3WithEveryHostsNumbers) {
  hw::Budget b = Host(900 * kMiB);
  AddWorker(&b, "127.0.0.1:50052", 500 * kMiB);
  AddWorker(&b, "127.0.0.1:50062", 500 * kMiB);
  auto p = Fit(Llama3B(), b, Req("2048"), Avx2());
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->fits);
  EXPECT_EQ(p->status.code(), Code::kDoesNotFit);
  const std::string& m = p->status.message();
  EXPECT_NE(m.find("this host and its 2 worker(s)"), std::string::npos) << m;
  EXPECT_NE(m.find("127.0.0.1:50052 needs"), std::string::npos) << m;
  EXPECT_NE(m.find("127.0.0.1:50062 needs"), std::string::npos) << m;
  EXPECT_NE(m.find("of its 500.0 MiB"), std::string::npos) << m;
}

TEST(Placement, LargestContextAcrossHostsIsReported) {
  hw::Budget b = Host(900 * kMiB);
  AddWorker(&b, "a:1", 1536 * kMiB);
  AddWorker(&b, "b:1", 1536 * kMiB);
  auto p = Fit(Llama3B(), b, Req("131072"), Avx2());
  ASSERT_TRUE(p.ok());
  EXPECT_FALSE(p->fits);
  EXPECT_GT(p->max_ctx.f16, 0u);
  EXPECT_LT(p->max_ctx.f16, 131072u);
  EXPECT_NE(p->status.message().find("across them"), std::string::npos) << p->status.message();
  // And that context does fit.
  auto at_max = Fit(Llama3B(), b, Req(std::to_string(p->max_ctx.f16)), Avx2());
  ASSERT_TRUE(at_max.ok());
  EXPECT_TRUE(at_max->fits) << at_max->status.message();
}

TEST(Placement, ExplicitNglWithWorkersIsRefused) {
  hw::Budget b = Host(900 * kMiB);
  AddWorker(&b, "a:1", 4 * kGiB);
  auto r = ParseRequest("auto", "f16", "10", 1);
  ASSERT_TRUE(r.ok());
  auto p = Fit(Llama3B(), b, *r, Avx2());
  EXPECT_FALSE(p.ok());
}

TEST(Placement, EightWorkersUseOnlyAsManyAsNeeded) {
  hw::Budget b = Host(600 * kMiB);
  for (int i = 0; i < 8; ++i)
    AddWorker(&b, "w" + std::to_string(i) + ":1", 1 * kGiB);
  auto p = Fit(Llama3B(), b, Req("4096"), Avx2());
  ASSERT_TRUE(p.ok());
  ASSERT_TRUE(p->fits) << p->status.message();
  size_t used = 0;
  for (const auto& d : p->memory.per_device) {
    EXPECT_LE(d.total_bytes, 1 * kGiB) << d.host;
    if (d.n_layers > 0 || d.output) ++used;
  }
  EXPECT_GE(used, 2u);
  EXPECT_LT(used, 8u);
}

}  // namespace
}  // namespace snug::plan
