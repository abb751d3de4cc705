// A tiny virtio driver for device unit tests: lays out one split virtqueue
// at fixed guest addresses, hands out data buffers from a bump allocator,
// builds descriptor chains from (buffer, writable) parts, publishes them and
// reads back the used ring. It writes like a guest would, straight into host
// memory, so its writes never touch the VMM-side dirty bitmap.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <utility>

#include "devices/virtio/device.h"
#include "devices/virtio/queue.h"
#include "memory/guest_memory.h"

namespace godwit::test {

using namespace ::godwit::virtio;  // NOLINT: test helper spelling the device vocabulary

/// One buffer of a chain as the driver describes it.
struct ChainPart {
  uint64_t gpa = 0;       ///< guest address of the buffer
  uint32_t len = 0;       ///< length in bytes
  bool writable = false;  ///< device-writable (VIRTQ_DESC_F_WRITE)
};

/// Counts the interrupts a device raises.
class CountingInterrupt : public VirtioInterrupt {
 public:
  void signal_used_buffer() override { ++used; }
  void signal_config_change() override { ++config; }
  int used = 0;    ///< used-buffer notifications so far
  int config = 0;  ///< config-change notifications so far
};

/// Plays the driver of one queue of up to 256 entries.
class TestDriver {
 public:
  static constexpr uint64_t kDescGpa = 0x1000;   ///< descriptor table (256 x 16 bytes)
  static constexpr uint64_t kAvailGpa = 0x2000;  ///< avail ring
  static constexpr uint64_t kUsedGpa = 0x3000;   ///< used ring
  static constexpr uint64_t kDataGpa = 0x10000;  ///< first data buffer

  /// Drives a queue of `size` entries in `memory`.
  TestDriver(GuestMemory& memory, uint16_t size) : memory_(memory), size_(size) {}

  /// Configures `queue` at the fixed addresses and activates it.
  void setup(Queue& queue, uint64_t features = kFeatureVersion1) {
    queue.set_size(size_);
    queue.set_desc_table(kDescGpa);
    queue.set_avail_ring(kAvailGpa);
    queue.set_used_ring(kUsedGpa);
    queue.set_features(features);
    auto r = queue.activate();
    ASSERT_TRUE(r.has_value()) << r.error().message;
  }

  /// A fresh data buffer of `len` bytes aligned to `align` (zero-filled by the memory).
  uint64_t alloc(uint64_t len, uint64_t align = 16) {
    next_data_ = (next_data_ + align - 1) & ~(align - 1);
    uint64_t gpa = next_data_;
    next_data_ += len;
    return gpa;
  }
  /// Copies `len` bytes into guest memory at `gpa` as the guest would.
  void poke(uint64_t gpa, const void* data, size_t len) {
    std::memcpy(memory_.host_span(gpa, len).value().data(), data, len);
  }
  /// Writes a trivially copyable value as the guest would.
  template <typename T>
  void poke_obj(uint64_t gpa, const T& v) {
    poke(gpa, &v, sizeof v);
  }
  /// Reads a value from guest memory.
  template <typename T>
  T peek_obj(uint64_t gpa) {
    return memory_.read_obj<T>(gpa).value();
  }
  /// Host view of guest bytes.
  std::span<uint8_t> bytes(uint64_t gpa, uint64_t len) {
    return memory_.host_span(gpa, len).value();
  }

  /// Writes the parts as consecutive descriptors linked by NEXT; returns the head.
  uint16_t add_chain(std::initializer_list<ChainPart> parts) {
    uint16_t head = next_desc_;
    size_t i = 0;
    for (const ChainPart& p : parts) {
      uint16_t index = next_desc_;
      next_desc_ = static_cast<uint16_t>((next_desc_ + 1) % size_);
      bool more = ++i < parts.size();
      uint16_t flags =
          static_cast<uint16_t>((p.writable ? kDescFlagWrite : 0) | (more ? kDescFlagNext : 0));
      poke_obj(kDescGpa + 16ull * index,
               Descriptor{p.gpa, p.len, flags, more ? next_desc_ : uint16_t{0}});
    }
    return head;
  }
  /// Makes `head` available and publishes the new avail idx.
  void publish(uint16_t head) {
    poke_obj<uint16_t>(kAvailGpa + 4 + 2ull * (avail_idx_ % size_), head);
    poke_obj<uint16_t>(kAvailGpa + 2, ++avail_idx_);
  }
  /// Forgets everything published (after the device and queue were reset):
  /// zeroes both rings and starts again at descriptor 0 and avail idx 0.
  void reset() {
    std::memset(bytes(kAvailGpa, 6 + 2ull * size_).data(), 0, 6 + 2ull * size_);
    std::memset(bytes(kUsedGpa, 6 + 8ull * size_).data(), 0, 6 + 8ull * size_);
    avail_idx_ = 0;
    next_desc_ = 0;
  }
  /// The used ring's idx.
  uint16_t used_idx() { return peek_obj<uint16_t>(kUsedGpa + 2); }
  /// Used entry `slot`: {id, len}.
  std::pair<uint32_t, uint32_t> used_entry(uint16_t slot) {
    uint64_t at = kUsedGpa + 4 + 8ull * (slot % size_);
    return {peek_obj<uint32_t>(at), peek_obj<uint32_t>(at + 4)};
  }

 private:
  GuestMemory& memory_;
  uint16_t size_;
  uint16_t avail_idx_ = 0;
  uint16_t next_desc_ = 0;
  uint64_t next_data_ = kDataGpa;
};

}  // namespace godwit::test
