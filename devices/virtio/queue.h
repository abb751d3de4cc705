// A virtio 1.x split virtqueue, device side: pops available descriptor
// chains, publishes used entries, and decides when the driver needs an
// interrupt (event index or VIRTQ_AVAIL_F_NO_INTERRUPT). A malicious guest
// can only make pop() return an error: the queue then becomes broken() with a
// reason, refuses further pops, and its device owner enters NEEDS_RESET.
//
//   avail ring (driver -> device, 2-byte aligned)
//   | flags le16 | idx le16 | ring[size] le16 | used_event le16 (EVENT_IDX) |
//   used ring (device -> driver, 4-byte aligned)
//   | flags le16 | idx le16 | ring[size] {id le32, len le32} | avail_event le16 (EVENT_IDX) |
//
// Every write into guest memory (used entries, used idx, used flags,
// avail_event) goes through GuestMemory::write, which marks the VMM-side dirty
// bitmap. Not thread-safe: one device thread owns a Queue.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "base/result.h"
#include "devices/virtio/descriptor_chain.h"
#include "memory/guest_memory.h"

namespace godwit::virtio {

/// The largest split-queue size the virtio spec allows.
inline constexpr uint16_t kMaxQueueSize = 32768;
/// VIRTIO_F_INDIRECT_DESC (feature bit 28).
inline constexpr uint64_t kFeatureIndirectDesc = 1ull << 28;
/// VIRTIO_F_EVENT_IDX (feature bit 29).
inline constexpr uint64_t kFeatureEventIdx = 1ull << 29;
/// VIRTQ_AVAIL_F_NO_INTERRUPT: the driver asks for no used-buffer interrupts.
inline constexpr uint16_t kAvailFlagNoInterrupt = 1;
/// VIRTQ_USED_F_NO_NOTIFY: the device asks for no available-buffer notifications.
inline constexpr uint16_t kUsedFlagNoNotify = 1;

/// Bytes of the descriptor table of a queue of `size` entries.
constexpr uint64_t desc_table_bytes(uint16_t size) { return 16ull * size; }
/// Bytes of the avail ring (used_event included: it is harmless to validate).
constexpr uint64_t avail_ring_bytes(uint16_t size) { return 6ull + 2ull * size; }
/// Bytes of the used ring (avail_event included).
constexpr uint64_t used_ring_bytes(uint16_t size) { return 6ull + 8ull * size; }

/// vring_need_event(): true when moving the used (or avail) index from
/// `old_idx` to `new_idx` crossed `event_idx`, all modulo 2^16.
constexpr bool vring_need_event(uint16_t event_idx, uint16_t new_idx, uint16_t old_idx) {
  return static_cast<uint16_t>(new_idx - event_idx - 1) < static_cast<uint16_t>(new_idx - old_idx);
}

/// Everything needed to recreate a Queue (snapshot / migration).
struct QueueState {
  uint16_t size = 0;                ///< queue size chosen by the driver
  bool ready = false;               ///< QueueReady: validated and in use
  uint64_t desc_table = 0;          ///< descriptor table gpa
  uint64_t avail_ring = 0;          ///< avail ring gpa
  uint64_t used_ring = 0;           ///< used ring gpa
  uint16_t last_avail_idx = 0;      ///< next avail slot the device will consume
  uint16_t next_used_idx = 0;       ///< used idx the device will publish next
  uint16_t signalled_used_idx = 0;  ///< used idx at the last needs_notification()
  bool event_idx = false;           ///< VIRTIO_F_EVENT_IDX negotiated
  bool indirect = false;            ///< VIRTIO_F_INDIRECT_DESC negotiated
  bool broken = false;              ///< a malformed ring was seen
  std::string broken_reason{};      ///< why, when broken

  friend bool operator==(const QueueState&, const QueueState&) = default;
};

/// One split virtqueue.
class Queue {
 public:
  /// `name` appears in every error message ("blk0 q0"); `max_size` is the
  /// device's QueueNumMax (power of two, <= kMaxQueueSize). After construction
  /// and reset() the size is `max_size`.
  Queue(GuestMemory& memory, std::string name, uint16_t max_size);

