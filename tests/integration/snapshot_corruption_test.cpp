// `godwit --restore DIR` on damaged snapshots, run as a real process: every
// case below is caught by the checks that run before the VM is built
// (manifest, configuration, memory chain metadata, state stream), so none
// needs /dev/kvm. Each case starts from a fresh synthetic snapshot
// (tests/snapshot_fixture.h), damages one thing, and expects exit status 1,
// a message naming the file and what is wrong, and every snapshot file
// byte-identical afterwards (restores open them read-only). Page-data damage
// is found only while loading, after the VM exists: that case needs KVM and
// is not here.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <functional>
#include <map>

#include "godwit_process.h"
#include "migration/machine_state_codec.h"
#include "snapshot/memory_file.h"
#include "snapshot_fixture.h"
#include "unit/snapshot_test_support.h"

namespace godwit::test {
namespace {

using namespace std::chrono_literals;
using ::testing::HasSubstr;

struct Outcome {
  int status = -1;
  std::string err;
};

/// Every regular file under `root` with its bytes.
std::map<std::string, std::string> tree_contents(const std::string& root) {
  std::map<std::string, std::string> out;
  std::error_code ec;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root, ec))
    if (e.is_regular_file()) out[e.path().string()] = read_file(e.path().string());
  return out;
}

/// Names the files whose bytes differ (or that appeared or vanished).
std::string changed_files(const std::map<std::string, std::string>& before,
                          const std::map<std::string, std::string>& after) {
  std::string out;
  for (const auto& [path, bytes] : before) {
    auto it = after.find(path);
    if (it == after.end()) {
      out += path + " (removed) ";
    } else if (it->second != bytes) {
      out += path + " (modified) ";
    }
  }
  for (const auto& [path, bytes] : after)
    if (!before.contains(path)) out += path + " (created) ";
  return out;
}

class RestoreCorruption : public ::testing::Test {
 protected:
  void SetUp() override {
    // A test that cannot run godwit must fail, not pass or skip.
    ASSERT_EQ(::access(build_path("bin/godwit").c_str(), X_OK), 0)
        << build_path("bin/godwit") << " is not built";
    auto vm = SyntheticVm::create();
    ASSERT_TRUE(vm) << vm.error().message;
    vm_.emplace(std::move(*vm));
    auto full = vm_->snapshot_full(snap());
    ASSERT_TRUE(full) << full.error().message;
  }

  std::string snap() const { return root_.file("snap"); }
  std::string manifest_path() const { return snap() + "/snapshot.json"; }
  std::string state_path() const { return snap() + "/state.bin"; }
  std::string memory_path() const { return snap() + "/memory.gmf"; }

  /// Runs godwit --restore `dir` with the given memory mode.
  Outcome restore(const std::string& dir, const std::string& mode) {
    std::vector<std::string> argv{
        build_path("bin/godwit"), "--restore", dir, "--restore-memory", mode, "--serial", "none"};
    Process p(argv, out_.file("out"), out_.file("err"));
    auto status = p.wait(120s);
    EXPECT_TRUE(status.has_value()) << "godwit --restore did not exit";
    return {status.value_or(-1), p.stderr_text()};
  }

  /// Restores `dir` eagerly and lazily; each must fail with status 1 before
  /// the VM is built, with every needle in the message, files untouched.
  void expect_refused(const std::string& dir, const std::vector<std::string>& needles) {
    const auto before = tree_contents(root_.path());
    ASSERT_FALSE(before.empty());
    for (const char* mode : {"eager", "lazy"}) {
      SCOPED_TRACE(std::string("--restore-memory ") + mode);
      Outcome o = restore(dir, mode);
      EXPECT_EQ(o.status, 1) << o.err;
      EXPECT_THAT(o.err, HasSubstr("godwit: restore from " + dir + " failed: "));
      for (const auto& needle : needles) EXPECT_THAT(o.err, HasSubstr(needle));
      // Found by the checks, not by trying to build the VM.
      EXPECT_THAT(o.err, ::testing::Not(HasSubstr("building the VM")));
      EXPECT_THAT(o.err, ::testing::Not(HasSubstr("/dev/kvm")));
      const auto after = tree_contents(root_.path());
      EXPECT_TRUE(before == after) << "changed: " << changed_files(before, after);
    }
  }

