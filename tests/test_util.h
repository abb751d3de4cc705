// Helpers shared by tests: KVM availability, build-tree paths.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

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

}  // namespace godwit::test

/// Skips the current test with a clear message when /dev/kvm is unusable.
#define GODWIT_REQUIRE_KVM()                                                     \
  do {                                                                           \
    if (!::godwit::test::kvm_available())                                        \
      GTEST_SKIP() << "/dev/kvm is missing or not accessible: KVM test skipped"; \
  } while (0)
