// Flat GDT descriptors and their KVM segment-register equivalents.
#include "vmm/boot/gdt.h"

#include "vmm/boot/boot_layout.h"

namespace godwit::boot {
namespace {

constexpr uint8_t kTypeCodeExecReadAccessed = 0xb;
constexpr uint8_t kTypeDataReadWriteAccessed = 0x3;

kvm_segment flat_segment(uint16_t selector, uint8_t type) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = type;
  s.present = 1;
  s.dpl = 0;
  s.db = 1;
  s.s = 1;
  s.l = 0;
  s.g = 1;
  return s;
}

}  // namespace

kvm_segment flat_code_segment(CpuMode mode) {
  kvm_segment s = flat_segment(kCodeSelector, kTypeCodeExecReadAccessed);
  if (mode == CpuMode::long64) {
    s.l = 1;
    s.db = 0;  // L=1 requires D=0
  }
  return s;
}

kvm_segment flat_data_segment() { return flat_segment(kDataSelector, kTypeDataReadWriteAccessed); }

uint64_t encode_descriptor(const kvm_segment& s) {
  uint64_t limit = s.g ? (uint64_t{s.limit} >> 12) : s.limit;
  uint64_t base = s.base;
  uint64_t d = 0;
  d |= limit & 0xffff;
  d |= (base & 0xffffff) << 16;
  d |= uint64_t{s.type & 0xfu} << 40;
  d |= uint64_t{s.s & 1u} << 44;
  d |= uint64_t{s.dpl & 3u} << 45;
  d |= uint64_t{s.present & 1u} << 47;
  d |= ((limit >> 16) & 0xf) << 48;
  d |= uint64_t{s.avl & 1u} << 52;
  d |= uint64_t{s.l & 1u} << 53;
  d |= uint64_t{s.db & 1u} << 54;
  d |= uint64_t{s.g & 1u} << 55;
  d |= ((base >> 24) & 0xff) << 56;
  return d;
}

std::array<uint64_t, 4> boot_gdt(CpuMode mode) {
  static_assert(kCodeSelector == 2 * 8 && kDataSelector == 3 * 8 && kGdtEntries == 4);
  return {0, 0, encode_descriptor(flat_code_segment(mode)), encode_descriptor(flat_data_segment())};
}

Result<void> write_boot_gdt(GuestMemory& memory, CpuMode mode) {
  auto gdt = boot_gdt(mode);
  auto written = memory.write_obj(kGdtAddr, gdt);
  if (!written) return fail(written.error().context("writing the boot GDT at 0x500"));
  return {};
}

}  // namespace godwit::boot
