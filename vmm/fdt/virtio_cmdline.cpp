// Formats the virtio_mmio.device= kernel parameters.
#include "vmm/fdt/virtio_cmdline.h"

#include "vmm/fdt/hex_text.h"

namespace godwit::fdt {

std::string linux_size_text(uint64_t bytes) {
  if (bytes != 0 && bytes % kGiB == 0) return std::to_string(bytes / kGiB) + "G";
  if (bytes != 0 && bytes % kMiB == 0) return std::to_string(bytes / kMiB) + "M";
  if (bytes != 0 && bytes % 1024 == 0) return std::to_string(bytes / 1024) + "K";
  return std::to_string(bytes);
}

std::string virtio_mmio_cmdline(const MachineDescription& machine) {
  std::string text;
  for (const VirtioMmioDevice& device : machine.virtio_devices) {
    if (!text.empty()) text += ' ';
    text += "virtio_mmio.device=" + linux_size_text(device.size) + "@" + hex(device.base) + ":" +
            std::to_string(device.irq);
  }
  return text;
}

std::string append_virtio_mmio_cmdline(std::string_view cmdline,
                                       const MachineDescription& machine) {
  std::string result(cmdline);
  std::string devices = virtio_mmio_cmdline(machine);
  if (!result.empty() && !devices.empty()) result += ' ';
  return result + devices;
}

}  // namespace godwit::fdt