  /// The sections of DIR's state stream.
  std::vector<uint8_t> state_stream() { return read_state_file(snap()); }

  /// state.bin rebuilt through StateStreamWriter from the current sections,
  /// with `edit` able to change each section's version and to append more;
  /// the manifest is fixed to the new size so only the stream is wrong.
  void rewrite_state(
      const std::function<void(const migration::SectionView&, uint32_t& version)>& edit,
      const std::function<void(migration::StateStreamWriter&)>& append) {
    const auto stream = state_stream();
    auto sections = migration::parse_state_stream(stream, migration::machine_state_registry());
    ASSERT_TRUE(sections) << sections.error().message;
    migration::StateStreamWriter writer;
    for (const auto& s : *sections) {
      uint32_t version = s.version;
      edit(s, version);
      ASSERT_TRUE(writer.add(s.key, version, s.payload));
    }
    append(writer);
    ASSERT_TRUE(replace_state_file(snap(), std::move(writer).finish()));
  }

  /// Stream offset of the payload of section `name` ("vcpu[1]").
  uint64_t payload_offset(const std::string& name) {
    const auto stream = state_stream();
    auto sections = migration::parse_state_stream(stream, migration::machine_state_registry());
    EXPECT_TRUE(sections) << sections.error().message;
    if (!sections) return 0;
    for (const auto& s : *sections)
      if (s.key.name() == name) {
        EXPECT_GT(s.payload.size(), 8u) << name;
        return static_cast<uint64_t>(s.payload.data() - stream.data());
      }
    ADD_FAILURE() << "no section " << name;
    return 0;
  }

  /// Offset of `text` in the manifest file.
  uint64_t manifest_offset(const std::string& text) {
    const std::string manifest = read_file(manifest_path());
    const size_t at = manifest.find(text);
    EXPECT_NE(at, std::string::npos) << text << " not in " << manifest;
    return at == std::string::npos ? 0 : at;
  }

  TempDir root_;
  TempDir out_;
  std::optional<SyntheticVm> vm_;
};

TEST_F(RestoreCorruption, TheUndamagedSnapshotPassesEveryCheck) {
  // The control for every case below: the pristine snapshot gets past all
  // the file checks and fails only where the VM is built (no /dev/kvm).
  if (kvm_available()) GTEST_SKIP() << "/dev/kvm exists: this control is for hosts without KVM";
  const auto before = tree_contents(root_.path());
  for (const char* mode : {"eager", "lazy"}) {
    Outcome o = restore(snap(), mode);
    EXPECT_EQ(o.status, 1) << o.err;
    EXPECT_THAT(o.err, HasSubstr("godwit: restore from " + snap() +
                                 " failed: building the VM of "
                                 "snapshot " +
                                 snap()));
    EXPECT_THAT(o.err, HasSubstr("/dev/kvm"));
  }
  EXPECT_TRUE(before == tree_contents(root_.path()));
}

TEST_F(RestoreCorruption, BitFlipInTheManifestIsAChecksumMismatch) {
  // '4' -> '5' in the TSC rate: still valid JSON, only the checksum is wrong.
  flip_bit(manifest_path(), manifest_offset("2445000") + 1, 0);
  ASSERT_THAT(read_file(manifest_path()), HasSubstr("2545000"));
  expect_refused(snap(), {"snapshot.json", "checksum mismatch"});
}

TEST_F(RestoreCorruption, BitFlipThatBreaksTheManifestsJson) {
  flip_bit(manifest_path(), 0, 2);  // '{' -> '\x7f'
  expect_refused(snap(), {manifest_path(), "not valid JSON"});
}

TEST_F(RestoreCorruption, BitFlipInAStateSectionNamesTheSection) {
  flip_bit(state_path(), payload_offset("vcpu[1]") + 8, 5);
  expect_refused(snap(), {"state file " + state_path(), "vcpu[1]", "checksum mismatch"});
}

TEST_F(RestoreCorruption, BitFlipInTheMachineSummaryNamesIt) {
  flip_bit(state_path(), payload_offset("machine[0]") + 1, 0);
  expect_refused(snap(), {"state file " + state_path(), "machine[0]", "checksum mismatch"});
}

