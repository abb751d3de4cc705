// Internal helpers of the kvm/ layer's .cpp files (not for other folders):
// printf-style message formatting, a checked ioctl that names the request and
// its arguments in its error, and storage for the kernel's
// header-plus-flexible-array structs (kvm_cpuid2, kvm_msrs, kvm_msr_list).
#pragma once

#include <sys/ioctl.h>

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

// Every .cpp of this layer includes this header, so these catch a
// <linux/kvm.h> included ahead of kvm/uapi.h (wrong struct sizes, so wrong
// ioctl numbers) at compile time.
static_assert(sizeof(kvm_cpuid2) == 8, "include kvm/uapi.h before any <linux/kvm.h>");
static_assert(sizeof(kvm_msrs) == 8, "include kvm/uapi.h before any <linux/kvm.h>");
static_assert(sizeof(kvm_msr_list) == 4, "include kvm/uapi.h before any <linux/kvm.h>");
static_assert(sizeof(kvm_xsave) == 4096, "include kvm/uapi.h before any <linux/kvm.h>");
static_assert(sizeof(kvm_irq_routing) == 8, "include kvm/uapi.h before any <linux/kvm.h>");

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
