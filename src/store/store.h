// The local model store: blobs named by sha256 under the data directory, a SQLite registry of
// names, verified resumable downloads from a Hugging Face style hub, and local imports.
//
// Layout under env::DataDir():
//   registry.db                   names -> blobs (see registry.h)
//   blobs/sha256-<hex>            verified model files, immutable
//   blobs/partial/<key>.partial   interrupted downloads, resumed by the next pull of that file
//   locks/<key>.lock              flock()ed while a pull downloads or commits that file
//   models/<sha>/<file names>     hard links giving split models their original part names
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "store/http.h"
#include "store/ref.h"
#include "store/registry.h"

namespace snug::store {

// One remote file of a pull, with what the server said about it before the download.
struct RemoteFile {
  std::string url;
  std::string filename;
  std::optional<std::string> sha256;  // the hub's LFS sha256 (X-Linked-ETag), if given
  std::optional<uint64_t> size;
};

// A REF resolved against the hub: what would be downloaded and under which name.
struct PullSource {
  PullRef ref;
  std::string name;               // the store name it gets
  std::string source;             // recorded in the registry ("hf.co/owner/repo:Q4_K_M", the URL)
  std::string quant;              // chosen quant ("" for URLs: taken from the file after download)
  std::vector<RemoteFile> files;  // split parts in order
  HttpOptions http;               // carries HF_TOKEN for hub URLs
  uint64_t TotalBytes() const;    // 0 when a size is unknown
};

struct PullEvents {
  // Download progress of file `index` (0-based) of `count`.
  std::function<void(size_t index, size_t count, const RemoteFile&, const DownloadProgress&)>
      progress;
  // Human notes: "waiting for another snug pull of ...", "already in the store".
  std::function<void(const std::string&)> note;
};

struct RemoveResult {
  std::vector<std::string> deleted_blobs;  // sha256 values whose files were deleted
  std::vector<std::string> kept_blobs;     // still referenced by another name or in use by a pull
};

class Store {
 public:
  // Opens the store rooted at `root` (creating directories and the registry).
  static Result<std::unique_ptr<Store>> Open(const std::string& root);
  // The store at env::DataDir().
  static Result<std::unique_ptr<Store>> OpenDefault();

  const std::string& root() const { return root_; }
  Registry& registry() { return *registry_; }

  // Resolves a hub/URL REF without downloading: listing API for OWNER/REPO[:QUANT], then a HEAD
  // per file for its size and sha256. `name` overrides the default store name (empty = default).
  Result<PullSource> ResolvePull(const PullRef& ref, const std::string& name);

  // IoError when the data directory's file system lacks room for what is still to download.
  Status CheckDiskSpace(const PullSource& source);

  // Downloads every file (resuming partial files, waiting on a concurrent pull of the same file),
  // verifies each sha256 (against the hub's when given), moves it into blobs/ and registers the
  // name. On a checksum mismatch the partial file is deleted and nothing is registered.
  Result<ModelRecord> Pull(const PullSource& source, const PullEvents& events);

  // Adds a local GGUF (a split model: all its parts) under `name` (empty = from the file name):
  // hashed, then hard-linked into blobs/ (copied when on another file system).
  Result<ModelRecord> Import(const std::string& path, const std::string& name);

  Result<std::vector<ModelRecord>> List();
  // Looks a name up; "owner/repo" without ":quant" works when exactly one quant is stored.
  Result<ModelRecord> Get(const std::string& name);
  // The path to open for this model (the first part of a split model).
  Result<std::string> ModelPath(const ModelRecord& record);
  // Removes the name, then each of its blobs that no other name references and no pull holds.
  Result<RemoveResult> Remove(const std::string& name);
  // Records use (for ls sorting / future eviction).
  Status Touch(const std::string& name);

  std::string BlobPath(const std::string& sha256) const;

 private:
  Store(std::string root, std::unique_ptr<Registry> registry)
      : root_(std::move(root)), registry_(std::move(registry)) {}
  Result<ModelRecord> Register(const std::string& name, const std::string& source,
                               const std::vector<ModelFile>& files, const std::string& quant_hint);
  std::string root_;
  std::unique_ptr<Registry> registry_;
};

// For MODEL arguments everywhere (cli/model_source): the file path of a store name in the default
// store. NotFound when the name is not in the store (or the store does not exist yet).
Result<std::string> ResolveName(const std::string& name);

// "Q4_K_M" for llama.cpp's general.file_type values; "" when unknown.
std::string FileTypeName(int64_t file_type);

}  // namespace snug::store
