// End to end: the snug binary against fake_hub (a real HTTP server on 127.0.0.1 mimicking the
// Hugging Face hub), each test with its own SNUG_HOME.
#include <ggml.h>
#include <gguf.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>

#include <nlohmann/json.hpp>
#include <regex>

#include "store/sha256.h"
#include "test_util.h"

namespace snug::store {
namespace {

namespace fs = std::filesystem;
using test::ReadText;

// Model files generated once per test binary with `snug mkmodel`.
class Models {
 public:
  static Models& Get() {
    static Models models;
    return models;
  }
  std::string tiny;  // ~25 MiB Q8_0, 4 layers
  std::string tiny_sha;
  std::string big;  // llama-3.1-8b-q4_k_m, sparse: a 4.6 GiB file that costs no disk
  bool ok = false;

 private:
  Models() {
    tiny = dir_ / "tiny-Q8_0.gguf";
    big = dir_ / "Llama-3.1-8B-Q4_K_M.gguf";
    test::Process a =
        test::Spawn({SNUG_BINARY, "mkmodel", "tiny", tiny}, {}, dir_ / "a.out", dir_ / "a.err");
    test::Process b = test::Spawn({SNUG_BINARY, "mkmodel", "llama-3.1-8b-q4_k_m", big}, {},
                                  dir_ / "b.out", dir_ / "b.err");
    ok = test::Wait(a) == 0 && test::Wait(b) == 0;
    if (ok) tiny_sha = *Sha256OfFile(tiny);
  }
  test::TempDir dir_;
};

class FakeHub {
 public:
  // Serves `root`; extra flags for fault injection.
  FakeHub(const std::string& root, std::vector<std::string> flags, const test::TempDir& dir)
      : log_(dir / "hub.log") {
    std::string port_file = dir / "hub.port";
    fs::remove(port_file);
    std::vector<std::string> argv = {FAKE_HUB_BINARY, "--root", root, "--port-file",
                                     port_file,       "--log",  log_};
    argv.insert(argv.end(), flags.begin(), flags.end());
    process_ = test::Spawn(argv, {}, dir / "hub.out", dir / "hub.err");
    for (int i = 0; i < 500 && !fs::exists(port_file); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    port_ = std::atoi(ReadText(port_file).c_str());
  }
  ~FakeHub() {
    if (process_.pid > 0) {
      kill(process_.pid, SIGTERM);
      test::Wait(process_);
    }
  }
  std::string endpoint() const { return "http://127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  std::vector<std::string> LogLines() const {
    std::vector<std::string> lines;
    std::stringstream in(ReadText(log_));
    for (std::string line; std::getline(in, line);)
      lines.push_back(line);
    return lines;
  }
  // Body bytes the hub sent for a /cdn/ path (sum over responses).
  uint64_t BytesSent(const std::string& cdn_path) const {
    uint64_t total = 0;
    std::regex sent("^SENT " + cdn_path + " bytes=([0-9]+)");
    for (const auto& line : LogLines()) {
      std::smatch match;
      if (std::regex_search(line, match, sent)) total += std::stoull(match[1].str());
    }
    return total;
  }
  // GET requests of a /cdn/ path with their Range header value ("" = whole file).
  std::vector<std::string> CdnRanges(const std::string& cdn_path) const {
    std::vector<std::string> ranges;
    std::string prefix = "GET " + cdn_path + " range=";
    for (const auto& line : LogLines()) {
      if (line.rfind(prefix, 0) != 0) continue;
      std::string rest = line.substr(prefix.size());
      ranges.push_back(rest.substr(0, rest.find(' ')));
    }
    return ranges;
  }

 private:
  std::string log_;
  test::Process process_;
  int port_ = 0;
};

class PullTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Models::Get().ok) GTEST_SKIP() << "snug mkmodel failed; cannot generate test models";
    home_ = dir_ / "home";
    hub_root_ = dir_ / "hub";
    fs::create_directories(hub_root_);
  }

