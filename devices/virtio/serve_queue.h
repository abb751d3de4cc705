// The request loop shared by devices that complete every chain in order:
// pop each available chain, let the device serve it (returning the used
// length), publish it, and signal the driver once at the end if it wants an
// interrupt. A broken ring or a device error stops the loop, but the chains
// completed before it still get their interrupt.
#pragma once

#include <cstdint>
#include <utility>

#include "base/result.h"
#include "devices/virtio/device.h"
#include "devices/virtio/queue.h"

namespace godwit::virtio {

/// Serves every available chain of `queue` with `serve(const DescriptorChain&)
/// -> Result<uint32_t>` (the used length); returns the first error.
template <typename ServeChain>
[[nodiscard]] Result<void> serve_available_chains(Queue& queue, VirtioInterrupt& interrupt,
                                                  ServeChain&& serve) {
  Result<void> outcome{};
  while (true) {
    auto chain = queue.pop();
    if (!chain) {
      outcome = fail(chain.error());
      break;
    }
    if (!*chain) break;
    auto used_len = serve(**chain);
    if (!used_len) {
      outcome = fail(used_len.error());
      break;
    }
    if (auto r = queue.add_used((*chain)->head, *used_len); !r) {
      outcome = fail(r.error());
      break;
    }
  }
  auto notify = queue.needs_notification();
  if (!notify) return fail(notify.error());
  if (*notify) interrupt.signal_used_buffer();
  return outcome;
}

}  // namespace godwit::virtio
