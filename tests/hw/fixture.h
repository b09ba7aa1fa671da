// Fixture trees for hw tests: tests/hw/fixtures/<name>/{proc,sys}, used read-only in place or
// copied to a temporary directory when a test needs to break a file.
#pragma once

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

namespace snug::hw::testing {

inline std::string FixtureRoot(const std::string& name) {
  return std::string(SNUG_TEST_SOURCE_DIR) + "/hw/fixtures/" + name;
}

// A private copy of a fixture tree, removed when the object goes away.
class TempTree {
 public:
  explicit TempTree(const std::string& fixture) {
    static int counter = 0;
    root_ = std::filesystem::temp_directory_path() /
            ("snug-hw-test-" + std::to_string(::getpid()) + "-" + std::to_string(counter++));
    std::filesystem::remove_all(root_);
    std::filesystem::create_directories(root_);
    std::filesystem::copy(FixtureRoot(fixture), root_, std::filesystem::copy_options::recursive);
  }
  ~TempTree() {
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }
  TempTree(const TempTree&) = delete;
  TempTree& operator=(const TempTree&) = delete;

  std::string root() const { return root_.string(); }
  std::string Path(const std::string& relative) const { return (root_ / relative).string(); }
  void Write(const std::string& relative, const std::string& text) const {
    std::filesystem::create_directories(std::filesystem::path(Path(relative)).parent_path());
    std::ofstream(Path(relative), std::ios::trunc) << text;
  }
  void Remove(const std::string& relative) const { std::filesystem::remove(Path(relative)); }

 private:
  std::filesystem::path root_;
};

}  // namespace snug::hw::testing