  // Puts `source` into the hub as <repo>/<filename> (hard link: no copy of big files).
  void Publish(const std::string& repo, const std::string& filename, const std::string& source) {
    fs::path target = fs::path(hub_root_) / repo / filename;
    fs::create_directories(target.parent_path());
    fs::create_hard_link(source, target);
  }

  test::RunResult Snug(const std::vector<std::string>& args,
                       std::map<std::string, std::string> env = {}) {
    test::Process process = Start(args, env);
    test::RunResult result;
    result.exit_code = test::Wait(process);
    result.out = ReadText(process.out_path);
    result.err = ReadText(process.err_path);
    return result;
  }

  test::Process Start(const std::vector<std::string>& args,
                      std::map<std::string, std::string> env = {}) {
    std::vector<std::string> argv = {SNUG_BINARY};
    argv.insert(argv.end(), args.begin(), args.end());
    env.emplace("SNUG_HOME", home_);
    if (hub_) env.emplace("SNUG_HF_ENDPOINT", hub_->endpoint());
    int n = runs_++;
    return test::Spawn(argv, env, dir_ / ("snug" + std::to_string(n) + ".out"),
                       dir_ / ("snug" + std::to_string(n) + ".err"));
  }

  nlohmann::json Ls() {
    auto result = Snug({"ls", "--json"});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return nlohmann::json::parse(result.out, nullptr, false);
  }

  std::vector<std::string> Files(const std::string& sub) {
    std::vector<std::string> names;
    std::error_code error;
    for (const auto& entry : fs::directory_iterator(home_ + "/" + sub, error)) {
      if (entry.is_regular_file()) names.push_back(entry.path().filename().string());
    }
    return names;
  }

  void StartHub(std::vector<std::string> flags = {}) {
    hub_ = std::make_unique<FakeHub>(hub_root_, std::move(flags), dir_);
    ASSERT_GT(hub_->port(), 0) << "fake_hub did not start";
  }

  test::TempDir dir_;
  std::string home_, hub_root_;
  std::unique_ptr<FakeHub> hub_;
  int runs_ = 0;
};

// Writes `source` as a split model of two parts (llama.cpp's gguf-split layout: split.no,
// split.count, split.tensors.count; the first part keeps all metadata), like big hub repos.
bool WriteSplit(const std::string& source, const std::string& first, const std::string& second) {
  ggml_context* data = nullptr;
  gguf_init_params params = {/*no_alloc=*/false, /*ctx=*/&data};
  gguf_context* src = gguf_init_from_file(source.c_str(), params);
  if (src == nullptr) return false;
  int64_t n_tensors = gguf_get_n_tensors(src);
  int64_t half = n_tensors / 2;
  bool ok = true;
  for (int part = 0; part < 2; ++part) {
    gguf_context* out = gguf_init_empty();
    if (part == 0) gguf_set_kv(out, src);
    gguf_set_val_u16(out, "split.no", static_cast<uint16_t>(part));
    gguf_set_val_u16(out, "split.count", 2);
    gguf_set_val_i32(out, "split.tensors.count", static_cast<int32_t>(n_tensors));
    for (int64_t i = part == 0 ? 0 : half; i < (part == 0 ? half : n_tensors); ++i) {
      gguf_add_tensor(out, ggml_get_tensor(data, gguf_get_tensor_name(src, i)));
    }
    ok = ok && gguf_write_to_file(out, (part == 0 ? first : second).c_str(), false);
    gguf_free(out);
  }
  gguf_free(src);
  ggml_free(data);
  return ok;
}

const char* kTinyCdn = "/cdn/snug-test/tiny-GGUF/tiny-Q8_0.gguf";

