// Data sets shared by the migration benchmarks: incompressible bytes and
// "realistic mixed" bytes, the contents of the system's binaries and
// libraries (what a guest's page cache typically holds; zstd level 1
// compresses them about 2.3x).
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace godwit::bench {

/// `size` bytes of a xorshift64 stream (incompressible; the same every run).
inline std::vector<uint8_t> random_bytes(size_t size) {
  std::vector<uint8_t> out(size);
  uint64_t x = 0x9E3779B97F4A7C15ull;
  for (size_t i = 0; i + 8 <= size; i += 8) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    std::memcpy(out.data() + i, &x, 8);
  }
  return out;
}

/// Up to `size` bytes of the regular files under /usr/bin and
/// /usr/lib/x86_64-linux-gnu (sorted paths, so every run reads the same
/// bytes), cut to whole 4 KiB pages.
inline std::vector<uint8_t> system_file_bytes(size_t size) {
  std::vector<std::filesystem::path> files;
  for (const char* dir : {"/usr/bin", "/usr/lib/x86_64-linux-gnu"}) {
    std::error_code ec;
    for (auto it = std::filesystem::recursive_directory_iterator(
             dir, std::filesystem::directory_options::skip_permission_denied, ec);
         !ec && it != std::filesystem::recursive_directory_iterator(); it.increment(ec)) {
      if (it->is_regular_file(ec) && !it->is_symlink(ec)) files.push_back(it->path());
    }
  }
  std::sort(files.begin(), files.end());
  std::vector<uint8_t> out;
  out.reserve(size);
  for (const auto& path : files) {
    if (out.size() >= size) break;
    std::ifstream in(path, std::ios::binary);
    std::vector<uint8_t> content((std::istreambuf_iterator<char>(in)),
                                 std::istreambuf_iterator<char>());
    const size_t take = std::min(content.size(), size - out.size());
    out.insert(out.end(), content.begin(), content.begin() + static_cast<ptrdiff_t>(take));
  }
  out.resize(out.size() / 4096 * 4096);
  return out;
}

}  // namespace godwit::bench
