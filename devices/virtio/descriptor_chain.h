// Descriptor chains of a virtio 1.x split virtqueue: the 16-byte descriptor
// layout, the validating walk that turns a head index into lists of readable
// and writable guest buffers (following `next` links and one level of
// INDIRECT tables), and ChainReader / ChainWriter, which copy bytes out of
// and into those buffers across descriptor boundaries. Every byte the device
// writes goes through GuestMemory so the VMM-side dirty bitmap sees it.
//
//   descriptor table (16 bytes each, 16-byte aligned)
//   +--------------+--------+---------+--------+
//   | addr (le64)  | len    | flags   | next   |
//   |              | (le32) | (le16)  | (le16) |
//   +--------------+--------+---------+--------+
//   flags: NEXT = 1, WRITE = 2 (device-writable), INDIRECT = 4 (addr/len
//   point at a table of len / 16 descriptors that form the rest of the chain)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "memory/guest_memory.h"

namespace godwit::virtio {

/// VIRTQ_DESC_F_NEXT: the chain continues at `next`.
inline constexpr uint16_t kDescFlagNext = 1;
/// VIRTQ_DESC_F_WRITE: the buffer is device-writable (otherwise device-readable).
inline constexpr uint16_t kDescFlagWrite = 2;
/// VIRTQ_DESC_F_INDIRECT: the buffer is a table of descriptors.
inline constexpr uint16_t kDescFlagIndirect = 4;
/// Largest indirect table accepted, in descriptors (the largest queue size;
/// bounds the work one malicious chain can cause).
inline constexpr uint32_t kMaxIndirectDescriptors = 32768;

/// One descriptor as laid out in guest memory (little-endian, as on x86).
struct Descriptor {
  uint64_t addr = 0;   ///< guest-physical address of the buffer
  uint32_t len = 0;    ///< buffer length in bytes
  uint16_t flags = 0;  ///< kDescFlag* bits
  uint16_t next = 0;   ///< next descriptor index when kDescFlagNext is set
};
static_assert(sizeof(Descriptor) == 16 && std::is_trivially_copyable_v<Descriptor>);

/// A guest buffer of a chain; validated to lie entirely inside guest RAM.
struct GuestBuffer {
  uint64_t gpa = 0;  ///< guest-physical start
  uint32_t len = 0;  ///< length in bytes (never 0: empty descriptors are dropped)

  friend bool operator==(const GuestBuffer&, const GuestBuffer&) = default;
};

/// One available descriptor chain: the head index to hand back in add_used()
/// plus its device-readable buffers followed by its device-writable buffers.
struct DescriptorChain {
  uint16_t head = 0;                  ///< descriptor index taken from the avail ring
  std::vector<GuestBuffer> readable;  ///< device-readable buffers, in chain order
  std::vector<GuestBuffer> writable;  ///< device-writable buffers, in chain order
  uint32_t readable_bytes = 0;        ///< sum of readable lengths
  uint32_t writable_bytes = 0;        ///< sum of writable lengths
  uint32_t descriptor_count = 0;      ///< descriptors walked (including an INDIRECT one)
};

/// Where the walk finds descriptors and what the driver negotiated.
struct DescriptorTable {
  uint64_t gpa = 0;         ///< descriptor table address (validated by the Queue)
  uint16_t size = 0;        ///< queue size: number of descriptors in the table
  bool indirect = false;    ///< VIRTIO_F_INDIRECT_DESC negotiated
  std::string_view name{};  ///< queue name for error messages ("blk0 q0")
};

/// Walks the chain starting at descriptor `head` and validates it:
///  1. head and every `next` index lie inside their table;
///  2. at most `table.size` direct descriptors and, inside an indirect table,
///     at most its length / 16 descriptors are walked (so loops end);
///  3. INDIRECT only when negotiated, never with NEXT, never nested, with a
///     table length that is a non-zero multiple of 16 and at most
///     kMaxIndirectDescriptors entries, inside guest RAM;
///  4. every buffer lies inside guest RAM without wrapping the address space;
///  5. no device-readable descriptor follows a device-writable one;
///  6. the total length of the chain fits in 32 bits.
/// The error message names the queue, the head and the offending descriptor.
[[nodiscard]] Result<DescriptorChain> walk_descriptor_chain(const GuestMemory& memory,
                                                            const DescriptorTable& table,
                                                            uint16_t head);

/// Sequential reader over a chain's readable buffers. The chain must outlive it.
class ChainReader {
 public:
  /// Reads from `chain.readable` in order.
  ChainReader(const GuestMemory& memory, const DescriptorChain& chain);

