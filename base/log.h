// Minimal leveled logging to stderr, thread-safe per line.
#pragma once

#include <cstdio>
#include <string_view>

namespace godwit::log {

enum class Level { debug = 0, info = 1, warn = 2, error = 3 };

/// Sets the lowest level printed (default info; GODWIT_LOG=debug overrides).
void set_level(Level l);
/// Current level.
Level level();
/// Writes "godwit: <level>: <msg>\n" to stderr as one write.
void write(Level l, std::string_view msg);

inline void debug(std::string_view m) { write(Level::debug, m); }
inline void info(std::string_view m) { write(Level::info, m); }
inline void warn(std::string_view m) { write(Level::warn, m); }
inline void error(std::string_view m) { write(Level::error, m); }

}  // namespace godwit::log