  // -- configuration by the transport; ignored while ready() --

  /// Sets the queue size (validated by activate()).
  void set_size(uint16_t size);
  /// Sets the descriptor table address.
  void set_desc_table(uint64_t gpa);
  /// Sets the avail (driver) ring address.
  void set_avail_ring(uint64_t gpa);
  /// Sets the used (device) ring address.
  void set_used_ring(uint64_t gpa);
  /// Takes EVENT_IDX and INDIRECT_DESC from the negotiated feature bits.
  void set_features(uint64_t negotiated);
  /// Validates the configuration and marks the queue ready: size a power of
  /// two in [1, max_size]; tables aligned (16 / 2 / 4) and inside guest RAM.
  [[nodiscard]] Result<void> activate();
  /// Back to the reset state (not ready, not broken, indices 0, size max_size).
  void reset();

  /// The queue's name as given at construction.
  [[nodiscard]] const std::string& name() const { return name_; }
  /// QueueNumMax.
  [[nodiscard]] uint16_t max_size() const { return max_size_; }
  /// True once activate() succeeded (until reset()).
  [[nodiscard]] bool ready() const { return state_.ready; }
  /// True once a malformed ring was seen; pop() then always fails.
  [[nodiscard]] bool broken() const { return state_.broken; }
  /// Why the queue broke (empty when not broken).
  [[nodiscard]] const std::string& broken_reason() const { return state_.broken_reason; }

  /// A copy of the state.
  [[nodiscard]] QueueState state() const { return state_; }
  /// Replaces the state; a ready state is validated as activate() would.
  [[nodiscard]] Result<void> restore(const QueueState& state);

  // -- device side --

  /// Number of chains the driver made available and pop() has not consumed.
  /// Fails (and breaks the queue) when the avail idx is more than the queue
  /// size ahead of the last consumed one.
  [[nodiscard]] Result<uint16_t> available();
  /// The next available chain, std::nullopt when none; on a malformed ring
  /// the queue becomes broken and this (and every later pop) fails.
  [[nodiscard]] Result<std::optional<DescriptorChain>> pop();
  /// Publishes a used entry {head, written_len}: the entry, then (after a
  /// release fence) the used idx. Fails for head >= size or a queue that is
  /// not ready. Allowed on a broken queue (to complete earlier chains).
  [[nodiscard]] Result<void> add_used(uint16_t head, uint32_t written_len);
  /// Whether the driver wants an interrupt for the entries added since the
  /// last call: with EVENT_IDX, vring_need_event(used_event, next_used,
  /// signalled_used); otherwise unless VIRTQ_AVAIL_F_NO_INTERRUPT is set
  /// (and never when nothing was added since the last call).
  [[nodiscard]] Result<bool> needs_notification();
  /// EVENT_IDX only: writes avail_event = last_avail_idx, asking the driver to
  /// notify as soon as it makes another chain available. Call before waiting,
  /// then check available() again (the driver may have raced).
  [[nodiscard]] Result<void> set_avail_event();
  /// Without EVENT_IDX: sets or clears VIRTQ_USED_F_NO_NOTIFY in the used
  /// ring flags (suppress driver notifications while the device is polling).
  [[nodiscard]] Result<void> set_no_notify(bool suppress);

 private:
  /// Records the reason, marks the queue broken and returns it as an error.
  std::unexpected<Error> break_queue(std::string reason);
  /// Checks the configuration in `s` (see activate()).
  [[nodiscard]] Result<void> validate(const QueueState& s) const;
  /// Fails unless the queue is ready.
  [[nodiscard]] Result<void> require_ready(const char* what) const;

  GuestMemory& memory_;
  std::string name_;
  uint16_t max_size_;
  QueueState state_;
};

}  // namespace godwit::virtio
