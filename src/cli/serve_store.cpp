#include "cli/serve_store.h"

#include <fmt/format.h>

#include <filesystem>

#include "cli/store_fit.h"
#include "config/env.h"
#include "gguf/remote.h"
#include "store/store.h"

namespace snug::cli {
namespace {

Result<std::unique_ptr<store::Store>> OpenStore(const std::string& models_dir) {
  return models_dir.empty() ? store::Store::OpenDefault() : store::Store::Open(models_dir);
}

}  // namespace

server::StoreHooks MakeStoreHooks(const std::string& models_dir, std::shared_ptr<LiveBudget> live) {
  server::StoreHooks hooks;
  hooks.list = [models_dir]() -> Result<std::vector<server::StoredModel>> {
    std::vector<server::StoredModel> out;
    const std::string root = models_dir.empty() ? env::DataDir() : models_dir;
    // Listing never creates a store that is not there.
    if (!std::filesystem::exists(root + "/registry.db")) return out;
    SNUG_ASSIGN_OR_RETURN(auto store, OpenStore(models_dir));
    SNUG_ASSIGN_OR_RETURN(auto records, store->List());
    for (const auto& r : records) {
      out.push_back({r.name, r.sha256, r.size, r.architecture, r.quant, r.added});
    }
    return out;
  };
  hooks.remove = [models_dir](const std::string& name) -> Status {
    SNUG_ASSIGN_OR_RETURN(auto store, OpenStore(models_dir));
    return store->Remove(name).status();
  };
  hooks.prepare_pull = [models_dir, live](const std::string& text) -> Result<server::PreparedPull> {
    SNUG_ASSIGN_OR_RETURN(store::PullRef ref, store::ParseRef(text));
    if (ref.kind == store::PullRef::Kind::kLocalFile) {
      return Status::InvalidArgument(fmt::format(
          "'{}' is a local path; the server pulls hub references (owner/repo[:quant]) and "
          "https:// URLs (add local files with 'snug import')",
          text));
    }
    std::shared_ptr<store::Store> store;
    {
      SNUG_ASSIGN_OR_RETURN(auto opened, OpenStore(models_dir));
      store = std::move(opened);
    }
    SNUG_ASSIGN_OR_RETURN(store::PullSource source, store->ResolvePull(ref, ""));
    gguf::RemoteOptions remote;
    remote.bearer_token = source.http.bearer_token;
    auto header = gguf::ReadRemote(source.files.front().url, remote);
    if (!header.ok()) {
      return header.status().WithContext("cannot read the model's header to check the fit");
    }
    // The same question `snug pull` asks, against the budget the server loads models with.
    auto fit = FitHere(*header, live->Current());
    if (fit.ok() && !fit->fits()) {
      return Status::DoesNotFit(fmt::format("{} does not fit this server: {}; not downloading it",
                                            source.name, fit->Describe()));
    }
    SNUG_RETURN_IF_ERROR(store->CheckDiskSpace(source));
    server::PreparedPull prepared;
    prepared.name = source.name;
    prepared.run = [store, source](
                       const std::function<void(const server::PullProgress&)>& progress) -> Status {
      store::PullEvents events;
      events.progress = [&](size_t, size_t, const store::RemoteFile& file,
                            const store::DownloadProgress& p) {
        server::PullProgress line;
        const std::string sha = file.sha256.value_or("");
        line.status = fmt::format("pulling {}", sha.empty() ? file.filename : sha.substr(0, 12));
        line.digest = sha.empty() ? file.filename : "sha256:" + sha;
        line.total = p.total ? p.total : file.size.value_or(0);
        line.completed = p.done;
        progress(line);
      };
      events.note = [&](const std::string& note) { progress({note, "", 0, 0}); };
      // The store verifies each file's sha256 as it downloads and registers the model last.
      return store->Pull(source, events).status();
    };
    return prepared;
  };
  return hooks;
}

}  // namespace snug::cli
