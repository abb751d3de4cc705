// RAII owner of one mmap'ed range (the kvm_run page, a dirty ring).
#pragma once

#include <sys/mman.h>

#include <cstddef>
#include <string>
#include <utility>

#include "base/result.h"

namespace godwit::kvm::detail {

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

}  // namespace godwit::kvm::detail
