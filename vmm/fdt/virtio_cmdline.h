// The Linux command-line announcement of virtio-mmio devices, for kernels
// built without device-tree support (CONFIG_VIRTIO_MMIO_CMDLINE_DEVICES):
// one "virtio_mmio.device=SIZE@ADDR:IRQ" per device, generated from the same
// MachineDescription as the device tree so the two cannot disagree.
#pragma once

#include <string>
#include <string_view>

#include "vmm/fdt/machine_description.h"

namespace godwit::fdt {

/// "4K", "2M", "1G", or plain bytes ("1536"): a size as Linux's memparse reads it.
[[nodiscard]] std::string linux_size_text(uint64_t bytes);

/// "virtio_mmio.device=4K@0xd0001000:5 virtio_mmio.device=4K@0xd0002000:6",
/// in device order; empty without virtio devices.
[[nodiscard]] std::string virtio_mmio_cmdline(const MachineDescription& machine);

/// `cmdline` followed by virtio_mmio_cmdline(machine), separated by one space
/// (no stray spaces when either part is empty).
[[nodiscard]] std::string append_virtio_mmio_cmdline(std::string_view cmdline,
                                                     const MachineDescription& machine);

}  // namespace godwit::fdt
