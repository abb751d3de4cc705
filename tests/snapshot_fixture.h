// Synthetic snapshot directories for tests that run without /dev/kvm.
//
// A real snapshot needs a paused VM. The files of one, though, are plain
// data: a manifest whose "vm" is vm_config_to_json(VmConfig), a state
// stream from encode_machine_state(MachineState), and a memory file written
// from a GuestMemory. SyntheticVm writes exactly those, from a config, a
// default machine state (N vCPUs, no virtio device) and guest memory filled
// with a few page patterns, so tests of manifests, chains, merging, godwitctl
// and every pre-KVM check of `godwit --restore` get complete, valid snapshot
// directories (full and diffs on top) that they can then damage.
#pragma once

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "base/result.h"
#include "kvm/uapi.h"
#include "memory/guest_memory.h"
#include "migration/machine_state_codec.h"
#include "snapshot/manifest.h"
#include "snapshot/memory_writer.h"
#include "snapshot/page_set.h"
#include "vmm/config.h"
#include "vmm/machine.h"
#include "vmm/snapshot/vm_config_json.h"

namespace godwit::test {

/// What a synthetic VM looks like.
struct SyntheticSnapshotOptions {
  uint64_t memory_size = 64 * kMiB;
  uint32_t vcpus = 2;
  /// Guest TSC rate recorded in the manifest.
  uint32_t tsc_khz = 2445000;
  /// The ImageBoot spec recorded in the configuration (never opened: a
  /// restore skips the boot loaders).
  std::string image = "/nonexistent/synthetic.img";
};

/// A guest memory plus machine state that writes snapshot directories: one
/// full snapshot, then any number of diffs, each on top of the previous one.
class SyntheticVm {
 public:
  /// Builds the VM's config, default machine state and patterned memory.
  [[nodiscard]] static Result<SyntheticVm> create(const SyntheticSnapshotOptions& options = {}) {
    SyntheticVm vm;
    vm.config_.memory_size = options.memory_size;
    vm.config_.backing = MemoryBacking::memfd;
    vm.config_.vcpus = options.vcpus;
    vm.config_.boot = ImageBoot{options.image};
    vm.tsc_khz_ = options.tsc_khz;
    vm.memory_ = TRY(GuestMemory::create(
        {.size = options.memory_size, .backing = MemoryBacking::memfd, .hugetlbfs_dir = {}}));
    // Default-constructed KVM and device state, except what the decoder
    // checks: each irqchip record carries its own chip id. Nothing else of it
    // is used before a VM is built.
    vm.state_.vm.pic_master.chip_id = KVM_IRQCHIP_PIC_MASTER;
    vm.state_.vm.pic_slave.chip_id = KVM_IRQCHIP_PIC_SLAVE;
    vm.state_.vm.ioapic.chip_id = KVM_IRQCHIP_IOAPIC;
    vm.state_.vcpus.resize(options.vcpus);
    // The stream must load as it is, or every test built on it would see a
    // state error instead of the damage it made.
    const auto stream = TRY(migration::encode_machine_state(vm.state_));
    MachineState decoded;
    if (auto ok = migration::decode_machine_state(stream, decoded); !ok)
      return fail(ok.error().context("synthetic VM: its own state stream does not load"));
    // A few recognizable pages: the first, a run at 1 MiB, one in the middle
    // and the last one; everything else stays zero (and sparse).
    TRY_VOID(vm.fill(0, 1, 0x11));
    TRY_VOID(vm.fill(kMiB, 8, 0x22));
    TRY_VOID(vm.fill(options.memory_size / 2, 1, 0x33));
    TRY_VOID(vm.fill(options.memory_size - kPageSize, 1, 0x44));
    return vm;
  }

  SyntheticVm(SyntheticVm&&) = default;
  SyntheticVm& operator=(SyntheticVm&&) = default;

  /// Writes a full snapshot of the current memory into `dir` (created if
  /// missing; parents too) and makes it the base of the next diff.
  [[nodiscard]] Result<snapshot::Manifest> snapshot_full(const std::string& dir) {
    TRY_VOID(make_dir(dir));
    const auto summary = TRY(snapshot::write_full_memory(
        *memory_, snapshot::snapshot_path(dir, snapshot::kMemoryFile), kWriteOptions));
    return finish(dir, summary, std::nullopt);
  }

