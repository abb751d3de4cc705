// Logging implementation: one write(2) per line so concurrent threads never
// interleave inside a line.
#include "base/log.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <string>

namespace godwit::log {
namespace {
Level initial_level() {
  const char* env = std::getenv("GODWIT_LOG");
  if (env == nullptr) return Level::info;
  if (std::strcmp(env, "debug") == 0) return Level::debug;
  if (std::strcmp(env, "warn") == 0) return Level::warn;
  if (std::strcmp(env, "error") == 0) return Level::error;
  return Level::info;
}
std::atomic<Level> g_level{initial_level()};
constexpr const char* kNames[] = {"debug", "info", "warn", "error"};
}  // namespace

void set_level(Level l) { g_level.store(l); }
Level level() { return g_level.load(); }

void write(Level l, std::string_view msg) {
  if (l < g_level.load()) return;
  std::string line = "godwit: ";
  line += kNames[static_cast<int>(l)];
  line += ": ";
  line += msg;
  line += '\n';
  ssize_t unused = ::write(STDERR_FILENO, line.data(), line.size());
  (void)unused;
}

}  // namespace godwit::log