TEST_F(RestoreCorruption, TruncatedStateFileIsFoundByItsSize) {
  const uint64_t size = file_size(state_path());
  ASSERT_EQ(::truncate(state_path().c_str(), static_cast<off_t>(size - 10)), 0);
  expect_refused(snap(), {"state file " + state_path(), "is " + std::to_string(size - 10) +
                                                            " bytes; the manifest says " +
                                                            std::to_string(size) + " (truncated)"});
}

TEST_F(RestoreCorruption, TruncatedStateStreamWithAMatchingManifest) {
  // The manifest agrees with the short file: the stream itself is found cut.
  auto stream = state_stream();
  stream.resize(stream.size() - 20);
  ASSERT_TRUE(replace_state_file(snap(), stream));
  expect_refused(snap(), {"state file " + state_path(), "truncated"});
}

TEST_F(RestoreCorruption, MissingStateFile) {
  ASSERT_EQ(::unlink(state_path().c_str()), 0);
  expect_refused(snap(), {"state file " + state_path(), "No such file"});
}

TEST_F(RestoreCorruption, UnknownStateSectionIsNamed) {
  rewrite_state([](const migration::SectionView&, uint32_t&) {},
                [](migration::StateStreamWriter& w) {
                  const std::vector<uint8_t> payload = {1, 2, 3, 4};
                  ASSERT_TRUE(w.add({"balloon", 0}, 1, payload));
                });
  expect_refused(snap(),
                 {"state file " + state_path(), "balloon[0]", "unknown section kind 'balloon'"});
}

TEST_F(RestoreCorruption, StateSectionVersionNewerThanSupportedIsNamed) {
  const auto* spec = migration::machine_state_registry().find("vcpu");
  ASSERT_NE(spec, nullptr);
  const uint32_t newer = spec->version + 1;
  rewrite_state(
      [&](const migration::SectionView& s, uint32_t& version) {
        if (s.key.name() == "vcpu[0]") version = newer;
      },
      [](migration::StateStreamWriter&) {});
  expect_refused(snap(), {"state file " + state_path(), "vcpu[0]",
                          "version " + std::to_string(newer) + " is too new"});
}

TEST_F(RestoreCorruption, StateSectionVersionOlderThanSupportedIsNamed) {
  const auto* spec = migration::machine_state_registry().find("serial");
  ASSERT_NE(spec, nullptr);
  ASSERT_GT(spec->min_version, 0u);
  rewrite_state(
      [&](const migration::SectionView& s, uint32_t& version) {
        if (s.key.kind == "serial") version = spec->min_version - 1;
      },
      [](migration::StateStreamWriter&) {});
  expect_refused(snap(), {"state file " + state_path(), "serial[0]", "is too old"});
}

TEST_F(RestoreCorruption, StateOfAnotherVcpuCountIsRefused) {
  MachineState three = vm_->state();
  three.vcpus.resize(3);
  auto stream = migration::encode_machine_state(three);
  ASSERT_TRUE(stream) << stream.error().message;
  ASSERT_TRUE(replace_state_file(snap(), *stream));
  expect_refused(snap(), {"the state holds 3 vCPUs, the configuration 2"});
}

TEST_F(RestoreCorruption, BitFlipInTheMemoryFileHeader) {
  flip_bit(memory_path(), 40, 2);  // inside the snapshot id
  expect_refused(snap(), {"memory file " + memory_path(), "header checksum mismatch"});
}

TEST_F(RestoreCorruption, BitFlipInTheMemoryFileMagicOrVersion) {
  flip_bit(memory_path(), 8, 1);  // version 1 -> 3
  expect_refused(snap(), {"memory file " + memory_path(), "format version 3 is not supported"});
}

TEST_F(RestoreCorruption, BitFlipInTheMemoryFileChunkIndex) {
  uint64_t index_offset = 0;
  {
    auto file = snapshot::MemoryFile::open(memory_path());
    ASSERT_TRUE(file) << file.error().message;
    index_offset = file->header().index_offset;
  }
  // Chunk 0's data hash, then chunk 16's (gpa 32 MiB, the middle page) bitmap.
  flip_bit(memory_path(), index_offset + 144, 4);
  expect_refused(snap(), {"memory file " + memory_path(), "chunk 0 (region 0",
                          "index entry checksum mismatch"});
  flip_bit(memory_path(), index_offset + 144, 4);
  flip_bit(memory_path(), index_offset + 16 * snapshot::kChunkEntryBytes + 20, 0);
  expect_refused(snap(), {"memory file " + memory_path(), "chunk 16 (region 0",
                          "index entry checksum mismatch"});
}

