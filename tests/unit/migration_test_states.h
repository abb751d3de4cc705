// Sample values of every saved state type for the migration tests: a hand
// built "golden" state with its expected bytes spelled out (independently of
// the codec: a plain little-endian byte builder), and two states A and B that
// differ in every encoded field. The KVM structs of A and B are filled with
// pseudo-random bytes over their whole size and then only the fields the
// format deliberately does not save (padding, reserved) are zeroed, so an
// encoder that forgets a named field fails the round trip.
//
// TestStates<T> is undefined for a type that has no samples: adding a type
// to the typed test list without samples does not compile.
#pragma once

#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "migration/state_codecs.h"

namespace godwit::migration::test {

/// Little-endian byte builder for expected bytes (deliberately not SectionWriter).
struct Bytes {
  std::vector<uint8_t> v;
  Bytes& raw(std::initializer_list<uint8_t> b) {
    v.insert(v.end(), b);
    return *this;
  }
  Bytes& le(uint64_t x, int width) {
    for (int i = 0; i < width; ++i) v.push_back(static_cast<uint8_t>(x >> (8 * i)));
    return *this;
  }
  Bytes& u8(uint8_t x) { return le(x, 1); }
  Bytes& u16(uint16_t x) { return le(x, 2); }
  Bytes& u32(uint32_t x) { return le(x, 4); }
  Bytes& u64(uint64_t x) { return le(x, 8); }
  Bytes& zeros(size_t n) {
    v.insert(v.end(), n, 0);
    return *this;
  }
  Bytes& text(const std::string& s) {
    u32(static_cast<uint32_t>(s.size()));
    v.insert(v.end(), s.begin(), s.end());
    return *this;
  }
};

/// Fills every byte of a trivially copyable value from `rng`.
template <typename T>
void fill_random(T& value, std::mt19937& rng) {
  static_assert(std::is_trivially_copyable_v<T>);
  auto* p = reinterpret_cast<uint8_t*>(&value);
  for (size_t i = 0; i < sizeof(T); ++i) p[i] = static_cast<uint8_t>(rng());
}

/// A vCPU state with every saved field random and every unsaved field zero.
inline kvm::VcpuState random_vcpu_state(uint32_t seed, bool with_fpu) {
  std::mt19937 rng(seed);
  kvm::VcpuState s;
  fill_random(s.regs, rng);
  fill_random(s.sregs2, rng);
  for (kvm_segment* seg : {&s.sregs2.cs, &s.sregs2.ds, &s.sregs2.es, &s.sregs2.fs, &s.sregs2.gs,
                           &s.sregs2.ss, &s.sregs2.tr, &s.sregs2.ldt})
    seg->padding = 0;
  for (kvm_dtable* t : {&s.sregs2.gdt, &s.sregs2.idt})
    std::memset(t->padding, 0, sizeof t->padding);
  s.xsave.resize(64 + seed % 7);
  for (auto& b : s.xsave) b = static_cast<uint8_t>(rng());
  if (with_fpu) {
    kvm_fpu f;
    fill_random(f, rng);
    f.pad1 = 0;
    f.pad2 = 0;
    s.fpu = f;
  }
  kvm_xcrs x{};
  x.flags = static_cast<uint32_t>(rng());
  x.nr_xcrs = 1 + seed % 3;
  for (uint32_t i = 0; i < x.nr_xcrs; ++i) {
    x.xcrs[i].xcr = static_cast<uint32_t>(rng());
    x.xcrs[i].value = (static_cast<uint64_t>(rng()) << 32) | rng();
  }
  s.xcrs = x;
  s.msrs.resize(2 + seed % 3);
  for (auto& m : s.msrs) {
    fill_random(m, rng);
    m.reserved = 0;
  }
  fill_random(s.lapic, rng);
  fill_random(s.events, rng);
  s.events.nmi.pad = 0;
  std::memset(s.events.reserved, 0, sizeof s.events.reserved);
  fill_random(s.mp_state, rng);
  fill_random(s.debugregs, rng);
  std::memset(s.debugregs.reserved, 0, sizeof s.debugregs.reserved);
  return s;
}

/// A VM-wide state with every saved field random and every unsaved field zero.
inline kvm::VmState random_vm_state(uint32_t seed) {
  std::mt19937 rng(seed);
  kvm::VmState s;
  s.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
  fill_random(s.pic_master.chip.pic, rng);
  s.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
  fill_random(s.pic_slave.chip.pic, rng);
  s.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
  fill_random(s.ioapic.chip.ioapic, rng);
  s.ioapic.chip.ioapic.pad = 0;
  fill_random(s.pit, rng);
  std::memset(s.pit.reserved, 0, sizeof s.pit.reserved);
  fill_random(s.clock, rng);
  s.clock.pad0 = 0;
  std::memset(s.clock.pad, 0, sizeof s.clock.pad);
  return s;
}

/// Sample values and golden bytes of T (specialised per type).
template <typename T>
struct TestStates;

template <>
struct TestStates<SerialState> {
  static SerialState golden() {
    return {.divisor_low = 0x01,
            .divisor_high = 0x02,
            .interrupt_enable = 0x03,
            .fifo_control = 0xc1,
            .line_control = 0x1b,
            .modem_control = 0x0b,
            .line_status = 0x61,
            .modem_status = 0xb0,
            .scratch = 0x5a,
            .thr_empty_pending = true,
            .rx_fifo = {0x41, 0x42}};
  }
  static std::vector<uint8_t> golden_bytes() {
    return {0x01, 0x02, 0x03, 0xc1, 0x1b, 0x0b, 0x61, 0xb0, 0x5a,  // registers DLL..SCR
            0x01,                                                  // thr_empty_pending
            0x02, 0x00, 0x00, 0x00, 0x41, 0x42};                   // rx_fifo
  }
  static SerialState a() { return golden(); }
  static SerialState b() {
    return {.divisor_low = 0x10,
            .divisor_high = 0x20,
            .interrupt_enable = 0x0f,
            .fifo_control = 0x07,
            .line_control = 0x83,
            .modem_control = 0x1f,
            .line_status = 0x62,
            .modem_status = 0x0f,
            .scratch = 0xa5,
            .thr_empty_pending = false,
            .rx_fifo = {1, 2, 3}};
  }
};

template <>
struct TestStates<virtio::QueueState> {
  static virtio::QueueState golden() {
    return {.size = 0x0100,
            .ready = true,
            .desc_table = 0x1000,
            .avail_ring = 0x2000,
            .used_ring = 0x3000,
            .last_avail_idx = 7,
            .next_used_idx = 6,
            .signalled_used_idx = 5,
            .event_idx = true,
            .indirect = false,
            .broken = true,
            .broken_reason = "bad"};
  }
  static std::vector<uint8_t> golden_bytes() {
    return {0x00, 0x01,                                      // size
            0x01,                                            // ready
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // desc_table
            0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // avail_ring
            0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  // used_ring
            0x07, 0x00, 0x06, 0x00, 0x05, 0x00,              // last_avail, next_used, signalled
            0x01, 0x00, 0x01,                                // event_idx, indirect, broken
            0x03, 0x00, 0x00, 0x00, 'b',  'a',  'd'};        // broken_reason
  }
  static virtio::QueueState a() { return golden(); }
  static virtio::QueueState b() {
    return {.size = 0x80,
            .ready = false,
            .desc_table = 0x11000,
            .avail_ring = 0x12000,
            .used_ring = 0x13000,
            .last_avail_idx = 70,
            .next_used_idx = 60,
            .signalled_used_idx = 50,
            .event_idx = false,
            .indirect = true,
            .broken = false,
            .broken_reason = ""};
  }
};

template <>
struct TestStates<virtio::DeviceState> {
  static virtio::DeviceState golden() { return {.device_id = 2, .data = {0xde, 0xad}}; }
  static std::vector<uint8_t> golden_bytes() {
    return {0x02, 0x00, 0x00, 0x00,  // device_id
            0x02, 0x00, 0x00, 0x00, 0xde, 0xad};
  }
  static virtio::DeviceState a() { return golden(); }
  static virtio::DeviceState b() { return {.device_id = 4, .data = {1, 2, 3, 4, 5}}; }
};

template <>
struct TestStates<virtio::MmioTransportState> {
  static virtio::MmioTransportState golden() {
    virtio::QueueState q = TestStates<virtio::QueueState>::golden();
    q.broken = false;
    q.broken_reason = "";
    return {.status = 0x0f,
            .device_features_sel = 1,
            .driver_features_sel = 0,
            .driver_features = 0x0000000130000000,
            .queue_sel = 0,
            .interrupt_status = 1,
            .config_generation = 3,
            .device_active = true,
            .needs_reset_reason = "",
            .queues = {q},
            .device = TestStates<virtio::DeviceState>::golden()};
  }
  static std::vector<uint8_t> golden_bytes() {
    return {0x0f, 0x00, 0x00, 0x00,                          // status
            0x01, 0x00, 0x00, 0x00,                          // device_features_sel
            0x00, 0x00, 0x00, 0x00,                          // driver_features_sel
            0x00, 0x00, 0x00, 0x30, 0x01, 0x00, 0x00, 0x00,  // driver_features
            0x00, 0x00, 0x00, 0x00,                          // queue_sel
            0x01, 0x00, 0x00, 0x00,                          // interrupt_status
            0x03, 0x00, 0x00, 0x00,                          // config_generation
            0x01,                                            // device_active
            0x00, 0x00, 0x00, 0x00,                          // needs_reset_reason ""
            0x01, 0x00, 0x00, 0x00,                          // 1 queue:
            0x00, 0x01, 0x01,                                //   size, ready
            0x00, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //   desc_table
            0x00, 0x20, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //   avail_ring
            0x00, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,  //   used_ring
            0x07, 0x00, 0x06, 0x00, 0x05, 0x00,              //   indexes
            0x01, 0x00, 0x00,                                //   event_idx, indirect, broken
            0x00, 0x00, 0x00, 0x00,                          //   broken_reason ""
            0x02, 0x00, 0x00, 0x00,                          // device: device_id
            0x02, 0x00, 0x00, 0x00, 0xde, 0xad};             //         data
  }
  static virtio::MmioTransportState a() { return golden(); }
  static virtio::MmioTransportState b() {
    return {.status = 0x4f,
            .device_features_sel = 0,
            .driver_features_sel = 1,
            .driver_features = 0x100000000,
            .queue_sel = 1,
            .interrupt_status = 2,
            .config_generation = 9,
            .device_active = false,
            .needs_reset_reason = "queue 1 broken",
            .queues = {TestStates<virtio::QueueState>::b(), TestStates<virtio::QueueState>::b()},
            .device = TestStates<virtio::DeviceState>::b()};
  }
};

template <>
struct TestStates<kvm::VcpuState> {
  static kvm::VcpuState golden() {
    kvm::VcpuState s;
    s.regs.rax = 0x0102030405060708;
    s.regs.rip = 0xfff0;
    s.regs.rflags = 0x2;
    s.sregs2.cs = {.base = 0xffff0000,
                   .limit = 0xffff,
                   .selector = 0xf000,
                   .type = 0xb,
                   .present = 1,
                   .dpl = 0,
                   .db = 0,
                   .s = 1,
                   .l = 0,
                   .g = 0,
                   .avl = 0,
                   .unusable = 0,
                   .padding = 0};
    s.sregs2.gdt = {.base = 0x500, .limit = 0x27, .padding = {}};
    s.sregs2.cr0 = 0x60000010;
    s.sregs2.efer = 0x500;
    s.sregs2.apic_base = 0xfee00900;
    s.sregs2.pdptrs[3] = 0xabc;
    s.xsave = {1, 2, 3, 4};
    kvm_xcrs x{};
    x.nr_xcrs = 1;
    x.xcrs[0].xcr = 0;
    x.xcrs[0].value = 7;
    s.xcrs = x;
    s.msrs = {kvm_msr_entry{.index = 0x10, .reserved = 0, .data = 0x1234}};
    s.lapic.regs[0x20] = 0x01;
    s.events.nmi.masked = 1;
    s.events.flags = 0x4;
    s.mp_state.mp_state = KVM_MP_STATE_HALTED;
    s.debugregs.dr6 = 0xffff0ff0;
    s.debugregs.dr7 = 0x400;
    return s;
  }
  static std::vector<uint8_t> golden_bytes() {
    Bytes b;
    // regs: rax pinned byte by byte, then rbx..r15 zero, rip, rflags
    b.raw({0x08, 0x07, 0x06, 0x05, 0x04, 0x03, 0x02, 0x01}).zeros(15 * 8).u64(0xfff0).u64(0x2);
    // sregs2.cs: base, limit, selector, type present dpl db s l g avl unusable
    b.raw({0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00}).u32(0xffff).u16(0xf000);
    b.raw({0x0b, 0x01, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00});
    b.zeros(7 * 23);                                      // ds es fs gs ss tr ldt
    b.u64(0x500).u16(0x27);                               // gdt
    b.zeros(10);                                          // idt
    b.u64(0x60000010).zeros(4 * 8);                       // cr0, cr2 cr3 cr4 cr8
    b.u64(0x500).u64(0xfee00900).u64(0);                  // efer, apic_base, flags
    b.zeros(3 * 8).u64(0xabc);                            // pdptrs
    b.u32(4).raw({1, 2, 3, 4});                           // xsave
    b.u8(0);                                              // no fpu
    b.u8(1).u32(0).u32(1).u32(0).u64(7);                  // xcrs: present, flags, count, {xcr0 = 7}
    b.u32(1).u32(0x10).u64(0x1234);                       // msrs
    b.u32(1024).zeros(0x20).u8(0x01).zeros(1024 - 0x21);  // lapic page
    b.zeros(8).zeros(4);                                  // events: exception, interrupt
    b.raw({0x00, 0x00, 0x01});                            // nmi injected pending masked
    b.u32(0).u32(0x4);                                    // sipi_vector, flags
    b.zeros(4).u8(0).u8(0).u64(0);                        // smi, triple_fault, has_payload, payload
    b.u32(KVM_MP_STATE_HALTED);
    b.zeros(4 * 8).u64(0xffff0ff0).u64(0x400).u64(0);  // debugregs db[4], dr6, dr7, flags
    return b.v;
  }
  static kvm::VcpuState a() { return random_vcpu_state(1, true); }
  static kvm::VcpuState b() { return random_vcpu_state(2, false); }
};

template <>
struct TestStates<kvm::VmState> {
  static kvm::VmState golden() {
    kvm::VmState s;
    s.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
    s.pic_master.chip.pic.imr = 0xfb;
    s.pic_master.chip.pic.irq_base = 0x20;
    s.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    s.pic_slave.chip.pic.elcr_mask = 0xde;
    s.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    s.ioapic.chip.ioapic.base_address = 0xfec00000;
    s.ioapic.chip.ioapic.id = 1;
    s.ioapic.chip.ioapic.redirtbl[4].bits = 0x0100000000010034;
    s.pit.channels[0].count = 0x10000;
    s.pit.channels[0].mode = 2;
    s.pit.channels[2].count_load_time = -2;
    s.pit.flags = 1;
    s.clock.clock = 0x123456789;
    s.clock.flags = KVM_CLOCK_TSC_STABLE;
    return s;
  }
  static std::vector<uint8_t> golden_bytes() {
    Bytes b;
    // PIC master: chip 0, last_irr irr imr isr priority_add irq_base ... elcr_mask
    b.u32(0).raw({0x00, 0x00, 0xfb, 0x00, 0x00, 0x20}).zeros(10);
    b.u32(1).zeros(15).u8(0xde);  // PIC slave
    // IOAPIC: chip 2, base_address, ioregsel, id, irr, 24 redirection entries
    b.u32(2).raw({0x00, 0x00, 0xc0, 0xfe, 0x00, 0x00, 0x00, 0x00}).u32(0).u32(1).u32(0);
    b.zeros(4 * 8).raw({0x34, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01}).zeros(19 * 8);
    // PIT channels: count, latched_count, 10 bytes, count_load_time
    b.u32(0x10000).u16(0).zeros(7).u8(2).zeros(2).u64(0);
    b.u32(0).u16(0).zeros(10).u64(0);
    b.u32(0).u16(0).zeros(10).raw({0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff});
    b.u32(1);                                                    // PIT flags
    b.u64(0x123456789).u32(KVM_CLOCK_TSC_STABLE).u64(0).u64(0);  // clock
    return b.v;
  }
  static kvm::VmState a() { return random_vm_state(1); }
  static kvm::VmState b() { return random_vm_state(2); }
};

}  // namespace godwit::migration::test
