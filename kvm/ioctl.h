// Internal helpers of the kvm/ layer: printf-style message formatting, a
// checked ioctl that names the request and its arguments in its error, an
// owner of one mmap'ed range, and storage for the kernel's
// header-plus-flexible-array structs (kvm_cpuid2, kvm_msrs, kvm_msr_list).
#pragma once

#include <sys/ioctl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "base/result.h"
#include "kvm/uapi.h"

namespace godwit::kvm::detail {

/// printf into a std::string (GCC 12 has no <format>).
[[nodiscard]] std::string format(const char* fmt, ...) __attribute__((format(printf, 1, 2)));

/// Issues `ioctl(fd, request, arg)`; on failure the error reads
/// "<what>: <strerror>", where `what` names the ioctl and its arguments.
template <typename Arg>
[[nodiscard]] Result<int> checked_ioctl(int fd, unsigned long request, Arg arg,
                                        const std::string& what) {
  int r = ::ioctl(fd, request, arg);
  if (r < 0) return fail_errno(what);
  return r;
}

/// RAII owner of one mmap'ed range (unmapped on destruction).
class Mapping {
 public:
  Mapping() = default;
  Mapping(void* addr, size_t size) : addr_(addr), size_(size) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  Mapping(Mapping&& o) noexcept
      : addr_(std::exchange(o.addr_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  Mapping& operator=(Mapping&& o) noexcept {
    if (this != &o) {
      reset();
      addr_ = std::exchange(o.addr_, nullptr);
      size_ = std::exchange(o.size_, 0);
    }
    return *this;
  }
  ~Mapping() { reset(); }

  /// Maps `size` bytes of `fd` at `offset` shared read/write.
  [[nodiscard]] static Result<Mapping> map_shared(int fd, size_t size, off_t offset,
                                                  const std::string& what) {
    void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
    if (p == MAP_FAILED) return fail_errno(what);
    return Mapping(p, size);
  }

  /// Start of the range (nullptr when empty).
  [[nodiscard]] void* get() const { return addr_; }
  /// Length of the range in bytes.
  [[nodiscard]] size_t size() const { return size_; }
  /// Unmaps the range, leaving this empty.
  void reset() {
    if (addr_ != nullptr) ::munmap(addr_, size_);
    addr_ = nullptr;
    size_ = 0;
  }

 private:
  void* addr_ = nullptr;
  size_t size_ = 0;
};

/// Zeroed, suitably aligned storage for a kernel struct `Header` that ends in
/// a flexible array of `count` `Entry` items.
template <typename Header, typename Entry>
class FlexibleArray {
 public:
  /// Storage for `count` entries (all bytes zero).
  explicit FlexibleArray(size_t count)
      : words_((sizeof(Header) + count * sizeof(Entry) + sizeof(uint64_t) - 1) / sizeof(uint64_t)) {
  }
  /// The header, followed in memory by the entries.
  [[nodiscard]] Header* header() { return reinterpret_cast<Header*>(words_.data()); }
  /// The first entry.
  [[nodiscard]] Entry* entries() {
    return reinterpret_cast<Entry*>(reinterpret_cast<std::byte*>(words_.data()) + sizeof(Header));
  }

 private:
  // The kernel headers need at most 8-byte alignment, which uint64_t gives.
  std::vector<uint64_t> words_;
};

}  // namespace godwit::kvm::detail
