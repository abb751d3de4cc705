// godwit --restore DIR: builds the VM a snapshot describes and loads its
// state, eagerly (every page read before the vCPUs start) or lazily (guest
// RAM filled on first touch through userfaultfd, plus a prefetcher).
//
// Everything that can be checked before guest memory is touched is checked
// first, so a damaged or foreign snapshot fails with a message naming the
// file and what is wrong: the manifest (format, version, checksum), the
// configuration, the memory chain (every file's metadata, the parent links),
// the state stream (every section's checksum, kind and version), and the
// host (memory, vCPUs, TSC rate). Snapshot files are only ever opened
// read-only.
#pragma once

#include <chrono>
#include <functional>
#include <memory>

#include "base/result.h"
#include "snapshot/lazy_memory.h"
#include "snapshot/manifest.h"
#include "vmm/config.h"
#include "vmm/machine.h"

namespace godwit {

/// A restored VM, created and loaded but not started.
struct RestoredVm {
  std::unique_ptr<Machine> machine;
  /// Lazy restores only; destroyed before the machine (declared after it).
  std::unique_ptr<snapshot::LazyMemoryLoader> lazy;
  snapshot::Manifest manifest;
};

/// Builds and loads the VM of `request.dir`. `on_memory_error` is called
/// (from a loader thread) when lazy loading finds damaged memory after the
/// VM started; `restore_vm` wires it to stop the machine first.
[[nodiscard]] Result<RestoredVm> restore_vm(const RestoreRequest& request,
                                            std::function<void(const Error&)> on_memory_error);

}  // namespace godwit
