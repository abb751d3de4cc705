// Writes the device tree with libfdt's sequential-write API. The blob size is
// not known in advance: the writer starts with a small buffer and starts over
// with twice the space whenever libfdt reports FDT_ERR_NOSPACE.
#include "vmm/fdt/fdt_builder.h"

#include <libfdt.h>

#include <initializer_list>
#include <string_view>

#include "vmm/fdt/hex_text.h"

namespace godwit::fdt {
namespace {

constexpr size_t kInitialBufferSize = 4096;

/// Sequential writer that remembers the first libfdt error and where it
/// happened; every call after an error does nothing, so the tree-building
/// code reads as a plain list of nodes and properties.
class TreeWriter {
 public:
  explicit TreeWriter(std::vector<uint8_t>& buffer) : fdt_(buffer.data()) {
    check(fdt_create(fdt_, static_cast<int>(buffer.size())), "fdt_create");
    if (ok()) check(fdt_finish_reservemap(fdt_), "fdt_finish_reservemap");
  }

  /// libfdt's error code (negative) or 0.
  [[nodiscard]] int error() const { return error_; }
  /// The call that failed, with its node and property.
  [[nodiscard]] const std::string& where() const { return where_; }

  void begin_node(const std::string& name) {
    node_ = name.empty() ? "/" : name;
    property_.clear();
    if (ok()) check(fdt_begin_node(fdt_, name.c_str()), "fdt_begin_node");
  }
  void end_node() {
    property_.clear();
    if (ok()) check(fdt_end_node(fdt_), "fdt_end_node");
  }
  void finish() {
    if (ok()) check(fdt_finish(fdt_), "fdt_finish");
  }

  /// A property without a value ("interrupt-controller;").
  void empty(const char* name) { raw(name, nullptr, 0); }
  /// A NUL-terminated string.
  void string(const char* name, std::string_view value) {
    std::string bytes(value);
    raw(name, bytes.c_str(), bytes.size() + 1);
  }
  /// A string list ("compatible = "a", "b";").
  void strings(const char* name, std::initializer_list<std::string_view> values) {
    std::string bytes;
    for (std::string_view value : values) {
      bytes.append(value);
      bytes.push_back('\0');
    }
    raw(name, bytes.data(), bytes.size());
  }
  /// 32-bit big-endian cells.
  void cells(const char* name, std::initializer_list<uint32_t> values) {
    std::vector<fdt32_t> big_endian;
    for (uint32_t value : values) big_endian.push_back(cpu_to_fdt32(value));
    raw(name, big_endian.data(), big_endian.size() * sizeof(fdt32_t));
  }
  /// "reg" with #address-cells = #size-cells = 2.
  void reg(uint64_t address, uint64_t size) {
    fdt64_t big_endian[2] = {cpu_to_fdt64(address), cpu_to_fdt64(size)};
    raw("reg", big_endian, sizeof big_endian);
  }

 private:
  [[nodiscard]] bool ok() const { return error_ == 0; }
  void raw(const char* name, const void* value, size_t length) {
    if (!ok()) return;
    property_ = name;
    check(fdt_property(fdt_, name, value, static_cast<int>(length)), "fdt_property");
  }
  void check(int rc, const char* call) {
    if (rc >= 0 || !ok()) return;
    error_ = rc;
    where_ = std::string(call) + " (node " + node_ + (property_.empty() ? "" : ", property ") +
             property_ + ")";
  }

