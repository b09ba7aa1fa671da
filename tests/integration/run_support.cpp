#include "run_support.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace snug::testing {
namespace {

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

ProcessResult RunProcess(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                         const std::string& stdin_path) {
  TempDir dir;
  const std::string out_path = dir.path() + "/out";
  const std::string err_path = dir.path() + "/err";
  const auto start = std::chrono::steady_clock::now();
  const pid_t pid = fork();
  if (pid == 0) {
    int in = open(stdin_path.c_str(), O_RDONLY);
    int out = open(out_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    int err = open(err_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    dup2(in, 0);
    dup2(out, 1);
    dup2(err, 2);
    for (const auto& e : env)
      putenv(strdup(e.c_str()));
    std::vector<char*> args;
    for (const auto& a : argv)
      args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execvp(args[0], args.data());
    _exit(127);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ProcessResult result;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.signal = WTERMSIG(status);
  result.out = ReadAll(out_path);
  result.err = ReadAll(err_path);
  return result;
}

TempDir::TempDir() {
  std::string pattern = (std::filesystem::temp_directory_path() / "snug-run-XXXXXX").string();
  path_ = mkdtemp(pattern.data());
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

std::string MakeModel(const std::string& preset, const std::string& path,
                      const std::string& weights) {
  ProcessResult r = RunProcess({SNUG_BINARY, "mkmodel", preset, path, "--weights", weights});
  return r.exit_code == 0 ? "" : r.err + r.out;
}

std::string LlamaToolsDir() {
  return (std::filesystem::path(SNUG_LLAMA_SRC).parent_path() / "build" / "bin").string();
}

std::string RStrip(std::string s, const std::string& chars) {
  while (!s.empty() && chars.find(s.back()) != std::string::npos)
    s.pop_back();
  return s;
}

}  // namespace snug::testing

namespace snug::testing {
const std::string& SharedTinyModel(std::string* error) {
  static TempDir dir;  // removed at exit
  static std::string failure;
  static const std::string path = [&] {
    std::string p = dir.path() + "/tiny.gguf";
    failure = MakeModel("tiny", p, "random");
    return failure.empty() ? p : std::string();
  }();
  if (error) *error = failure;
  return path;
}
}  // namespace snug::testing