  /// Changes a few pages (rewrites two, zeroes one, fills a fresh one), then
  /// writes a diff holding exactly those pages on top of the previous
  /// snapshot. Fails before a full snapshot.
  [[nodiscard]] Result<snapshot::Manifest> snapshot_diff(const std::string& dir) {
    if (!previous_) return fail("synthetic VM: a diff needs an earlier snapshot");
    TRY_VOID(make_dir(dir));
    ++generation_;
    snapshot::PageSet pages = snapshot::PageSet::for_memory(*memory_);
    const uint8_t seed = static_cast<uint8_t>(0x50 + generation_);
    const uint64_t rewritten[] = {0, kMiB + generation_ * kPageSize};
    for (uint64_t gpa : rewritten) {
      TRY_VOID(fill(gpa, 1, seed));
      TRY_VOID(pages.add_range(gpa, kPageSize));
    }
    const uint64_t zeroed = kMiB + (generation_ - 1) * kPageSize;
    auto span = TRY(memory_->host_span(zeroed, kPageSize));
    std::memset(span.data(), 0, kPageSize);
    TRY_VOID(pages.add_range(zeroed, kPageSize));
    const uint64_t fresh = 3 * kMiB + generation_ * kPageSize;
    TRY_VOID(fill(fresh, 1, seed));
    TRY_VOID(pages.add_range(fresh, kPageSize));
    const auto summary = TRY(snapshot::write_diff_memory(
        *memory_, pages, snapshot::snapshot_path(dir, snapshot::kMemoryFile), previous_->id,
        kWriteOptions));
    return finish(dir, summary, previous_);
  }

  /// The guest memory as of the latest snapshot (what loading its chain gives).
  [[nodiscard]] const GuestMemory& memory() const { return *memory_; }
  /// The VM configuration recorded in the manifests.
  [[nodiscard]] const VmConfig& config() const { return config_; }
  /// The machine state recorded in state.bin.
  [[nodiscard]] const MachineState& state() const { return state_; }

 private:
  static constexpr snapshot::WriteOptions kWriteOptions{.hash_threads = 1, .sync = false};

  SyntheticVm() = default;

  /// Fills `pages` pages from `gpa` with bytes derived from (address, seed), never zero.
  Result<void> fill(uint64_t gpa, uint64_t pages, uint8_t seed) {
    auto span = TRY(memory_->host_span(gpa, pages * kPageSize));
    for (size_t i = 0; i < span.size(); ++i)
      span[i] = static_cast<uint8_t>(((gpa + i) * 131 + (i >> 12) * 7 + seed) | 1);
    return {};
  }

  static Result<void> make_dir(const std::string& dir) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return fail("creating " + dir + ": " + ec.message());
    return {};
  }

  /// Writes state.bin and the manifest (last, as the VMM does).
  Result<snapshot::Manifest> finish(const std::string& dir,
                                    const snapshot::MemoryFileSummary& summary,
                                    std::optional<snapshot::ParentRef> parent) {
    const auto stream = TRY(migration::encode_machine_state(state_));
    const std::string state_path = snapshot::snapshot_path(dir, snapshot::kStateFile);
    std::ofstream out(state_path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char*>(stream.data()),
              static_cast<std::streamsize>(stream.size()));
    out.close();
    if (!out) return fail("writing " + state_path);

    snapshot::Manifest m;
    m.kind = parent ? snapshot::MemoryFileKind::diff : snapshot::MemoryFileKind::full;
    m.godwit_version = kGodwitVersion;
    m.created = "2024-01-01T00:00:00Z";
    m.vm = vm_config_to_json(config_);
    m.tsc_khz = tsc_khz_;
    m.state_bytes = stream.size();
    m.memory_id = summary.id;
    m.parent = parent;
    m.memory_data_pages = summary.data_pages;
    m.memory_file_bytes = summary.file_bytes;
    TRY_VOID(snapshot::write_manifest(dir, m));
    previous_ =
        snapshot::ParentRef{std::filesystem::absolute(dir).lexically_normal().string(), summary.id};
    return m;
  }

  VmConfig config_;
  uint32_t tsc_khz_ = 0;
  std::unique_ptr<GuestMemory> memory_;
  MachineState state_;
  std::optional<snapshot::ParentRef> previous_;
  uint32_t generation_ = 0;
};

/// Writes one complete, valid full snapshot into `dir`.
[[nodiscard]] inline Result<snapshot::Manifest> make_synthetic_snapshot(
    const std::string& dir, const SyntheticSnapshotOptions& options = {}) {
  SyntheticVm vm = TRY(SyntheticVm::create(options));
  return vm.snapshot_full(dir);
}

/// Replaces DIR/state.bin with `stream` and rewrites the manifest's state
/// size (its checksum is recomputed), so only the stream's content can be
/// wrong.
[[nodiscard]] inline Result<void> replace_state_file(const std::string& dir,
                                                     const std::vector<uint8_t>& stream) {
  snapshot::Manifest m = TRY(snapshot::read_manifest(dir));
  const std::string path = snapshot::snapshot_path(dir, snapshot::kStateFile);
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char*>(stream.data()),
            static_cast<std::streamsize>(stream.size()));
  out.close();
  if (!out) return fail("writing " + path);
  m.state_bytes = stream.size();
  return snapshot::write_manifest(dir, m);
}

/// The bytes of DIR/state.bin.
[[nodiscard]] inline std::vector<uint8_t> read_state_file(const std::string& dir) {
  std::ifstream in(snapshot::snapshot_path(dir, snapshot::kStateFile), std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

}  // namespace godwit::test
