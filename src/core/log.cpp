#include "core/log.h"

#include <spdlog/sinks/stdout_color_sinks.h>

#include <cstdlib>
#include <string>

namespace snug::log {

void Init(int verbose_level) {
  auto logger = spdlog::stderr_color_mt("snug");
  logger->set_pattern("%^[%l]%$ %v");
  spdlog::level::level_enum level = spdlog::level::warn;
  if (verbose_level == 1) level = spdlog::level::info;
  if (verbose_level >= 2) level = spdlog::level::debug;
  if (const char* env = std::getenv("SNUG_LOG")) level = spdlog::level::from_str(env);
  logger->set_level(level);
  spdlog::set_default_logger(logger);
}

}  // namespace snug::log
