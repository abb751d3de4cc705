// Split virtqueue: configuration checks, pop / add_used, and both directions
// of notification suppression. Memory ordering follows the virtio spec: read
// avail idx, then (acquire) the ring entries; write the used entry, then
// (release) the used idx; full fences around the event-index handshakes.
#include "devices/virtio/queue.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cstdio>

namespace godwit::virtio {
namespace {

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

/// Fails unless [gpa, gpa + len) lies inside one RAM region (= inside RAM:
/// the x86 layout's regions are never adjacent).
Result<void> check_area(const GuestMemory& memory, const std::string& prefix, const char* what,
                        uint64_t gpa, uint64_t len, uint64_t align) {
  if (gpa % align != 0)
    return fail(prefix + what + " " + hex(gpa) + " is not " + std::to_string(align) +
                "-byte aligned");
  const MemoryRegion* region = memory.find_region(gpa);
  if (gpa > UINT64_MAX - len || region == nullptr || !region->contains(gpa, len))
    return fail(prefix + what + " " + hex(gpa) + " len " + std::to_string(len) +
                " is outside guest RAM");
  return {};
}

constexpr uint16_t clamp_max_size(uint16_t max_size) {
  if (max_size == 0) return 1;
  return std::bit_floor(std::min(max_size, kMaxQueueSize));
}

}  // namespace

Queue::Queue(GuestMemory& memory, std::string name, uint16_t max_size)
    : memory_(memory), name_(std::move(name)), max_size_(clamp_max_size(max_size)) {
  reset();
}

void Queue::set_size(uint16_t size) {
  if (!state_.ready) state_.size = size;
}
void Queue::set_desc_table(uint64_t gpa) {
  if (!state_.ready) state_.desc_table = gpa;
}
void Queue::set_avail_ring(uint64_t gpa) {
  if (!state_.ready) state_.avail_ring = gpa;
}
void Queue::set_used_ring(uint64_t gpa) {
  if (!state_.ready) state_.used_ring = gpa;
}
void Queue::set_features(uint64_t negotiated) {
  if (state_.ready) return;
  state_.event_idx = (negotiated & kFeatureEventIdx) != 0;
  state_.indirect = (negotiated & kFeatureIndirectDesc) != 0;
}

void Queue::reset() {
  state_ = QueueState{};
  state_.size = max_size_;
}

Result<void> Queue::validate(const QueueState& s) const {
  std::string prefix = "virtqueue " + name_ + ": ";
  if (s.size == 0 || !std::has_single_bit(s.size) || s.size > max_size_)
    return fail(prefix + "queue size " + std::to_string(s.size) + " is not a power of two in [1, " +
                std::to_string(max_size_) + "]");
  TRY_VOID(
      check_area(memory_, prefix, "descriptor table", s.desc_table, desc_table_bytes(s.size), 16));
  TRY_VOID(check_area(memory_, prefix, "avail ring", s.avail_ring, avail_ring_bytes(s.size), 2));
  TRY_VOID(check_area(memory_, prefix, "used ring", s.used_ring, used_ring_bytes(s.size), 4));
  return {};
}

Result<void> Queue::activate() {
  TRY_VOID(validate(state_));
  state_.ready = true;
  state_.signalled_used_idx = state_.next_used_idx;
  return {};
}

Result<void> Queue::restore(const QueueState& state) {
  if (state.ready) TRY_VOID(validate(state));
  state_ = state;
  return {};
}

Result<void> Queue::require_ready(const char* what) const {
  if (!state_.ready) return fail("virtqueue " + name_ + " " + what + ": queue is not ready");
  return {};
}

std::unexpected<Error> Queue::break_queue(std::string reason) {
  if (!state_.broken) {
    state_.broken = true;
    state_.broken_reason = reason;
  }
  return fail(std::move(reason));
}

Result<uint16_t> Queue::available() {
  TRY_VOID(require_ready("available"));
  if (state_.broken) return fail("virtqueue " + name_ + " is broken: " + state_.broken_reason);
  Result<uint16_t> avail_idx = memory_.read_obj<uint16_t>(state_.avail_ring + 2);
  if (!avail_idx) return break_queue(avail_idx.error().context("virtqueue " + name_).message);
  auto pending = static_cast<uint16_t>(*avail_idx - state_.last_avail_idx);
  if (pending > state_.size)
    return break_queue("virtqueue " + name_ + ": avail idx " + std::to_string(*avail_idx) + " is " +
                       std::to_string(pending) + " ahead of last_avail_idx " +
                       std::to_string(state_.last_avail_idx) + ", more than queue size " +
                       std::to_string(state_.size));
  return pending;
}

Result<std::optional<DescriptorChain>> Queue::pop() {
  uint16_t pending = TRY(available());
  if (pending == 0) return std::optional<DescriptorChain>();
  // The ring entry must not be read before the avail idx that published it.
  std::atomic_thread_fence(std::memory_order_acquire);
  uint16_t slot = state_.last_avail_idx % state_.size;
  Result<uint16_t> head = memory_.read_obj<uint16_t>(state_.avail_ring + 4 + 2ull * slot);
  if (!head) return break_queue(head.error().context("virtqueue " + name_).message);
  DescriptorTable table{state_.desc_table, state_.size, state_.indirect, name_};
  Result<DescriptorChain> chain = walk_descriptor_chain(memory_, table, *head);
  if (!chain)
    return break_queue(chain.error().message + " (avail slot " + std::to_string(slot) +
                       ", last_avail_idx " + std::to_string(state_.last_avail_idx) + ")");
  ++state_.last_avail_idx;
  return std::optional<DescriptorChain>(std::move(*chain));
}

Result<void> Queue::add_used(uint16_t head, uint32_t written_len) {
  TRY_VOID(require_ready("add_used"));
  if (head >= state_.size)
    return fail("virtqueue " + name_ + " add_used head " + std::to_string(head) +
                " >= queue size " + std::to_string(state_.size));
  struct UsedElement {
    uint32_t id;
    uint32_t len;
  };
  uint16_t slot = state_.next_used_idx % state_.size;
  TRY_VOID(memory_.write_obj(state_.used_ring + 4 + 8ull * slot, UsedElement{head, written_len}));
  // The driver must see the entry before the idx that publishes it.
  std::atomic_thread_fence(std::memory_order_release);
  ++state_.next_used_idx;
  return memory_.write_obj(state_.used_ring + 2, state_.next_used_idx);
}

Result<bool> Queue::needs_notification() {
  TRY_VOID(require_ready("needs_notification"));
  // Our used idx store must be visible before we read the driver's
  // suppression state, or both sides may decide the other will act.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  uint16_t old_idx = state_.signalled_used_idx;
  uint16_t new_idx = state_.next_used_idx;
  state_.signalled_used_idx = new_idx;
  if (state_.event_idx) {
    uint16_t used_event =
        TRY(memory_.read_obj<uint16_t>(state_.avail_ring + 4 + 2ull * state_.size));
    return vring_need_event(used_event, new_idx, old_idx);
  }
  if (new_idx == old_idx) return false;
  uint16_t flags = TRY(memory_.read_obj<uint16_t>(state_.avail_ring));
  return (flags & kAvailFlagNoInterrupt) == 0;
}

Result<void> Queue::set_avail_event() {
  TRY_VOID(require_ready("set_avail_event"));
  if (!state_.event_idx)
    return fail("virtqueue " + name_ + " set_avail_event: VIRTIO_F_EVENT_IDX not negotiated");
  TRY_VOID(memory_.write_obj(state_.used_ring + 4 + 8ull * state_.size, state_.last_avail_idx));
  // Publish avail_event before the caller re-reads avail idx.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return {};
}

Result<void> Queue::set_no_notify(bool suppress) {
  TRY_VOID(require_ready("set_no_notify"));
  uint16_t flags = suppress ? kUsedFlagNoNotify : 0;
  TRY_VOID(memory_.write_obj(state_.used_ring, flags));
  std::atomic_thread_fence(std::memory_order_seq_cst);
  return {};
}

}  // namespace godwit::virtio
