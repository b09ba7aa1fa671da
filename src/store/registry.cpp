#include "store/registry.h"

#include <fmt/format.h>
#include <sqlite3.h>

#include <chrono>
#include <functional>
#include <thread>

namespace snug::store {
namespace {

// Prepared statement with RAII finalize; binds by 1-based position.
class Statement {
 public:
  Statement(sqlite3* db, const char* sql) : db_(db) {
    rc_ = sqlite3_prepare_v2(db, sql, -1, &stmt_, nullptr);
  }
  ~Statement() { sqlite3_finalize(stmt_); }
  Status status() const {
    if (rc_ == SQLITE_OK) return Status::Ok();
    return Status::IoError(fmt::format("registry query failed: {}", sqlite3_errmsg(db_)));
  }
  Statement& Bind(int i, const std::string& v) {
    sqlite3_bind_text(stmt_, i, v.c_str(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  // SQLITE_ROW, SQLITE_DONE or an error code.
  int Step() { return sqlite3_step(stmt_); }
  std::string Text(int col) {
    auto* text = sqlite3_column_text(stmt_, col);
    return text ? reinterpret_cast<const char*>(text) : "";
  }
  int64_t Int(int col) { return sqlite3_column_int64(stmt_, col); }
  Status Error() const {
    return Status::IoError(fmt::format("registry update failed: {}", sqlite3_errmsg(db_)));
  }

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
  int rc_;
};

// Runs `body` inside BEGIN IMMEDIATE ... COMMIT (rolled back on error). IMMEDIATE takes the write
// lock up front so two processes never deadlock upgrading read locks.
Status InTransaction(sqlite3* db, const std::function<Status()>& body) {
  char* error = nullptr;
  if (sqlite3_exec(db, "BEGIN IMMEDIATE", nullptr, nullptr, &error) != SQLITE_OK) {
    Status status = Status::IoError(
        fmt::format("cannot lock the model registry: {}", error ? error : "unknown error"));
    sqlite3_free(error);
    return status;
  }
  Status status = body();
  if (!status.ok()) {
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return status;
  }
  if (sqlite3_exec(db, "COMMIT", nullptr, nullptr, &error) != SQLITE_OK) {
    Status commit = Status::IoError(
        fmt::format("cannot commit to the model registry: {}", error ? error : "unknown error"));
    sqlite3_free(error);
    sqlite3_exec(db, "ROLLBACK", nullptr, nullptr, nullptr);
    return commit;
  }
  return Status::Ok();
}

const char* kSchemaV1 =
    "CREATE TABLE IF NOT EXISTS models ("
    "  name TEXT PRIMARY KEY NOT NULL,"
    "  source TEXT NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  architecture TEXT NOT NULL DEFAULT '',"
    "  quant TEXT NOT NULL DEFAULT '',"
    "  n_ctx_train INTEGER NOT NULL DEFAULT 0,"
    "  added INTEGER NOT NULL,"
    "  last_used INTEGER NOT NULL DEFAULT 0);";

// Version 2: split models have several files; every model gets at least one row here. Existing
// single-file models are backfilled with a file name derived from their name.
const char* kSchemaV2 =
    "CREATE TABLE IF NOT EXISTS model_files ("
    "  name TEXT NOT NULL,"
    "  idx INTEGER NOT NULL,"
    "  sha256 TEXT NOT NULL,"
    "  filename TEXT NOT NULL,"
    "  size INTEGER NOT NULL,"
    "  PRIMARY KEY (name, idx));"
    "CREATE INDEX IF NOT EXISTS model_files_sha256 ON model_files(sha256);"
    "INSERT OR IGNORE INTO model_files (name, idx, sha256, filename, size)"
    "  SELECT name, 0, sha256, 'model.gguf', size FROM models;";

// How long a snug process waits for another one holding the registry (a pull beside a serve).
constexpr std::chrono::milliseconds kBusyTimeout{15000};

}  // namespace

Result<std::unique_ptr<Registry>> Registry::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc =
      sqlite3_open_v2(path.c_str(), &db,
                      SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_FULLMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    std::string message = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);
    sqlite3_close(db);
    return Status::IoError(fmt::format("cannot open the model registry {}: {}", path, message));
  }
  std::unique_ptr<Registry> registry(new Registry(db));
  sqlite3_busy_timeout(db, static_cast<int>(kBusyTimeout.count()));
  // Switching a new database to WAL needs an exclusive lock, and SQLite returns SQLITE_BUSY for
  // it without calling the busy handler (two first pulls at once): retry until the same timeout.
  const auto deadline = std::chrono::steady_clock::now() + kBusyTimeout;
  while (true) {
    const int wal = sqlite3_exec(db, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr);
    if (wal == SQLITE_OK) break;
    if ((wal != SQLITE_BUSY && wal != SQLITE_LOCKED) ||
        std::chrono::steady_clock::now() >= deadline) {
      return Status::IoError(
          fmt::format("opening {}: model registry error: {}", path, sqlite3_errmsg(db)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Status status = registry->Exec("PRAGMA synchronous=NORMAL;");
  if (!status.ok()) return status.WithContext(fmt::format("opening {}", path));
  status = registry->Migrate();
  if (!status.ok()) return status.WithContext(fmt::format("opening {}", path));
  return registry;
}

Registry::~Registry() {
  sqlite3_close(db_);
}

Status Registry::Exec(const std::string& sql) {
  char* error = nullptr;
  if (sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error) != SQLITE_OK) {
    Status status = Status::IoError(
        fmt::format("model registry error: {}", error ? error : sqlite3_errmsg(db_)));
    sqlite3_free(error);
    return status;
  }
  return Status::Ok();
}

Result<int> Registry::StoredSchemaVersion() {
  Statement stmt(db_, "PRAGMA user_version");
  SNUG_RETURN_IF_ERROR(stmt.status());
  if (stmt.Step() != SQLITE_ROW) return stmt.Error();
  return static_cast<int>(stmt.Int(0));
}

Status Registry::Migrate() {
  return InTransaction(db_, [&]() -> Status {
    // Read inside the write transaction: a concurrent snug may have migrated meanwhile.
    SNUG_ASSIGN_OR_RETURN(int version, StoredSchemaVersion());
    if (version > kSchemaVersion) {
      return Status::Corrupt(
          fmt::format("the model registry has schema version {} but this snug knows only up to {}; "
                      "upgrade snug",
                      version, kSchemaVersion));
    }
    if (version < 1) SNUG_RETURN_IF_ERROR(Exec(kSchemaV1));
    if (version < 2) SNUG_RETURN_IF_ERROR(Exec(kSchemaV2));
    if (version < kSchemaVersion) {
      SNUG_RETURN_IF_ERROR(Exec(fmt::format("PRAGMA user_version = {}", kSchemaVersion)));
    }
    return Status::Ok();
  });
}

Status Registry::Put(const ModelRecord& record) {
  return InTransaction(db_, [&]() -> Status {
    {
      Statement del(db_, "DELETE FROM model_files WHERE name = ?");
      SNUG_RETURN_IF_ERROR(del.status());
      del.Bind(1, record.name);
      if (del.Step() != SQLITE_DONE) return del.Error();
    }
    Statement stmt(db_,
                   "INSERT OR REPLACE INTO models (name, source, sha256, size, architecture, "
                   "quant, n_ctx_train, added, last_used) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)");
    SNUG_RETURN_IF_ERROR(stmt.status());
    stmt.Bind(1, record.name)
        .Bind(2, record.source)
        .Bind(3, record.sha256)
        .Bind(4, static_cast<int64_t>(record.size))
        .Bind(5, record.architecture)
        .Bind(6, record.quant)
        .Bind(7, record.n_ctx_train)
        .Bind(8, record.added)
        .Bind(9, record.last_used);
    if (stmt.Step() != SQLITE_DONE) return stmt.Error();
    std::vector<ModelFile> files = record.files;
    if (files.empty()) files.push_back({0, record.sha256, "model.gguf", record.size});
    for (const ModelFile& file : files) {
      Statement insert(db_,
                       "INSERT INTO model_files (name, idx, sha256, filename, size) "
                       "VALUES (?, ?, ?, ?, ?)");
      SNUG_RETURN_IF_ERROR(insert.status());
      insert.Bind(1, record.name)
          .Bind(2, file.index)
          .Bind(3, file.sha256)
          .Bind(4, file.filename)
          .Bind(5, static_cast<int64_t>(file.size));
      if (insert.Step() != SQLITE_DONE) return insert.Error();
    }
    return Status::Ok();
  });
}

Status Registry::LoadFiles(ModelRecord* record) {
  Statement stmt(db_,
                 "SELECT idx, sha256, filename, size FROM model_files WHERE name = ? ORDER BY idx");
  SNUG_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, record->name);
  record->files.clear();
  int rc;
  while ((rc = stmt.Step()) == SQLITE_ROW) {
    record->files.push_back({static_cast<int>(stmt.Int(0)), stmt.Text(1), stmt.Text(2),
                             static_cast<uint64_t>(stmt.Int(3))});
  }
  if (rc != SQLITE_DONE) return stmt.Error();
  return Status::Ok();
}

namespace {
const char* kSelectModels =
    "SELECT name, source, sha256, size, architecture, quant, n_ctx_train, added, last_used "
    "FROM models";

ModelRecord RowToRecord(Statement& stmt) {
  ModelRecord record;
  record.name = stmt.Text(0);
  record.source = stmt.Text(1);
  record.sha256 = stmt.Text(2);
  record.size = static_cast<uint64_t>(stmt.Int(3));
  record.architecture = stmt.Text(4);
  record.quant = stmt.Text(5);
  record.n_ctx_train = stmt.Int(6);
  record.added = stmt.Int(7);
  record.last_used = stmt.Int(8);
  return record;
}
}  // namespace

Result<ModelRecord> Registry::Get(const std::string& name) {
  ModelRecord record;
  {
    Statement stmt(db_, (std::string(kSelectModels) + " WHERE name = ?").c_str());
    SNUG_RETURN_IF_ERROR(stmt.status());
    stmt.Bind(1, name);
    int rc = stmt.Step();
    if (rc == SQLITE_DONE) {
      return Status::NotFound(fmt::format("model '{}' is not in the store (see snug ls)", name));
    }
    if (rc != SQLITE_ROW) return stmt.Error();
    record = RowToRecord(stmt);
  }
  SNUG_RETURN_IF_ERROR(LoadFiles(&record));
  return record;
}

Result<std::vector<ModelRecord>> Registry::List() {
  std::vector<ModelRecord> records;
  {
    Statement stmt(db_, (std::string(kSelectModels) + " ORDER BY name").c_str());
    SNUG_RETURN_IF_ERROR(stmt.status());
    int rc;
    while ((rc = stmt.Step()) == SQLITE_ROW)
      records.push_back(RowToRecord(stmt));
    if (rc != SQLITE_DONE) return stmt.Error();
  }
  for (ModelRecord& record : records)
    SNUG_RETURN_IF_ERROR(LoadFiles(&record));
  return records;
}

Status Registry::Remove(const std::string& name) {
  return InTransaction(db_, [&]() -> Status {
    Statement stmt(db_, "DELETE FROM models WHERE name = ?");
    SNUG_RETURN_IF_ERROR(stmt.status());
    stmt.Bind(1, name);
    if (stmt.Step() != SQLITE_DONE) return stmt.Error();
    if (sqlite3_changes(db_) == 0) {
      return Status::NotFound(fmt::format("model '{}' is not in the store (see snug ls)", name));
    }
    Statement files(db_, "DELETE FROM model_files WHERE name = ?");
    SNUG_RETURN_IF_ERROR(files.status());
    files.Bind(1, name);
    if (files.Step() != SQLITE_DONE) return files.Error();
    return Status::Ok();
  });
}

Status Registry::Touch(const std::string& name, int64_t when) {
  Statement stmt(db_, "UPDATE models SET last_used = ? WHERE name = ?");
  SNUG_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, when).Bind(2, name);
  if (stmt.Step() != SQLITE_DONE) return stmt.Error();
  return Status::Ok();
}

Result<int> Registry::CountReferences(const std::string& sha256) {
  Statement stmt(db_, "SELECT COUNT(*) FROM model_files WHERE sha256 = ?");
  SNUG_RETURN_IF_ERROR(stmt.status());
  stmt.Bind(1, sha256);
  if (stmt.Step() != SQLITE_ROW) return stmt.Error();
  return static_cast<int>(stmt.Int(0));
}

}  // namespace snug::store
