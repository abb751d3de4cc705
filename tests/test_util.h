// Helpers shared by tests: KVM availability, build-tree paths, guest memory,
// temporary files.
#pragma once

#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>
#include <memory>
#include <string>

#include "memory/guest_memory.h"

namespace godwit::test {

/// True when /dev/kvm can be opened for read/write.
inline bool kvm_available() { return ::access("/dev/kvm", R_OK | W_OK) == 0; }

/// Path inside the build tree (e.g. "guests/ab.img", "bin/godwit").
inline std::string build_path(const std::string& rel) {
  return std::string(GODWIT_BINARY_DIR) + "/" + rel;
}
/// Path inside the source tree.
inline std::string source_path(const std::string& rel) {
  return std::string(GODWIT_SOURCE_DIR) + "/" + rel;
}

/// Guest RAM for loader and device tests (anonymous by default); null, with
/// the test marked failed, when it cannot be created.
inline std::unique_ptr<::godwit::GuestMemory> make_guest_memory(
    uint64_t size, MemoryBacking backing = MemoryBacking::anonymous) {
  auto memory =
      ::godwit::GuestMemory::create({.size = size, .backing = backing, .hugetlbfs_dir = {}});
  EXPECT_TRUE(memory) << memory.error().message;
  return memory ? std::move(*memory) : nullptr;
}

/// A file in the build tree's test-data directory with the given contents,
/// unique per process, removed on destruction.
class TempFile {
 public:
  TempFile(const std::string& name, const std::string& contents)
      : path_(build_path("test-data/tmp-" + std::to_string(::getpid()) + "-" + name)) {
    ::mkdir(build_path("test-data").c_str(), 0755);
    std::ofstream(path_, std::ios::binary | std::ios::trunc) << contents;
  }
  ~TempFile() { ::unlink(path_.c_str()); }
  TempFile(const TempFile&) = delete;
  TempFile& operator=(const TempFile&) = delete;
  [[nodiscard]] const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace godwit::test

/// Skips the current test with a clear message when /dev/kvm is unusable.
#define GODWIT_REQUIRE_KVM()                                                     \
  do {                                                                           \
    if (!::godwit::test::kvm_available())                                        \
      GTEST_SKIP() << "/dev/kvm is missing or not accessible: KVM test skipped"; \
  } while (0)