  /// Copies the next out.size() bytes; fails (consuming nothing) when fewer remain.
  [[nodiscard]] Result<void> read(std::span<uint8_t> out);
  /// Reads the next sizeof(T) bytes as a T.
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<T> read_obj() {
    T v{};
    TRY_VOID(read(std::span(reinterpret_cast<uint8_t*>(&v), sizeof(T))));
    return v;
  }
  /// Skips `n` bytes; fails (consuming nothing) when fewer remain.
  [[nodiscard]] Result<void> skip(uint64_t n);
  /// Readable bytes not consumed yet.
  [[nodiscard]] uint64_t remaining() const { return remaining_; }
  /// Bytes consumed so far.
  [[nodiscard]] uint64_t consumed() const { return consumed_; }

 private:
  /// Advances the cursor by `n` bytes (n <= remaining_), copying into `out` if non-null.
  [[nodiscard]] Result<void> advance(uint64_t n, uint8_t* out);

  const GuestMemory& memory_;
  std::span<const GuestBuffer> buffers_;
  uint16_t head_;
  size_t index_ = 0;     ///< current buffer
  uint64_t offset_ = 0;  ///< offset inside the current buffer
  uint64_t remaining_ = 0;
  uint64_t consumed_ = 0;
};

/// Sequential writer over a chain's writable buffers. Every byte goes through
/// GuestMemory::write (or host_span + mark_dirty for next_span/commit), so the
/// VMM-side dirty bitmap covers exactly the bytes written. The chain must
/// outlive it.
class ChainWriter {
 public:
  /// Writes into `chain.writable` in order.
  ChainWriter(GuestMemory& memory, const DescriptorChain& chain);

  /// Copies `data` into the next bytes; fails (writing nothing) when fewer remain.
  [[nodiscard]] Result<void> write(std::span<const uint8_t> data);
  /// Writes a T as the next sizeof(T) bytes.
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<void> write_obj(const T& v) {
    return write(std::span(reinterpret_cast<const uint8_t*>(&v), sizeof(T)));
  }
  /// Zero-copy: the host view of up to `max_len` bytes at the cursor, inside
  /// one buffer (empty when nothing remains). Does not advance: fill it, then
  /// call commit() with the number of bytes filled.
  [[nodiscard]] Result<std::span<uint8_t>> next_span(uint64_t max_len);
  /// Marks the next `n` bytes dirty and advances past them (after filling
  /// spans from next_span()); fails (doing nothing) when fewer remain.
  [[nodiscard]] Result<void> commit(uint64_t n);
  /// Writable bytes left.
  [[nodiscard]] uint64_t remaining() const { return remaining_; }
  /// Bytes written (or committed) so far: the `len` to report in add_used().
  [[nodiscard]] uint32_t written() const { return static_cast<uint32_t>(written_); }

 private:
  /// Advances the cursor by `n` bytes (n <= remaining_): copies from `data`
  /// when non-null, otherwise only marks the bytes dirty.
  [[nodiscard]] Result<void> advance(uint64_t n, const uint8_t* data);

  GuestMemory& memory_;
  std::span<const GuestBuffer> buffers_;
  uint16_t head_;
  size_t index_ = 0;
  uint64_t offset_ = 0;
  uint64_t remaining_ = 0;
  uint64_t written_ = 0;
};

}  // namespace godwit::virtio
