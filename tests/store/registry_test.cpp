#include "store/registry.h"

#include <gtest/gtest.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include "store/file_lock.h"
#include "store/sha256.h"
#include "test_util.h"

namespace snug::store {
namespace {

ModelRecord Record(const std::string& name, const std::string& sha, uint64_t size = 100) {
  ModelRecord record;
  record.name = name;
  record.source = "test";
  record.sha256 = sha;
  record.size = size;
  record.architecture = "llama";
  record.quant = "Q8_0";
  record.n_ctx_train = 4096;
  record.added = 1700000000;
  record.files.push_back({0, sha, "m.gguf", size});
  return record;
}

TEST(Registry, PutGetListRemove) {
  test::TempDir dir;
  auto registry = Registry::Open(dir / "r.db");
  ASSERT_TRUE(registry.ok()) << registry.status().ToString();
  Registry& r = **registry;
  EXPECT_EQ(*r.StoredSchemaVersion(), Registry::kSchemaVersion);
  ASSERT_TRUE(r.Put(Record("b", std::string(64, 'b'))).ok());
  ASSERT_TRUE(r.Put(Record("a", std::string(64, 'a'))).ok());
  ModelRecord split = Record("s", std::string(64, 'c'), 300);
  split.files.push_back({1, std::string(64, 'd'), "m-00002-of-00002.gguf", 200});
  ASSERT_TRUE(r.Put(split).ok());

  auto got = r.Get("s");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(got->files.size(), 2u);
  EXPECT_EQ(got->files[1].filename, "m-00002-of-00002.gguf");
  EXPECT_EQ(got->n_ctx_train, 4096);

  auto all = r.List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].name, "a");

  // Replacing a name replaces its files.
  ASSERT_TRUE(r.Put(Record("s", std::string(64, 'a'))).ok());
  EXPECT_EQ(r.Get("s")->files.size(), 1u);
  EXPECT_EQ(*r.CountReferences(std::string(64, 'a')), 2);
  EXPECT_EQ(*r.CountReferences(std::string(64, 'd')), 0);

  ASSERT_TRUE(r.Touch("a", 1800000000).ok());
  EXPECT_EQ(r.Get("a")->last_used, 1800000000);

  ASSERT_TRUE(r.Remove("a").ok());
  EXPECT_EQ(r.Remove("a").code(), Code::kNotFound);
  EXPECT_EQ(r.Get("a").status().code(), Code::kNotFound);
  EXPECT_EQ(*r.CountReferences(std::string(64, 'a')), 1);
}

