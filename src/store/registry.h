// The model registry: one SQLite database mapping store names to blobs and the facts `snug ls`
// shows. Safe for several snug processes at once (WAL, busy timeout, short transactions).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

struct sqlite3;

namespace snug::store {

// One file of a model: a single GGUF, or one part of a split model.
struct ModelFile {
  int index = 0;         // 0-based part number
  std::string sha256;    // blob name: blobs/sha256-<hex>
  std::string filename;  // original file name (split parts must keep theirs for llama.cpp)
  uint64_t size = 0;
};

struct ModelRecord {
  std::string name;          // canonical store name ("owner/repo:q4_k_m")
  std::string source;        // where it came from: hub ref, URL, or "file:<path>"
  std::string sha256;        // of the first (or only) file
  uint64_t size = 0;         // all files together
  std::string architecture;  // general.architecture
  std::string quant;         // "Q4_K_M", from the file name or general.file_type
  int64_t n_ctx_train = 0;
  int64_t added = 0;      // unix seconds
  int64_t last_used = 0;  // unix seconds; 0 = never
  std::vector<ModelFile> files;
};

class Registry {
 public:
  // Schema history: 1 = models table; 2 = model_files (split models), backfilled from 1.
  static constexpr int kSchemaVersion = 2;

  // Opens (creating if needed) the database at `path` and migrates it to kSchemaVersion.
  // Corrupt/IoError when the file is not a usable database or was written by a newer snug.
  static Result<std::unique_ptr<Registry>> Open(const std::string& path);
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Inserts or replaces the record named record.name (with its files) in one transaction.
  Status Put(const ModelRecord& record);
  // NotFound when no model has that (canonical) name.
  Result<ModelRecord> Get(const std::string& name);
  // All models, ordered by name.
  Result<std::vector<ModelRecord>> List();
  // Removes the name; NotFound when absent.
  Status Remove(const std::string& name);
  // Sets last_used.
  Status Touch(const std::string& name, int64_t when);
  // How many model files (over all names) refer to the blob.
  Result<int> CountReferences(const std::string& sha256);
  // The schema version stored in the file (PRAGMA user_version).
  Result<int> StoredSchemaVersion();

 private:
  explicit Registry(sqlite3* db) : db_(db) {}
  Status Exec(const std::string& sql);
  Status Migrate();
  Status LoadFiles(ModelRecord* record);
  sqlite3* db_;
};

}  // namespace snug::store
