// Vm dirty tracking: the dirty bitmap (KVM_GET_DIRTY_LOG, manual protect and
// KVM_CLEAR_DIRTY_LOG) and enabling/resetting the per-vCPU dirty rings.
#include <cinttypes>

#include "kvm/ioctl.h"
#include "kvm/vm.h"

namespace godwit::kvm {

using detail::checked_ioctl;
using detail::format;

namespace {

constexpr uint64_t kGuestPageSize = 4096;

uint64_t bitmap_words(uint64_t slot_bytes) {
  uint64_t pages = (slot_bytes + kGuestPageSize - 1) / kGuestPageSize;
  return (pages + 63) / 64;
}

}  // namespace

Result<void> Vm::enable_manual_dirty_log_protect(bool initially_set) {
  int supported = TRY(check_extension(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2));
  uint64_t wanted = KVM_DIRTY_LOG_MANUAL_PROTECT_ENABLE;
  if (initially_set) wanted |= KVM_DIRTY_LOG_INITIALLY_SET;
  if ((static_cast<uint64_t>(supported) & wanted) != wanted) {
    return fail(format("KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2: host offers 0x%x, need 0x%" PRIx64,
                       supported, wanted));
  }
  uint64_t args[] = {wanted};
  return enable_cap(KVM_CAP_MANUAL_DIRTY_LOG_PROTECT2, args);
}

Result<void> Vm::get_dirty_log(uint32_t slot, std::span<uint64_t> bitmap) {
  auto known = slot_sizes_.find(slot);
  if (known != slot_sizes_.end() && bitmap.size() < bitmap_words(known->second)) {
    return fail(format("KVM_GET_DIRTY_LOG slot %u: bitmap of %zu words, slot needs %" PRIu64, slot,
                       bitmap.size(), bitmap_words(known->second)));
  }
  kvm_dirty_log request{};
  request.slot = slot;
  request.dirty_bitmap = bitmap.data();
  TRY(checked_ioctl(fd_.get(), KVM_GET_DIRTY_LOG, &request,
                    format("KVM_GET_DIRTY_LOG slot %u", slot)));
  return {};
}

Result<void> Vm::clear_dirty_log(uint32_t slot, uint64_t first_page, uint32_t num_pages,
                                 std::span<const uint64_t> bitmap) {
  std::string what = format("KVM_CLEAR_DIRTY_LOG slot %u first_page %" PRIu64 " num_pages %u", slot,
                            first_page, num_pages);
  if (bitmap.size() < (num_pages + 63ull) / 64) {
    return fail(what + format(": bitmap of %zu words is too short", bitmap.size()));
  }
  kvm_clear_dirty_log request{};
  request.slot = slot;
  request.first_page = first_page;
  request.num_pages = num_pages;
  // The kernel only reads the bitmap; its struct field is not const.
  request.dirty_bitmap = const_cast<uint64_t*>(bitmap.data());
  TRY(checked_ioctl(fd_.get(), KVM_CLEAR_DIRTY_LOG, &request, what));
  return {};
}

Result<void> Vm::enable_dirty_ring(uint32_t bytes) {
  // ACQ_REL is the same ring with the ordering contract spelled out (and the
  // only one offered on weakly ordered hosts); prefer it when present.
  int cap = KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
  int max_bytes = TRY(check_extension(cap));
  if (max_bytes == 0) {
    cap = KVM_CAP_DIRTY_LOG_RING;
    max_bytes = TRY(check_extension(cap));
  }
  if (max_bytes == 0) return fail("enable dirty ring: KVM_CAP_DIRTY_LOG_RING is not supported");
  if (bytes > static_cast<uint32_t>(max_bytes)) {
    return fail(format("enable dirty ring of %u bytes: host maximum is %d", bytes, max_bytes));
  }
  uint64_t args[] = {bytes};
  TRY_VOID(enable_cap(static_cast<uint32_t>(cap), args));
  dirty_ring_bytes_ = bytes;
  return {};
}

Result<uint32_t> Vm::reset_dirty_rings() {
  int reset = TRY(checked_ioctl(fd_.get(), KVM_RESET_DIRTY_RINGS, 0, "KVM_RESET_DIRTY_RINGS"));
  return static_cast<uint32_t>(reset);
}

}  // namespace godwit::kvm