// A registry written by schema version 1 (models table only) is migrated: every model gets its
// file row and nothing is lost.
TEST(Registry, MigratesVersion1Database) {
  test::TempDir dir;
  std::string path = dir / "old.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    const char* v1 =
        "CREATE TABLE models (name TEXT PRIMARY KEY NOT NULL, source TEXT NOT NULL, sha256 TEXT "
        "NOT NULL, size INTEGER NOT NULL, architecture TEXT NOT NULL DEFAULT '', quant TEXT NOT "
        "NULL DEFAULT '', n_ctx_train INTEGER NOT NULL DEFAULT 0, added INTEGER NOT NULL, "
        "last_used INTEGER NOT NULL DEFAULT 0);"
        "INSERT INTO models VALUES ('old/model:q4_k_m', 'hf.co/old/model:Q4_K_M', "
        "'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa', 1234, 'llama', "
        "'Q4_K_M', 8192, 1600000000, 0);"
        "PRAGMA user_version = 1;";
    ASSERT_EQ(sqlite3_exec(db, v1, nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto registry = Registry::Open(path);
  ASSERT_TRUE(registry.ok()) << registry.status().ToString();
  EXPECT_EQ(*(*registry)->StoredSchemaVersion(), 2);
  auto record = (*registry)->Get("old/model:q4_k_m");
  ASSERT_TRUE(record.ok());
  EXPECT_EQ(record->n_ctx_train, 8192);
  ASSERT_EQ(record->files.size(), 1u);
  EXPECT_EQ(record->files[0].sha256, std::string(64, 'a'));
  EXPECT_EQ(record->files[0].size, 1234u);
  EXPECT_EQ(*(*registry)->CountReferences(std::string(64, 'a')), 1);
  // Opening again is a no-op.
  registry->reset();
  registry = Registry::Open(path);
  ASSERT_TRUE(registry.ok());
  EXPECT_EQ((*registry)->List()->size(), 1u);
}

TEST(Registry, RefusesNewerSchema) {
  test::TempDir dir;
  std::string path = dir / "new.db";
  {
    sqlite3* db = nullptr;
    ASSERT_EQ(sqlite3_open(path.c_str(), &db), SQLITE_OK);
    ASSERT_EQ(sqlite3_exec(db, "PRAGMA user_version = 99;", nullptr, nullptr, nullptr), SQLITE_OK);
    sqlite3_close(db);
  }
  auto registry = Registry::Open(path);
  ASSERT_FALSE(registry.ok());
  EXPECT_NE(registry.status().message().find("upgrade snug"), std::string::npos);
}

TEST(Registry, RejectsAFileThatIsNotADatabase) {
  test::TempDir dir;
  std::string path = dir / "junk.db";
  {
    std::ofstream out(path);
    out << std::string(4096, 'x');
  }
  EXPECT_FALSE(Registry::Open(path).ok());
}

// Several processes writing at once (a pull beside an rm beside a serve): every write lands, none
// fails with "database is locked".
TEST(Registry, ConcurrentWritersFromSeveralProcesses) {
  test::TempDir dir;
  std::string path = dir / "r.db";
  ASSERT_TRUE(Registry::Open(path).ok());
  constexpr int kProcesses = 4;
  constexpr int kWrites = 50;
  std::vector<pid_t> children;
  for (int p = 0; p < kProcesses; ++p) {
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      auto registry = Registry::Open(path);
      if (!registry.ok()) _exit(10);
      for (int i = 0; i < kWrites; ++i) {
        std::string name = "p" + std::to_string(p) + "/m" + std::to_string(i);
        if (!(*registry)->Put(Record(name, Sha256OfString(name))).ok()) _exit(11);
        if (i % 5 == 0 && !(*registry)->Remove(name).ok()) _exit(12);
        if (!(*registry)->List().ok()) _exit(13);
      }
      _exit(0);
    }
    children.push_back(pid);
  }
  for (pid_t pid : children) {
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  auto registry = Registry::Open(path);
  ASSERT_TRUE(registry.ok());
  EXPECT_EQ((*registry)->List()->size(), static_cast<size_t>(kProcesses * (kWrites - kWrites / 5)));
}

// Processes that open a registry no one has created yet, all at once (two first pulls): each
// open succeeds. Creating the file and switching it to WAL take locks SQLite's busy timeout does
// not wait for.
TEST(Registry, ConcurrentFirstOpensAllSucceed) {
  test::TempDir dir;
  constexpr int kProcesses = 6;
  for (int round = 0; round < 10; ++round) {
    const std::string path = dir / ("fresh-" + std::to_string(round) + ".db");
    int go[2];
    ASSERT_EQ(pipe(go), 0);
    std::vector<pid_t> children;
    for (int p = 0; p < kProcesses; ++p) {
      pid_t pid = fork();
      ASSERT_GE(pid, 0);
      if (pid == 0) {
        close(go[1]);
        char byte;
        if (read(go[0], &byte, 1) != 1) _exit(9);  // start together
        auto registry = Registry::Open(path);
        if (!registry.ok()) _exit(10);
        std::string name = "p" + std::to_string(p);
        if (!(*registry)->Put(Record(name, Sha256OfString(name))).ok()) _exit(11);
        _exit(0);
      }
      children.push_back(pid);
    }
    close(go[0]);
    const std::string start(kProcesses, 'x');
    ASSERT_EQ(write(go[1], start.data(), start.size()), static_cast<ssize_t>(start.size()));
    close(go[1]);
    for (pid_t pid : children) {
      int status = 0;
      waitpid(pid, &status, 0);
      ASSERT_TRUE(WIFEXITED(status));
      EXPECT_EQ(WEXITSTATUS(status), 0) << "round " << round;
    }
    auto registry = Registry::Open(path);
    ASSERT_TRUE(registry.ok());
    EXPECT_EQ((*registry)->List()->size(), static_cast<size_t>(kProcesses));
  }
}

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(Sha256OfString(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256OfString("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  test::TempDir dir;
  {
    std::ofstream out(dir / "f");
    out << "abc";
  }
  EXPECT_EQ(*Sha256OfFile(dir / "f"), Sha256OfString("abc"));
  Sha256 resumed;
  ASSERT_TRUE(HashFilePrefix(dir / "f", 2, &resumed).ok());
  resumed.Update("c", 1);
  EXPECT_EQ(resumed.HexDigest(), Sha256OfString("abc"));
  EXPECT_TRUE(IsSha256Hex(Sha256OfString("x")));
  EXPECT_FALSE(IsSha256Hex("ABC"));
}

TEST(FileLock, ExcludesOtherHoldersUntilReleased) {
  test::TempDir dir;
  auto first = FileLock::TryAcquire(dir / "x.lock");
  ASSERT_TRUE(first.ok());
  auto second = FileLock::TryAcquire(dir / "x.lock");
  ASSERT_FALSE(second.ok());
  EXPECT_EQ(second.status().code(), Code::kUnavailable);
  first->Release();
  EXPECT_TRUE(FileLock::TryAcquire(dir / "x.lock").ok());
}

}  // namespace
}  // namespace snug::store
