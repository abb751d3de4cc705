// Snapshotter: state stream + memory file + manifest of a paused VM, and the
// dirty-page bookkeeping that diff snapshots rest on.
#include "vmm/snapshot/snapshotter.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <filesystem>

#include "base/file_io.h"
#include "base/log.h"
#include "base/unique_fd.h"
#include "migration/machine_state_codec.h"
#include "snapshot/memory_writer.h"
#include "vmm/api/vm_control.h"
#include "vmm/snapshot/vm_config_json.h"

namespace godwit {

namespace {

namespace fs = std::filesystem;

std::string utc_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

Result<void> write_file_synced(const std::string& path, std::span<const uint8_t> data) {
  UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644));
  if (!fd) return fail_errno("creating " + path);
  TRY_VOID(write_all(fd.get(), data, path));
  if (::fsync(fd.get()) != 0) return fail_errno("fsync " + path);
  return {};
}

/// Makes `dir` ready to receive a snapshot: creates it (not its parents) or
/// accepts an existing empty directory. Returns whether it was created.
Result<bool> prepare_dir(const std::string& dir) {
  if (::mkdir(dir.c_str(), 0755) == 0) return true;
  if (errno != EEXIST) return fail_errno("creating snapshot directory " + dir);
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    return api::vm_bad_request(dir + " exists and is not a directory");
  if (!fs::is_empty(dir, ec))
    return api::vm_conflict("snapshot directory " + dir +
                            " is not empty (snapshots never overwrite files)");
  return false;
}

/// Removes what a failed snapshot left behind.
void remove_partial(const std::string& dir, bool created_dir) {
  for (const char* f : {snapshot::kStateFile, snapshot::kMemoryFile, snapshot::kManifestFile})
    ::unlink(snapshot::snapshot_path(dir, f).c_str());
  if (created_dir) ::rmdir(dir.c_str());
}

}  // namespace

Result<SnapshotRequest> parse_snapshot_request(const nlohmann::json& body) {
  if (!body.is_object()) return api::vm_bad_request("body must be a JSON object");
  SnapshotRequest r;
  auto dir = body.find("dir");
  if (dir == body.end() || !dir->is_string() || dir->get<std::string>().empty())
    return api::vm_bad_request("\"dir\" (a directory path) is required");
  r.dir = dir->get<std::string>();
  if (r.dir.front() != '/')
    return api::vm_bad_request("\"dir\" must be an absolute path, got '" + r.dir + "'");
  std::string type = "full";
  if (auto t = body.find("type"); t != body.end()) {
    if (!t->is_string()) return api::vm_bad_request("\"type\" must be \"full\" or \"diff\"");
    type = t->get<std::string>();
  }
  if (type != "full" && type != "diff")
    return api::vm_bad_request("\"type\" must be \"full\" or \"diff\", got '" + type + "'");
  r.diff = type == "diff";
  for (const auto& [key, value] : body.items()) {
    if (key != "dir" && key != "type") return api::vm_bad_request("unknown member \"" + key + "\"");
  }
  return r;
}

nlohmann::json snapshot_report_json(const SnapshotReport& r) {
  return {{"dir", r.dir},
          {"type", snapshot::kind_name(r.kind)},
          {"parent", r.parent_dir ? nlohmann::json(*r.parent_dir) : nlohmann::json(nullptr)},
          {"data_pages", r.data_pages},
          {"zero_pages", r.zero_pages},
          {"memory_bytes", r.memory_bytes},
          {"state_bytes", r.state_bytes},
          {"bytes_written", r.memory_bytes + r.state_bytes},
          {"duration_ms", r.duration_ms}};
}

Result<void> harvest_dirty_pages(Machine& machine, snapshot::PageSet& pages, DirtyLogClear clear) {
  // KVM_CLEAR_DIRTY_LOG takes at most this many pages per call, so a large
  // slot is re-protected in pieces (chunks without a dirty page are skipped).
  constexpr uint64_t kClearChunkPages = uint64_t{64} << 10;
  GuestMemory& memory = machine.memory();
  for (const MemoryRegion& r : memory.regions()) {
    const uint64_t slot_pages = r.size / kPageSize;
    std::vector<uint64_t> bitmap((slot_pages + 63) / 64);
    auto log = machine.vm().get_dirty_log(r.slot, bitmap);
    if (!log)
      return fail(log.error().context("reading the dirty log of slot " + std::to_string(r.slot)));
    TRY_VOID(pages.add_dirty_log(r.slot, bitmap));
    if (clear != DirtyLogClear::manual) continue;
    for (uint64_t first = 0; first < slot_pages; first += kClearChunkPages) {
      const uint64_t count = std::min(kClearChunkPages, slot_pages - first);
      std::span<const uint64_t> words(bitmap.data() + first / 64, (count + 63) / 64);
      if (std::all_of(words.begin(), words.end(), [](uint64_t w) { return w == 0; })) continue;
      auto cleared =
          machine.vm().clear_dirty_log(r.slot, first, static_cast<uint32_t>(count), words);
      if (!cleared) return std::unexpected(cleared.error());
    }
  }
  return pages.take_vmm_dirty(memory);
}