  void* fdt_;
  int error_ = 0;
  std::string where_;
  std::string node_ = "(header)";
  std::string property_;
};

/// The two cells of an IOAPIC interrupt specifier.
void interrupt(TreeWriter& w, uint32_t pin, InterruptSense sense) {
  w.cells("interrupts", {pin, static_cast<uint32_t>(sense)});
  w.cells("interrupt-parent", {kIoapicPhandle});
}

void write_cpus(TreeWriter& w, uint32_t vcpus) {
  w.begin_node("cpus");
  w.cells("#address-cells", {1});
  w.cells("#size-cells", {0});
  for (uint32_t apic_id = 0; apic_id < vcpus; ++apic_id) {
    w.begin_node("cpu@" + hex_digits(apic_id));
    w.string("device_type", "cpu");
    w.cells("reg", {apic_id});
    w.end_node();
  }
  w.end_node();
}

void write_interrupt_controllers(TreeWriter& w, const MachineDescription& machine) {
  w.begin_node("interrupt-controller@" + hex_digits(machine.ioapic_base));
  w.string("compatible", kIoapicCompatible);
  w.reg(machine.ioapic_base, kApicWindowSize);
  w.empty("interrupt-controller");
  w.cells("#interrupt-cells", {2});
  w.cells("phandle", {kIoapicPhandle});
  w.end_node();

  w.begin_node("interrupt-controller@" + hex_digits(machine.lapic_base));
  w.string("compatible", kLapicCompatible);
  w.reg(machine.lapic_base, kApicWindowSize);
  w.empty("interrupt-controller");
  w.cells("#interrupt-cells", {2});
  w.cells("phandle", {kLapicPhandle});
  w.end_node();
}

void write_platform_devices(TreeWriter& w, const MachineDescription& machine) {
  // reg of the UART is a range of x86 I/O ports, not memory: the compatible
  // is godwit's own so that no OS driver maps it as MMIO.
  w.begin_node("serial@" + hex_digits(machine.uart.port));
  w.string("compatible", kSerialCompatible);
  w.string("device_type", "serial");
  w.reg(machine.uart.port, machine.uart.ports);
  w.cells("clock-frequency", {kUartClockHz});
  interrupt(w, machine.uart.irq, InterruptSense::edge_rising);
  w.end_node();

  w.begin_node("testdev@" + hex_digits(machine.testdev_base));
  w.string("compatible", kTestdevCompatible);
  w.reg(machine.testdev_base, machine.testdev_size);
  w.end_node();

  for (const VirtioMmioDevice& device : machine.virtio_devices) {
    w.begin_node("virtio_mmio@" + hex_digits(device.base));
    w.string("compatible", kVirtioMmioCompatible);
    w.reg(device.base, device.size);
    interrupt(w, device.irq, device.sense);
    w.string(kDeviceTypeProperty, device.type);
    w.end_node();
  }
}

void write_tree(TreeWriter& w, const MachineDescription& machine) {
  w.begin_node("");
  w.string("compatible", kMachineCompatible);
  w.string("model", "godwit microVM");
  w.cells("#address-cells", {2});
  w.cells("#size-cells", {2});
  w.cells("interrupt-parent", {kIoapicPhandle});

  w.begin_node("chosen");
  if (!machine.bootargs.empty()) w.string("bootargs", machine.bootargs);
  w.end_node();

  for (const MemoryRange& range : machine.memory) {
    w.begin_node("memory@" + hex_digits(range.gpa));
    w.string("device_type", "memory");
    w.reg(range.gpa, range.size);
    w.end_node();
  }
  write_cpus(w, machine.vcpus);
  write_interrupt_controllers(w, machine);
  write_platform_devices(w, machine);
  w.end_node();
  w.finish();
}

}  // namespace

Result<std::vector<uint8_t>> build_fdt(const MachineDescription& machine) {
  if (auto valid = validate(machine); !valid)
    return fail(valid.error().context("building the FDT"));
  for (size_t capacity = kInitialBufferSize; capacity <= kMaxFdtBlobSize; capacity *= 2) {
    std::vector<uint8_t> blob(capacity);
    TreeWriter writer(blob);
    write_tree(writer, machine);
    if (writer.error() == -FDT_ERR_NOSPACE) continue;
    if (writer.error() != 0)
      return fail("building the FDT: " + writer.where() + ": " + fdt_strerror(writer.error()));
    blob.resize(fdt_totalsize(blob.data()));
    if (int rc = fdt_check_full(blob.data(), blob.size()); rc != 0)
      return fail(std::string("building the FDT: the finished blob fails fdt_check_full: ") +
                  fdt_strerror(rc));
    return blob;
  }
  return fail("building the FDT: the tree needs more than " + std::to_string(kMaxFdtBlobSize) +
              " bytes");
}

std::string virtio_mmio_node_path(const VirtioMmioDevice& device) {
  return "/virtio_mmio@" + hex_digits(device.base);
}

std::string memory_node_path(const MemoryRange& range) {
  return "/memory@" + hex_digits(range.gpa);
}

}  // namespace godwit::fdt