TEST_F(RestoreCorruption, TruncatedMemoryFile) {
  const uint64_t size = file_size(memory_path());
  ASSERT_EQ(::truncate(memory_path().c_str(), static_cast<off_t>(size - 1)), 0);
  expect_refused(snap(), {"memory file " + memory_path(),
                          "truncated: file is " + std::to_string(size - 1) +
                              " bytes, its header says " + std::to_string(size)});
  ASSERT_EQ(::truncate(memory_path().c_str(), 64), 0);
  expect_refused(snap(), {"memory file " + memory_path(), "truncated"});
}

TEST_F(RestoreCorruption, MissingMemoryFile) {
  ASSERT_EQ(::unlink(memory_path().c_str()), 0);
  expect_refused(snap(), {memory_path(), "No such file"});
}

TEST_F(RestoreCorruption, ADiffWhoseParentDirectoryIsMissing) {
  const std::string diff = root_.file("diff");
  auto d = vm_->snapshot_diff(diff);
  ASSERT_TRUE(d) << d.error().message;
  std::filesystem::remove_all(snap());
  expect_refused(diff, {"snapshot " + diff + " is a diff on top of " + snap(),
                        "snapshot directory " + snap(), "No such file or directory"});
}

TEST_F(RestoreCorruption, ADiffWhoseParentWasReplaced) {
  const std::string diff = root_.file("diff");
  auto d = vm_->snapshot_diff(diff);
  ASSERT_TRUE(d) << d.error().message;
  const auto old_id = d->parent->id;
  // Another full snapshot written into the parent's place.
  std::filesystem::remove_all(snap());
  auto other = make_synthetic_snapshot(snap());
  ASSERT_TRUE(other) << other.error().message;
  expect_refused(diff, {"is a diff on top of memory " + old_id.hex(),
                        "holds memory " + other->memory_id.hex(), "the parent was replaced"});
}

TEST_F(RestoreCorruption, ManifestVersion99) {
  auto m = snapshot::read_manifest(snap());
  ASSERT_TRUE(m) << m.error().message;
  m->version = 99;
  ASSERT_TRUE(snapshot::write_manifest(snap(), *m));  // valid checksum
  expect_refused(snap(), {manifest_path(), "manifest version 99 is not supported"});
}

TEST_F(RestoreCorruption, AnInvalidConfigurationIsNamed) {
  auto m = snapshot::read_manifest(snap());
  ASSERT_TRUE(m) << m.error().message;
  m->vm["vcpus"] = 0;
  ASSERT_TRUE(snapshot::write_manifest(snap(), *m));
  expect_refused(snap(), {"snapshot configuration: vm.vcpus is 0"});
  m->vm["vcpus"] = 2;
  m->vm.erase("boot");
  ASSERT_TRUE(snapshot::write_manifest(snap(), *m));
  expect_refused(snap(), {"snapshot configuration: vm.boot is missing"});
}

TEST_F(RestoreCorruption, AnEmptyDirectoryAFileAndNothing) {
  const std::string empty = root_.file("empty");
  std::filesystem::create_directories(empty);
  expect_refused(empty,
                 {empty + "/snapshot.json", "cannot be read", "not a complete snapshot directory"});
  expect_refused(manifest_path(),
                 {"snapshot directory " + manifest_path() + " is not a directory"});
  expect_refused(root_.file("nowhere"),
                 {"snapshot directory " + root_.file("nowhere"), "No such file or directory"});
}

// A memory.gmf copied in from another snapshot of the same layout passes
// every check of the file itself; its id differs from the one the manifest
// names, and the restore refuses it by name before anything is built.
TEST_F(RestoreCorruption, AMemoryFileFromAnotherSnapshotIsRefused) {
  const std::string other = root_.file("other");
  ASSERT_TRUE(make_synthetic_snapshot(other));
  std::filesystem::copy_file(other + "/memory.gmf", memory_path(),
                             std::filesystem::copy_options::overwrite_existing);
  std::filesystem::remove_all(other);
  expect_refused(snap(), {memory_path()});
}

}  // namespace
}  // namespace godwit::test