Result<void> Snapshotter::add_dirty(const snapshot::PageSet& pages) {
  if (!previous_) return {};
  if (!pending_) pending_ = snapshot::PageSet::for_memory(machine_.memory());
  return pending_->add_set(pages);
}

Result<void> Snapshotter::collect_dirty() {
  if (!pending_) pending_ = snapshot::PageSet::for_memory(machine_.memory());
  return harvest_dirty_pages(machine_, *pending_);
}

Result<void> Snapshotter::reset_dirty() {
  pending_.reset();
  snapshot::PageSet discard = snapshot::PageSet::for_memory(machine_.memory());
  if (machine_.dirty_logging()) return harvest_dirty_pages(machine_, discard);
  // A slot that starts logging starts with a clean log; only the VMM's own
  // bitmap needs emptying.
  TRY_VOID(machine_.set_dirty_logging(true));
  return discard.take_vmm_dirty(machine_.memory());
}

Result<SnapshotReport> Snapshotter::create(const SnapshotRequest& request) {
  const auto start = std::chrono::steady_clock::now();
  if (machine_.state() != RunState::paused)
    return api::vm_conflict(std::string("the VM must be paused for a snapshot (it is ") +
                            to_string(machine_.state()) + "); PUT /vm/pause first");
  if (request.diff && !previous_)
    return api::vm_conflict(
        "a diff snapshot needs an earlier snapshot of this VM taken by this godwit process: "
        "take a full snapshot first");
  if (memory_ready_) {
    // A lazily restored VM may be paused before its memory is all in: the
    // pages not filled yet would be written as zero pages. Wait for them.
    if (auto ready = memory_ready_(); !ready)
      return fail(ready.error().context("snapshot refused: guest memory is not complete"));
  }
  const std::string dir = fs::path(request.dir).lexically_normal().string();
  const bool created_dir = TRY(prepare_dir(dir));

  SnapshotReport report;
  report.dir = dir;
  auto written = [&]() -> Result<snapshot::Manifest> {
    snapshot::Manifest manifest;
    manifest.godwit_version = kGodwitVersion;
    manifest.created = utc_now();
    manifest.vm = vm_config_to_json(machine_.config());
    manifest.tsc_khz = TRY(machine_.tsc_khz());

    MachineState state = TRY(machine_.save_state(MemoryCopy::skip));
    const auto stream = TRY(migration::encode_machine_state(state));
    TRY_VOID(write_file_synced(snapshot::snapshot_path(dir, snapshot::kStateFile), stream));
    manifest.state_bytes = stream.size();

    const std::string memory_path = snapshot::snapshot_path(dir, snapshot::kMemoryFile);
    snapshot::MemoryFileSummary summary;
    if (request.diff) {
      TRY_VOID(collect_dirty());
      summary = TRY(
          snapshot::write_diff_memory(machine_.memory(), *pending_, memory_path, previous_->id));
      manifest.kind = snapshot::MemoryFileKind::diff;
      manifest.parent = *previous_;
    } else {
      summary = TRY(snapshot::write_full_memory(machine_.memory(), memory_path));
      manifest.kind = snapshot::MemoryFileKind::full;
    }
    manifest.memory_id = summary.id;
    manifest.memory_data_pages = summary.data_pages;
    manifest.memory_file_bytes = summary.file_bytes;
    report.data_pages = summary.data_pages;
    report.zero_pages = summary.covered_pages - summary.data_pages;
    report.memory_bytes = summary.file_bytes;
    report.state_bytes = stream.size();
    TRY_VOID(snapshot::write_manifest(dir, manifest));
    return manifest;
  }();
  if (!written) {
    remove_partial(dir, created_dir);
    return fail(written.error().context("snapshot " + dir));
  }
  // The snapshot is complete; what follows only prepares the next diff.
  report.kind = written->kind;
  if (written->parent) report.parent_dir = written->parent->dir;
  if (request.diff) {
    pending_.reset();
  } else if (auto reset = reset_dirty(); !reset) {
    // Without a clean epoch a later diff could miss pages: refuse diffs until
    // the next full snapshot succeeds.
    previous_.reset();
    log::warn("snapshot " + dir +
              " written, but diff snapshots are disabled: " + reset.error().message);
    report.duration_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    return report;
  }
  previous_ = snapshot::ParentRef{dir, written->memory_id};
  report.duration_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  return report;
}

}  // namespace godwit