TEST_F(PullTest, PullsOwnerRepoQuantVerifiesAndRegisters) {
  Publish("snug-test/tiny-GGUF", "tiny-Q8_0.gguf", Models::Get().tiny);
  {
    std::ofstream readme(hub_root_ + "/snug-test/tiny-GGUF/README.md");
    readme << "# tiny\n";
  }
  StartHub();
  auto pull = Snug({"pull", "snug-test/tiny-GGUF:Q8_0"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_NE(pull.err.find("fits this machine"), std::string::npos) << pull.err;
  EXPECT_NE(pull.out.find("pulled snug-test/tiny-gguf:q8_0"), std::string::npos) << pull.out;

  auto ls = Ls();
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0]["name"], "snug-test/tiny-gguf:q8_0");
  EXPECT_EQ(ls[0]["sha256"], Models::Get().tiny_sha);
  EXPECT_EQ(ls[0]["architecture"], "llama");
  EXPECT_EQ(ls[0]["quant"], "Q8_0");
  EXPECT_EQ(ls[0]["n_ctx_train"], 4096);
  EXPECT_EQ(ls[0]["size"], fs::file_size(Models::Get().tiny));
  EXPECT_EQ(ls[0]["fit"]["n_ctx"], 4096);
  std::string blob = home_ + "/blobs/sha256-" + Models::Get().tiny_sha;
  EXPECT_EQ(*Sha256OfFile(blob), Models::Get().tiny_sha);
  EXPECT_TRUE(Files("blobs/partial").empty());

  // The name works wherever MODEL is accepted, with or without the quant.
  auto plan = Snug({"plan", "snug-test/tiny-gguf:q8_0", "--json"});
  EXPECT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_EQ(Snug({"plan", "snug-test/tiny-GGUF"}).exit_code, 0);

  // Pulling again downloads nothing.
  auto again = Snug({"pull", "hf.co/snug-test/tiny-GGUF:q8_0"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_NE(again.err.find("already in the store"), std::string::npos) << again.err;
  int whole_file_gets = 0;
  for (const auto& range : hub_->CdnRanges(kTinyCdn))
    whole_file_gets += range.empty();
  EXPECT_EQ(whole_file_gets, 1);
}

TEST_F(PullTest, DefaultQuantAndDirectUrl) {
  Publish("o/multi", "m-Q8_0.gguf", Models::Get().tiny);
  Publish("o/multi", "m-Q4_K_M.gguf", Models::Get().tiny);
  Publish("o/multi", "mmproj-m-F16.gguf", Models::Get().tiny);
  StartHub();
  auto pull = Snug({"pull", "o/multi"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_NE(pull.out.find("pulled o/multi:q4_k_m"), std::string::npos) << pull.out;
  EXPECT_FALSE(hub_->CdnRanges("/cdn/o/multi/m-Q4_K_M.gguf").empty());
  EXPECT_TRUE(hub_->CdnRanges("/cdn/o/multi/m-Q8_0.gguf").empty());

  auto url = Snug(
      {"pull", hub_->endpoint() + "/o/multi/resolve/main/m-Q8_0.gguf", "--name", "Direct/Tiny"});
  ASSERT_EQ(url.exit_code, 0) << url.err;
  auto ls = Ls();
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0]["name"], "direct/tiny");
  EXPECT_EQ(ls[0]["source"], hub_->endpoint() + "/o/multi/resolve/main/m-Q8_0.gguf");
  // Same bytes, one blob.
  EXPECT_EQ(Files("blobs").size(), 1u);
}

TEST_F(PullTest, DroppedConnectionResumesWithRangeAndVerifies) {
  Publish("snug-test/tiny-GGUF", "tiny-Q8_0.gguf", Models::Get().tiny);
  StartHub({"--drop-after", "5000000"});
  auto pull = Snug({"pull", "snug-test/tiny-GGUF:Q8_0"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  auto ranges = hub_->CdnRanges(kTinyCdn);
  bool resumed = false;
  for (const auto& range : ranges) {
    std::smatch match;
    if (std::regex_match(range, match, std::regex("bytes=([0-9]+)-")) &&
        std::stoull(match[1].str()) >= 5000000) {
      resumed = true;
    }
  }
  EXPECT_TRUE(resumed) << "no Range request resuming after the drop";
  auto ls = Ls();
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0]["sha256"], Models::Get().tiny_sha);
  EXPECT_EQ(*Sha256OfFile(home_ + "/blobs/sha256-" + Models::Get().tiny_sha),
            Models::Get().tiny_sha);
}

TEST_F(PullTest, WrongChecksumIsRejectedAndLeavesNothing) {
  Publish("snug-test/tiny-GGUF", "tiny-Q8_0.gguf", Models::Get().tiny);
  StartHub({"--bad-sha"});
  auto pull = Snug({"pull", "snug-test/tiny-GGUF:Q8_0"});
  EXPECT_EQ(pull.exit_code, 1);
  EXPECT_NE(pull.err.find("failed verification"), std::string::npos) << pull.err;
  EXPECT_TRUE(Ls().empty());
  EXPECT_TRUE(Files("blobs").empty());
  EXPECT_TRUE(Files("blobs/partial").empty());
}

// A server that announces fewer bytes than it sends: the download stops at the announced size
// and is discarded, instead of filling the disk with whatever keeps coming.
TEST_F(PullTest, DownloadStopsAtTheAnnouncedSize) {
  Publish("snug-test/tiny-GGUF", "tiny-Q8_0.gguf", Models::Get().tiny);
  StartHub({"--short-size", "100000"});
  auto pull = Snug({"pull", "snug-test/tiny-GGUF:Q8_0"});
  EXPECT_EQ(pull.exit_code, 1);
  EXPECT_NE(pull.err.find("more than the 100000 bytes it announced"), std::string::npos)
      << pull.err;
  EXPECT_TRUE(Ls().empty());
  EXPECT_TRUE(Files("blobs").empty());
  EXPECT_TRUE(Files("blobs/partial").empty());
}

TEST_F(PullTest, NotFoundAndUnauthorizedSayWhatToDo) {
  Publish("snug-test/tiny-GGUF", "tiny-Q8_0.gguf", Models::Get().tiny);
  StartHub({"--token", "s3cret"});
  auto denied = Snug({"pull", "snug-test/tiny-GGUF:Q8_0"});
  EXPECT_EQ(denied.exit_code, 1);
  EXPECT_NE(denied.err.find("HTTP 401"), std::string::npos) << denied.err;
  EXPECT_NE(denied.err.find("HF_TOKEN"), std::string::npos) << denied.err;

  auto wrong = Snug({"pull", "snug-test/tiny-GGUF:Q8_0"}, {{"HF_TOKEN", "nope"}});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_NE(wrong.err.find("cannot read this repository"), std::string::npos) << wrong.err;

  auto missing = Snug({"pull", "snug-test/no-such-repo"}, {{"HF_TOKEN", "s3cret"}});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("not found"), std::string::npos) << missing.err;

  auto no_quant = Snug({"pull", "snug-test/tiny-GGUF:Q5_K_M"}, {{"HF_TOKEN", "s3cret"}});
  EXPECT_EQ(no_quant.exit_code, 1);
  EXPECT_NE(no_quant.err.find("available quants: Q8_0"), std::string::npos) << no_quant.err;

  auto missing_file =
      Snug({"pull", hub_->endpoint() + "/snug-test/tiny-GGUF/resolve/main/nope.gguf"},
           {{"HF_TOKEN", "s3cret"}});
  EXPECT_EQ(missing_file.exit_code, 1);
  EXPECT_NE(missing_file.err.find("HTTP 404"), std::string::npos) << missing_file.err;

  auto ok = Snug({"pull", "snug-test/tiny-GGUF:Q8_0"}, {{"HF_TOKEN", "s3cret"}});
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  EXPECT_TRUE(Files("blobs/partial").empty());
}

TEST_F(PullTest, TooBigForTheMachineExits3BeforeDownloading) {
  Publish("meta/Llama-3.1-8B-GGUF", "Llama-3.1-8B-Q4_K_M.gguf", Models::Get().big);
  {
    // The hub knows the sha256 of its files; a sparse 4.6 GiB file is not worth hashing here.
    std::ofstream sidecar(hub_root_ + "/meta/Llama-3.1-8B-GGUF/Llama-3.1-8B-Q4_K_M.gguf.sha256");
    sidecar << std::string(64, 'e');
  }
  StartHub();
  auto pull = Snug({"pull", "meta/Llama-3.1-8B-GGUF:Q4_K_M"}, {{"SNUG_MEMORY_LIMIT", "2GiB"}});
  EXPECT_EQ(pull.exit_code, 3) << pull.err;
  EXPECT_NE(pull.err.find("--force"), std::string::npos) << pull.err;
  const char* cdn = "/cdn/meta/Llama-3.1-8B-GGUF/Llama-3.1-8B-Q4_K_M.gguf";
  uint64_t file_bytes = fs::file_size(Models::Get().big);
  uint64_t sent = hub_->BytesSent(cdn);
  EXPECT_GT(sent, 0u);           // the header was read...
  EXPECT_LT(sent, 70ull << 20);  // ...and nothing like the weights
  EXPECT_GT(file_bytes, 1ull << 30);
  for (const auto& range : hub_->CdnRanges(cdn))
    EXPECT_FALSE(range.empty()) << "whole-file GET";
  EXPECT_TRUE(Ls().empty());
  EXPECT_TRUE(Files("blobs/partial").empty());
}

TEST_F(PullTest, ConcurrentPullsOfOneModelDownloadOnce) {
  Publish("snug-test/tiny-GGUF", "tiny-Q8_0.gguf", Models::Get().tiny);
  StartHub({"--rate", "12000000"});  // ~2 s for the 25 MiB file: the pulls overlap
  test::Process a = Start({"pull", "snug-test/tiny-GGUF:Q8_0"});
  test::Process b = Start({"pull", "snug-test/tiny-GGUF:Q8_0", "--name", "second"});
  int code_a = test::Wait(a), code_b = test::Wait(b);
  EXPECT_EQ(code_a, 0) << ReadText(a.err_path);
  EXPECT_EQ(code_b, 0) << ReadText(b.err_path);
  int whole_file_gets = 0;
  for (const auto& range : hub_->CdnRanges(kTinyCdn))
    whole_file_gets += range.empty();
  EXPECT_EQ(whole_file_gets, 1);
  std::string notes = ReadText(a.err_path) + ReadText(b.err_path);
  EXPECT_NE(notes.find("already in the store"), std::string::npos) << notes;
  auto ls = Ls();
  ASSERT_EQ(ls.size(), 2u);
  EXPECT_EQ(ls[0]["sha256"], ls[1]["sha256"]);
  EXPECT_EQ(Files("blobs").size(), 1u);
}

TEST_F(PullTest, RmDeletesUnsharedBlobsOnly) {
  Publish("snug-test/tiny-GGUF", "tiny-Q8_0.gguf", Models::Get().tiny);
  StartHub();
  ASSERT_EQ(Snug({"pull", "snug-test/tiny-GGUF:Q8_0"}).exit_code, 0);
  auto import = Snug({"import", Models::Get().tiny, "--name", "copy"});
  ASSERT_EQ(import.exit_code, 0) << import.err;
  ASSERT_EQ(Files("blobs").size(), 1u);

  auto rm = Snug({"rm", "snug-test/tiny-gguf:q8_0"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_NE(rm.out.find("kept"), std::string::npos) << rm.out;
  EXPECT_EQ(Files("blobs").size(), 1u);
  EXPECT_EQ(Ls().size(), 1u);

  rm = Snug({"rm", "copy"});
  ASSERT_EQ(rm.exit_code, 0) << rm.err;
  EXPECT_NE(rm.out.find("freed"), std::string::npos) << rm.out;
  EXPECT_TRUE(Files("blobs").empty());
  EXPECT_TRUE(Ls().empty());
  EXPECT_TRUE(fs::exists(Models::Get().tiny));  // the imported original is untouched

  auto missing = Snug({"rm", "copy"});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_NE(missing.err.find("not in the store"), std::string::npos) << missing.err;
  EXPECT_EQ(Snug({"rm", "../etc"}).exit_code, 2);
}

TEST_F(PullTest, KillDuringPullLeavesNoHalfEntryAndTheNextPullResumes) {
  Publish("snug-test/tiny-GGUF", "tiny-Q8_0.gguf", Models::Get().tiny);
  StartHub({"--rate", "4000000"});
  test::Process pull = Start({"pull", "snug-test/tiny-GGUF:Q8_0"});
  std::string partial = home_ + "/blobs/partial/" + Models::Get().tiny_sha + ".partial";
  for (int i = 0; i < 1000; ++i) {
    std::error_code error;
    if (fs::file_size(partial, error) > 3'000'000 && !error) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ASSERT_GT(fs::file_size(partial), 3'000'000u) << ReadText(pull.err_path);
  kill(pull.pid, SIGKILL);
  EXPECT_EQ(test::Wait(pull), 128 + SIGKILL);
  uint64_t left = fs::file_size(partial);

  EXPECT_TRUE(Ls().empty());  // no half entry
  EXPECT_TRUE(Files("blobs").empty());

  // The hub restarts at full speed (a new port, as after a network change): the partial file is
  // keyed by the sha256, not the URL, so it still resumes.
  hub_.reset();
  StartHub();

  auto again = Snug({"pull", "snug-test/tiny-GGUF:Q8_0"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  bool resumed = false;
  for (const auto& range : hub_->CdnRanges(kTinyCdn)) {
    resumed |= range == "bytes=" + std::to_string(left) + "-";
  }
  EXPECT_TRUE(resumed) << "the second pull did not resume at byte " << left;
  auto ls = Ls();
  ASSERT_EQ(ls.size(), 1u);
  EXPECT_EQ(ls[0]["sha256"], Models::Get().tiny_sha);
  EXPECT_EQ(*Sha256OfFile(home_ + "/blobs/sha256-" + Models::Get().tiny_sha),
            Models::Get().tiny_sha);
  EXPECT_TRUE(Files("blobs/partial").empty());
}

TEST_F(PullTest, ImportShowAndNamesInMessages) {
  auto import = Snug({"pull", Models::Get().tiny, "--name", "Local/Tiny:q8"});
  ASSERT_EQ(import.exit_code, 0) << import.err;
  auto show = Snug({"show", "local/tiny:q8", "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  auto j = nlohmann::json::parse(show.out);
  EXPECT_EQ(j["architecture"], "llama");
  EXPECT_EQ(j["n_layer"], 4);
  EXPECT_EQ(j["fit"]["ok"], true);
  EXPECT_EQ(j["fit"]["n_ctx"], 4096);
  EXPECT_NE(j["chat_template"].get<std::string>().find("start_header_id"), std::string::npos);
  // What llama.cpp's chat layer detects in the template: a tool-call format, no thinking tags.
  ASSERT_TRUE(j.contains("chat_format")) << show.out;
  EXPECT_FALSE(j["chat_format"]["tool_format"].get<std::string>().empty());
  EXPECT_EQ(j["chat_format"]["supports_thinking"], false);
  EXPECT_EQ(j["chat_format"]["caps"]["supports_system_role"], true);
  auto text = Snug({"show", "local/tiny"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_NE(text.out.find("chat template"), std::string::npos);
  EXPECT_NE(text.out.find("chat format   tools: "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("fit here"), std::string::npos);

  auto ls = Snug({"ls"});
  ASSERT_EQ(ls.exit_code, 0);
  EXPECT_NE(ls.out.find("local/tiny:q8"), std::string::npos) << ls.out;
  EXPECT_NE(ls.out.find("4096"), std::string::npos) << ls.out;

  auto unknown = Snug({"show", "nothing"});
  EXPECT_EQ(unknown.exit_code, 1);
  EXPECT_NE(unknown.err.find("not in the store"), std::string::npos);
  auto bad_name = Snug({"pull", Models::Get().tiny, "--name", "../x"});
  EXPECT_EQ(bad_name.exit_code, 2) << bad_name.err;
}

// Import copies: the store never shares an inode with the user's file, so truncating that file
// afterwards leaves the stored model whole; a blob damaged behind the store's back is replaced by
// a healthy re-import; a FIFO or a directory is refused at once instead of blocking.
TEST_F(PullTest, ImportCopiesAndHealsADamagedBlob) {
  const std::string mine = dir_ / "mine.gguf";
  fs::copy_file(Models::Get().tiny, mine, fs::copy_options::overwrite_existing);
  auto import = Snug({"pull", mine, "--name", "local/mine"});
  ASSERT_EQ(import.exit_code, 0) << import.err;
  const std::string sha = Models::Get().tiny_sha;
  const std::string blob = home_ + "/blobs/sha256-" + sha;
  struct stat user_st {
  }, blob_st{};
  ASSERT_EQ(stat(mine.c_str(), &user_st), 0);
  ASSERT_EQ(stat(blob.c_str(), &blob_st), 0);
  EXPECT_NE(user_st.st_ino, blob_st.st_ino);
  fs::resize_file(mine, 1000);  // the user's own file changes
  EXPECT_EQ(*Sha256OfFile(blob), sha);

  // Damage the blob itself (as a hard link made by an older store would have let the user's
  // truncation do), then re-import a healthy copy: the blob is replaced, not trusted.
  fs::resize_file(blob, 4096);
  fs::copy_file(Models::Get().tiny, mine, fs::copy_options::overwrite_existing);
  auto again = Snug({"pull", mine, "--name", "local/mine"});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_EQ(*Sha256OfFile(blob), sha);
  EXPECT_TRUE(Files("blobs/partial").empty());

  const std::string fifo = dir_ / "model.fifo";
  ASSERT_EQ(mkfifo(fifo.c_str(), 0600), 0);
  const auto start = std::chrono::steady_clock::now();
  auto from_fifo = Snug({"pull", fifo});
  EXPECT_NE(from_fifo.exit_code, 0);
  EXPECT_NE(from_fifo.err.find("FIFO"), std::string::npos) << from_fifo.err;
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5));
  auto from_dir = Snug({"pull", dir_.path()});
  EXPECT_NE(from_dir.exit_code, 0);
  EXPECT_NE(from_dir.err.find("directory"), std::string::npos) << from_dir.err;
}

TEST_F(PullTest, SplitModelPullsEveryPartAndLoadsUnderItsNames) {
  std::string first = hub_root_ + "/o/split/tiny-Q8_0-00001-of-00002.gguf";
  std::string second = hub_root_ + "/o/split/tiny-Q8_0-00002-of-00002.gguf";
  fs::create_directories(hub_root_ + "/o/split");
  ASSERT_TRUE(WriteSplit(Models::Get().tiny, first, second));
  StartHub();
  auto pull = Snug({"pull", "o/split"});
  ASSERT_EQ(pull.exit_code, 0) << pull.err;
  EXPECT_NE(pull.err.find("in 2 parts"), std::string::npos) << pull.err;
  auto show = Snug({"show", "o/split:q8_0", "--json"});
  ASSERT_EQ(show.exit_code, 0) << show.err;
  auto j = nlohmann::json::parse(show.out);
  ASSERT_EQ(j["files"].size(), 2u);
  EXPECT_EQ(j["files"][1]["sha256"], *Sha256OfFile(second));
  EXPECT_EQ(j["size"], fs::file_size(first) + fs::file_size(second));
  EXPECT_EQ(j["fit"]["ok"], true);
  // The planner reads both parts through the store name (the parts keep their names).
  auto plan = Snug({"plan", "o/split:q8_0", "--json"});
  ASSERT_EQ(plan.exit_code, 0) << plan.err;
  EXPECT_EQ(nlohmann::json::parse(plan.out)["model"]["file_bytes"], j["size"]);

  ASSERT_EQ(Snug({"rm", "o/split"}).exit_code, 0);
  EXPECT_TRUE(Files("blobs").empty());
  EXPECT_FALSE(fs::exists(home_ + "/models/" + j["sha256"].get<std::string>()));
}

}  // namespace
}  // namespace snug::store
