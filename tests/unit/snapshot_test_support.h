// Helpers for the guest-memory snapshot tests: a scratch directory, page
// patterns, whole-memory comparison, file fingerprints and bit flips.
#pragma once

#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "memory/guest_memory.h"
#include "test_util.h"

namespace godwit::test {

/// A directory in the build tree's test-data, unique per process and test,
/// removed with its contents on destruction.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& name)
      : path_(build_path("test-data/snap-" + std::to_string(::getpid()) + "-" + name)) {
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  /// Path of `file` inside the directory.
  [[nodiscard]] std::string file(const std::string& name) const { return path_ + "/" + name; }
  /// The directory itself.
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Fills the page at `gpa` with bytes derived from (gpa, seed), never all zero.
inline void fill_page(GuestMemory& memory, uint64_t gpa, uint32_t seed) {
  auto span = memory.host_span(gpa, kPageSize);
  ASSERT_TRUE(span) << span.error().message;
  uint64_t x = gpa * 0x9e3779b97f4a7c15ull + seed * 0xbf58476d1ce4e5b9ull + 1;
  for (size_t i = 0; i < kPageSize; i += 8) {
    x ^= x >> 31;
    x *= 0x94d049bb133111ebull;
    x ^= x >> 29;
    std::memcpy(span->data() + i, &x, 8);
  }
  (*span)[0] |= 1;
}

/// Makes the page at `gpa` zero.
inline void zero_page(GuestMemory& memory, uint64_t gpa) {
  auto span = memory.host_span(gpa, kPageSize);
  ASSERT_TRUE(span) << span.error().message;
  std::memset(span->data(), 0, kPageSize);
}

/// Fills every byte of `memory` with `byte` (a "dirty" destination).
inline void fill_all(GuestMemory& memory, uint8_t byte) {
  for (const MemoryRegion& r : memory.regions()) std::memset(r.host, byte, r.size);
}

/// Success when both memories have the same layout and bytes; otherwise
/// names the first differing page.
inline ::testing::AssertionResult memory_equal(const GuestMemory& a, const GuestMemory& b) {
  if (a.regions().size() != b.regions().size())
    return ::testing::AssertionFailure() << "different region counts";
  for (size_t i = 0; i < a.regions().size(); ++i) {
    const MemoryRegion& ra = a.regions()[i];
    const MemoryRegion& rb = b.regions()[i];
    if (ra.gpa != rb.gpa || ra.size != rb.size)
      return ::testing::AssertionFailure() << "region " << i << " differs in place or size";
    for (uint64_t off = 0; off < ra.size; off += kPageSize)
      if (std::memcmp(ra.host + off, rb.host + off, kPageSize) != 0)
        return ::testing::AssertionFailure()
               << "page at gpa 0x" << std::hex << ra.gpa + off << " differs";
  }
  return ::testing::AssertionSuccess();
}

/// Contents, size and modification time of a file: equal before and after
/// an operation means the operation did not modify it.
struct FileFingerprint {
  std::string contents;
  int64_t mtime_ns = 0;
  friend bool operator==(const FileFingerprint&, const FileFingerprint&) = default;
};

/// The fingerprint of `path` (empty contents and mtime 0 when missing).
inline FileFingerprint fingerprint(const std::string& path) {
  FileFingerprint f;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return f;
  f.mtime_ns = int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec;
  std::ifstream in(path, std::ios::binary);
  f.contents.assign(std::istreambuf_iterator<char>(in), {});
  return f;
}

/// Inverts bit `bit` of the byte at `offset` of `path`.
inline void flip_bit(const std::string& path, uint64_t offset, int bit = 0) {
  int fd = ::open(path.c_str(), O_RDWR);
  ASSERT_GE(fd, 0) << path;
  uint8_t byte = 0;
  ASSERT_EQ(::pread(fd, &byte, 1, static_cast<off_t>(offset)), 1);
  byte ^= static_cast<uint8_t>(1u << bit);
  ASSERT_EQ(::pwrite(fd, &byte, 1, static_cast<off_t>(offset)), 1);
  ::close(fd);
}

/// Size of `path` in bytes.
inline uint64_t file_size(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_size);
}

/// Bytes the filesystem allocated for `path` (st_blocks * 512).
inline uint64_t allocated_bytes(const std::string& path) {
  struct stat st {};
  EXPECT_EQ(::stat(path.c_str(), &st), 0) << path;
  return static_cast<uint64_t>(st.st_blocks) * 512;
}

}  // namespace godwit::test
