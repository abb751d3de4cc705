// Builds the Intel MP floating pointer and configuration table.
#include "vmm/boot/mptable.h"

#include <cstring>
#include <string>

#include "vmm/boot/boot_layout.h"
#include "vmm/boot/guest_range.h"

namespace godwit::boot {
namespace {

constexpr uint8_t kEntryProcessor = 0;
constexpr uint8_t kEntryBus = 1;
constexpr uint8_t kEntryIoapic = 2;
constexpr uint8_t kEntryIoInterrupt = 3;
constexpr uint8_t kEntryLocalInterrupt = 4;
constexpr uint8_t kInterruptInt = 0;
constexpr uint8_t kInterruptNmi = 1;
constexpr uint8_t kInterruptExtInt = 3;
constexpr uint8_t kCpuEnabled = 1;
constexpr uint8_t kCpuBootProcessor = 2;
constexpr uint8_t kLapicVersion = 0x14;
constexpr uint8_t kIoapicVersion = 0x11;
constexpr uint8_t kSpecRevision = 4;  // MP spec 1.4
// Every pin of the in-kernel IOAPIC: ISA IRQs 0-15 and the virtio-mmio
// devices on GSI 5 and up (pins 16-23 included), identity-mapped.
constexpr unsigned kIoapicPins = 24;
constexpr uint64_t kFloatingPointerSize = 16;
constexpr uint64_t kConfigHeaderSize = 44;

// Little-endian byte appender.
class ByteWriter {
 public:
  void u8(uint8_t v) { bytes_.push_back(v); }
  void u16(uint16_t v) {
    for (int i = 0; i < 2; ++i) u8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void u32(uint32_t v) {
    for (int i = 0; i < 4; ++i) u8(static_cast<uint8_t>(v >> (8 * i)));
  }
  void text(const char* s, size_t width) {
    size_t n = std::strlen(s);
    for (size_t i = 0; i < width; ++i) u8(i < n ? static_cast<uint8_t>(s[i]) : ' ');
  }
  void zeros(size_t n) { bytes_.insert(bytes_.end(), n, 0); }
  std::vector<uint8_t>& bytes() { return bytes_; }

 private:
  std::vector<uint8_t> bytes_;
};

// The value that makes the bytes [first, first + size) sum to zero.
uint8_t checksum(const std::vector<uint8_t>& bytes, size_t first, size_t size) {
  uint8_t sum = 0;
  for (size_t i = first; i < first + size; ++i) sum = static_cast<uint8_t>(sum + bytes[i]);
  return static_cast<uint8_t>(-sum);
}

void interrupt_entry(ByteWriter& w, uint8_t entry_type, uint8_t interrupt_type, uint8_t bus_irq,
                     uint8_t destination, uint8_t pin) {
  w.u8(entry_type);
  w.u8(interrupt_type);
  w.u16(0);  // polarity and trigger mode conform to the bus
  w.u8(0);   // source bus id
  w.u8(bus_irq);
  w.u8(destination);
  w.u8(pin);
}

}  // namespace

Result<std::vector<uint8_t>> build_mp_table(uint64_t base, unsigned vcpus) {
  if (vcpus == 0 || vcpus > kMpMaxVcpus)
    return fail("building the MP table: " + std::to_string(vcpus) + " vCPUs (1.." +
                std::to_string(kMpMaxVcpus) + " supported)");
  const uint8_t ioapic_id = static_cast<uint8_t>(vcpus);
  const uint64_t config_addr = base + kFloatingPointerSize;

  ByteWriter w;
  // Floating pointer.
  w.text("_MP_", 4);
  w.u32(static_cast<uint32_t>(config_addr));
  w.u8(1);  // length in 16-byte units
  w.u8(kSpecRevision);
  w.u8(0);     // checksum, below
  w.zeros(5);  // feature bytes: 0 = configuration table present; no IMCR (virtual wire)

  // Configuration table header; length, count and checksum patched below.
  const size_t header = w.bytes().size();
  w.text("PCMP", 4);
  w.u16(0);
  w.u8(kSpecRevision);
  w.u8(0);
  w.text("GODWIT", 8);
  w.text("VIRTUAL", 12);
  w.u32(0);  // OEM table pointer
  w.u16(0);  // OEM table size
  w.u16(0);  // entry count
  w.u32(kMpLapicAddr);
  w.u16(0);  // extended table length
  w.u8(0);   // extended table checksum
  w.u8(0);
  uint16_t entries = 0;

  for (unsigned cpu = 0; cpu < vcpus; ++cpu, ++entries) {
    w.u8(kEntryProcessor);
    w.u8(static_cast<uint8_t>(cpu));  // APIC ID
    w.u8(kLapicVersion);
    w.u8(kCpuEnabled | (cpu == 0 ? kCpuBootProcessor : 0));
    w.u32(0x600);  // CPU signature: family 6
    w.u32(0x201);  // feature flags: FPU, APIC
    w.zeros(8);
  }
  w.u8(kEntryBus);
  w.u8(0);
  w.text("ISA", 6);
  ++entries;
  w.u8(kEntryIoapic);
  w.u8(ioapic_id);
  w.u8(kIoapicVersion);
  w.u8(1);  // enabled
  w.u32(kMpIoapicAddr);
  ++entries;
  for (unsigned irq = 0; irq < kIoapicPins; ++irq, ++entries)
    interrupt_entry(w, kEntryIoInterrupt, kInterruptInt, static_cast<uint8_t>(irq), ioapic_id,
                    static_cast<uint8_t>(irq));
  interrupt_entry(w, kEntryLocalInterrupt, kInterruptExtInt, 0, 0xff, 0);  // LINT0
  interrupt_entry(w, kEntryLocalInterrupt, kInterruptNmi, 0, 0xff, 1);     // LINT1
  entries += 2;

  std::vector<uint8_t>& bytes = w.bytes();
  const uint16_t length = static_cast<uint16_t>(bytes.size() - header);
  bytes[header + 4] = static_cast<uint8_t>(length);
  bytes[header + 5] = static_cast<uint8_t>(length >> 8);
  bytes[header + 34] = static_cast<uint8_t>(entries);
  bytes[header + 35] = static_cast<uint8_t>(entries >> 8);
  bytes[header + 7] = checksum(bytes, header, length);
  bytes[10] = checksum(bytes, 0, kFloatingPointerSize);
  static_assert(kConfigHeaderSize == 44);
  return bytes;
}

Result<void> write_mp_table(GuestMemory& memory, unsigned vcpus) {
  auto bytes = build_mp_table(kMpTableAddr, vcpus);
  if (!bytes) return fail(bytes.error());
  if (kMpTableAddr + bytes->size() > kMpTableEnd)
    return fail("MP table of " + std::to_string(bytes->size()) + " bytes does not fit below 1 MiB");
  if (auto r = memory.write(kMpTableAddr, *bytes); !r)
    return fail(r.error().context("writing the MP table at " + hex(kMpTableAddr)));
  return {};
}

}  // namespace godwit::boot
