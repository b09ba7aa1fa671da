// Helpers for the `snug run` integration tests: start a real process, capture its output.
#pragma once

#include <string>
#include <vector>

namespace snug::testing {

struct ProcessResult {
  int exit_code = -1;  // -1 when killed by a signal (see signal)
  int signal = 0;
  std::string out;
  std::string err;
  double seconds = 0;
};

// Runs argv[0] with argv, extra environment entries ("NAME=value"), stdin from `stdin_path`
// (default /dev/null). Blocks until it exits.
ProcessResult RunProcess(const std::vector<std::string>& argv,
                         const std::vector<std::string>& env = {},
                         const std::string& stdin_path = "/dev/null");

// A fresh temporary directory, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// Writes a synthetic model with `snug mkmodel PRESET PATH --weights WEIGHTS`; empty on success,
// else the error output.
std::string MakeModel(const std::string& preset, const std::string& path,
                      const std::string& weights);

// llama.cpp's tools directory (next to libllama): SNUG_LLAMA_SRC/../build/bin.
std::string LlamaToolsDir();

std::string RStrip(std::string s, const std::string& chars = "\n");

}  // namespace snug::testing

namespace snug::testing {
// A tiny random-weight llama model written once per test process (empty string on failure; the
// reason is in *error).
const std::string& SharedTinyModel(std::string* error);
}  // namespace snug::testing
