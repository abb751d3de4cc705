// snapshot.json and the snapshot directory (snapshot/manifest.h): JSON round
// trip, the checksum over the manifest's own content, field, format, version
// and kind/parent checks, atomic writing, read errors, following diff chains
// (replaced parents, loops, missing parents) and merging a chain into a
// self-contained full snapshot without touching its parents.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <xxhash.h>

#include <cstdio>
#include <filesystem>
#include <fstream>

#include "snapshot/manifest.h"
#include "snapshot/memory_file.h"
#include "snapshot/memory_load.h"
#include "snapshot_fixture.h"
#include "snapshot_test_support.h"

namespace godwit::snapshot {
namespace {

using ::testing::HasSubstr;

/// A small synthetic VM: 16 MiB is enough for three chunks with data.
const test::SyntheticSnapshotOptions kSmallVm{.memory_size = 16 * kMiB,
                                              .vcpus = 2,
                                              .tsc_khz = 2445000,
                                              .image = "/nonexistent/synthetic.img"};

SnapshotId id_of(uint8_t first) {
  SnapshotId id;
  for (size_t i = 0; i < id.bytes.size(); ++i) id.bytes[i] = static_cast<uint8_t>(first + i);
  return id;
}

Manifest sample_manifest(bool diff) {
  Manifest m;
  m.kind = diff ? MemoryFileKind::diff : MemoryFileKind::full;
  m.godwit_version = "9.8.7";
  m.created = "2024-05-06T07:08:09Z";
  m.vm = {{"vcpus", 3}, {"memory_size", 1 << 20}, {"nested", {{"a", {1, 2, 3}}}}};
  m.tsc_khz = 2445000;
  m.state_bytes = 12345;
  m.memory_id = id_of(0x10);
  if (diff) m.parent = ParentRef{"/snapshots/base", id_of(0xa0)};
  m.memory_data_pages = 77;
  m.memory_file_bytes = 987654;
  return m;
}

void expect_same(const Manifest& a, const Manifest& b) {
  EXPECT_EQ(a.version, b.version);
  EXPECT_EQ(a.kind, b.kind);
  EXPECT_EQ(a.godwit_version, b.godwit_version);
  EXPECT_EQ(a.created, b.created);
  EXPECT_EQ(a.vm, b.vm);
  EXPECT_EQ(a.tsc_khz, b.tsc_khz);
  EXPECT_EQ(a.state_bytes, b.state_bytes);
  EXPECT_EQ(a.memory_id, b.memory_id);
  ASSERT_EQ(a.parent.has_value(), b.parent.has_value());
  if (a.parent) {
    EXPECT_EQ(a.parent->dir, b.parent->dir);
    EXPECT_EQ(a.parent->id, b.parent->id);
  }
  EXPECT_EQ(a.memory_data_pages, b.memory_data_pages);
  EXPECT_EQ(a.memory_file_bytes, b.memory_file_bytes);
}

/// The documented checksum rule, computed here independently of manifest.cpp:
/// XXH3-64 (hex, 16 digits) of json.dump() without "checksum".
std::string documented_checksum(nlohmann::json j) {
  j.erase("checksum");
  const std::string text = j.dump();
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(text.data(), text.size())));
  return buf;
}

/// `j` with a checksum that matches its (edited) content.
nlohmann::json resealed(nlohmann::json j) {
  j["checksum"] = documented_checksum(j);
  return j;
}

std::string from_json_error(const nlohmann::json& j) {
  auto m = manifest_from_json(j, "M");
  return m ? std::string("(accepted)") : m.error().message;
}

TEST(SnapshotManifestJson, RoundTripKeepsEveryField) {
  for (bool diff : {false, true}) {
    SCOPED_TRACE(diff ? "diff" : "full");
    const Manifest original = sample_manifest(diff);
    const nlohmann::json j = manifest_to_json(original);
    EXPECT_EQ(j["format"], "godwit-snapshot");
    EXPECT_EQ(j["version"], 1);
    EXPECT_EQ(j["kind"], diff ? "diff" : "full");
    EXPECT_EQ(j["state"]["file"], "state.bin");
    EXPECT_EQ(j["memory"]["file"], "memory.gmf");
    EXPECT_EQ(j["memory"]["id"], "101112131415161718191a1b1c1d1e1f");
    EXPECT_EQ(j["memory"]["parent"].is_null(), !diff);
    auto back = manifest_from_json(j, "M");
    ASSERT_TRUE(back) << back.error().message;
    expect_same(*back, original);
    // Through text as well (what write/read do).
    auto reparsed = manifest_from_json(nlohmann::json::parse(j.dump(2)), "M");
    ASSERT_TRUE(reparsed) << reparsed.error().message;
    expect_same(*reparsed, original);
  }
}

TEST(SnapshotManifestJson, ChecksumIsXxh3OfTheContentWithoutIt) {
  const nlohmann::json j = manifest_to_json(sample_manifest(true));
  ASSERT_TRUE(j["checksum"].is_string());
  EXPECT_EQ(j["checksum"].get<std::string>().size(), 16u);
  EXPECT_EQ(j["checksum"], documented_checksum(j));
}

TEST(SnapshotManifestJson, ChangingAnyFieldIsAChecksumMismatch) {
  const nlohmann::json original = manifest_to_json(sample_manifest(true));
  using Edit = std::function<void(nlohmann::json&)>;
  const std::vector<std::pair<std::string, Edit>> edits = {
      {"kind", [](auto& j) { j["kind"] = "full"; }},
      {"godwit_version", [](auto& j) { j["godwit_version"] = "9.8.8"; }},
      {"created", [](auto& j) { j["created"] = "2024-05-06T07:08:10Z"; }},
      {"vm.vcpus", [](auto& j) { j["vm"]["vcpus"] = 4; }},
      {"vm nested", [](auto& j) { j["vm"]["nested"]["a"][2] = 4; }},
      {"host.tsc_khz", [](auto& j) { j["host"]["tsc_khz"] = 2445001; }},
      {"state.bytes", [](auto& j) { j["state"]["bytes"] = 12344; }},
      {"state.file", [](auto& j) { j["state"]["file"] = "other.bin"; }},
      {"memory.id", [](auto& j) { j["memory"]["id"] = "001112131415161718191a1b1c1d1e1f"; }},
      {"memory.data_pages", [](auto& j) { j["memory"]["data_pages"] = 78; }},
      {"memory.file_bytes", [](auto& j) { j["memory"]["file_bytes"] = 0; }},
      {"memory.parent.dir", [](auto& j) { j["memory"]["parent"]["dir"] = "/snapshots/other"; }},
      {"memory.parent.id",
       [](auto& j) { j["memory"]["parent"]["id"] = "b0a1a2a3a4a5a6a7a8a9aaabacadaeaf"; }},
      {"an extra member", [](auto& j) { j["extra"] = true; }},
      {"a removed member", [](auto& j) { j.erase("created"); }},
      {"the checksum itself", [](auto& j) { j["checksum"] = "0000000000000000"; }},
  };
  for (const auto& [what, edit] : edits) {
    SCOPED_TRACE(what);
    nlohmann::json j = original;
    edit(j);
    ASSERT_NE(j, original);
    EXPECT_EQ(from_json_error(j), "M: checksum mismatch (the manifest was modified or damaged)");
  }
  EXPECT_EQ(from_json_error(original), "(accepted)");
}

TEST(SnapshotManifestJson, AMissingOrMistypedFieldIsNamed) {
  const nlohmann::json original = manifest_to_json(sample_manifest(true));
  struct Case {
    std::vector<std::string> path;  // member to remove
    std::string message;
  };
  for (const Case& c : std::vector<Case>{
           {{"version"}, "M: \"version\" is missing"},
           {{"kind"}, "M: \"kind\" is missing"},
           {{"godwit_version"}, "M: \"godwit_version\" is missing"},
           {{"created"}, "M: \"created\" is missing"},
           {{"vm"}, "M: \"vm\" is missing"},
           {{"host"}, "M: \"host\" is missing"},
           {{"host", "tsc_khz"}, "M host: \"tsc_khz\" is missing"},
           {{"state"}, "M: \"state\" is missing"},
           {{"state", "bytes"}, "M state: \"bytes\" is missing"},
           {{"memory"}, "M: \"memory\" is missing"},
           {{"memory", "id"}, "M memory: \"id\" is missing"},
           {{"memory", "data_pages"}, "M memory: \"data_pages\" is missing"},
           {{"memory", "file_bytes"}, "M memory: \"file_bytes\" is missing"},
           {{"memory", "parent", "dir"}, "M memory parent: \"dir\" is missing"},
           {{"memory", "parent", "id"}, "M memory parent: \"id\" is missing"},
       }) {
    SCOPED_TRACE(c.message);
    nlohmann::json j = original;
    nlohmann::json* parent = &j;
    for (size_t i = 0; i + 1 < c.path.size(); ++i) parent = &(*parent)[c.path[i]];
    ASSERT_EQ(parent->erase(c.path.back()), 1u);
    EXPECT_EQ(from_json_error(resealed(j)), c.message);
  }
  nlohmann::json no_checksum = original;
  no_checksum.erase("checksum");
  EXPECT_EQ(from_json_error(no_checksum), "M: \"checksum\" is missing");

  nlohmann::json j = original;
  j["host"]["tsc_khz"] = "fast";
  EXPECT_EQ(from_json_error(resealed(j)), "M host: \"tsc_khz\" has the wrong type");
  j = original;
  j["state"]["bytes"] = "12345";
  EXPECT_EQ(from_json_error(resealed(j)), "M state: \"bytes\" has the wrong type");
  j = original;
  j["created"] = 5;
  EXPECT_EQ(from_json_error(resealed(j)), "M: \"created\" has the wrong type");
  j = original;
  j["memory"]["id"] = "1234";
  EXPECT_EQ(from_json_error(resealed(j)), "snapshot id '1234' is not 32 hex digits");
  j = original;
  j["memory"]["parent"]["id"] = "A0A1A2A3A4A5A6A7A8A9AAABACADAEAF";
  EXPECT_THAT(from_json_error(resealed(j)), HasSubstr("is not 32 lowercase hex digits"));
  j = original;
  j["kind"] = "partial";
  EXPECT_EQ(from_json_error(resealed(j)), "M: unknown kind 'partial'");
}

// Numbers out of their field's range or not integers are refused naming the
// field (nlohmann's get<uint32_t/uint64_t>() alone would wrap
// "tsc_khz": 5000000000 to 705032704 and "bytes": -5 to 2^64 - 5). Only a
// hand-made manifest (valid checksum) gets there.
TEST(SnapshotManifestJson, NumbersOutOfTheirFieldsRangeAreRefused) {
  const nlohmann::json original = manifest_to_json(sample_manifest(true));
  struct Case {
    std::vector<std::string> path;
    nlohmann::json value;
    std::string field;
  };
  for (const Case& c : std::vector<Case>{
           {{"host", "tsc_khz"}, 5000000000ull, "\"tsc_khz\""},
           {{"host", "tsc_khz"}, -1, "\"tsc_khz\""},
           {{"state", "bytes"}, -5, "\"bytes\""},
           {{"memory", "data_pages"}, -1, "\"data_pages\""},
           {{"memory", "file_bytes"}, 1.5, "\"file_bytes\""},
       }) {
    SCOPED_TRACE(c.value.dump());
    nlohmann::json j = original;
    nlohmann::json* field = &j;
    for (const auto& key : c.path) field = &(*field)[key];
    *field = c.value;
    EXPECT_THAT(from_json_error(resealed(j)), HasSubstr(c.field));
  }
}

TEST(SnapshotManifestJson, FormatAndVersionOutOfRangeAreRefused) {
  const nlohmann::json original = manifest_to_json(sample_manifest(false));
  EXPECT_EQ(from_json_error(nlohmann::json::array()), "M: not a JSON object");
  EXPECT_EQ(from_json_error("snapshot"), "M: not a JSON object");
  nlohmann::json j = original;
  j["format"] = "qemu-savevm";
  EXPECT_EQ(from_json_error(resealed(j)),
            "M: not a godwit snapshot manifest (\"format\" is not \"godwit-snapshot\")");
  j.erase("format");
  EXPECT_THAT(from_json_error(resealed(j)), HasSubstr("not a godwit snapshot manifest"));
  for (uint32_t version : {0u, 2u, 99u}) {
    // A well-formed manifest of another version, its checksum valid.
    Manifest m = sample_manifest(false);
    m.version = version;
    EXPECT_EQ(from_json_error(manifest_to_json(m)),
              "M: manifest version " + std::to_string(version) +
                  " is not supported (this godwit reads 1 to 1)");
  }
  j = original;
  j["version"] = "1";
  EXPECT_EQ(from_json_error(resealed(j)), "M: \"version\" has the wrong type");
}

TEST(SnapshotManifestJson, KindAndParentMustAgree) {
  Manifest diff_without_parent = sample_manifest(true);
  diff_without_parent.parent.reset();
  EXPECT_EQ(from_json_error(manifest_to_json(diff_without_parent)),
            "M: a diff snapshot needs a parent");
  Manifest full_with_parent = sample_manifest(false);
  full_with_parent.parent = ParentRef{"/snapshots/base", id_of(1)};
  EXPECT_EQ(from_json_error(manifest_to_json(full_with_parent)),
            "M: a full snapshot must not have a parent");
}

TEST(SnapshotManifestJson, ParsesSnapshotIds) {
  auto id = parse_snapshot_id("101112131415161718191a1b1c1d1e1f");
  ASSERT_TRUE(id) << id.error().message;
  EXPECT_EQ(*id, id_of(0x10));
  EXPECT_EQ(id->hex(), "101112131415161718191a1b1c1d1e1f");
  EXPECT_FALSE(parse_snapshot_id(""));
  EXPECT_FALSE(parse_snapshot_id("101112131415161718191a1b1c1d1e1"));
  EXPECT_FALSE(parse_snapshot_id("101112131415161718191a1b1c1d1e1f0"));
  EXPECT_FALSE(parse_snapshot_id("101112131415161718191a1b1c1d1e1g"));
  EXPECT_FALSE(parse_snapshot_id("101112131415161718191a1b1c1d1e1F"));
}

TEST(SnapshotManifestFile, WriteThenReadLeavesNoTemporaryFile) {
  test::ScratchDir dir("manifest-write");
  const Manifest original = sample_manifest(true);
  ASSERT_TRUE(write_manifest(dir.path(), original));
  auto back = read_manifest(dir.path());
  ASSERT_TRUE(back) << back.error().message;
  expect_same(*back, original);
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir.path()))
    names.push_back(e.path().filename().string());
  EXPECT_EQ(names, std::vector<std::string>{"snapshot.json"});

  // Rewriting replaces the file as a whole.
  Manifest second = sample_manifest(false);
  second.created = "2030-01-01T00:00:00Z";
  ASSERT_TRUE(write_manifest(dir.path(), second));
  auto again = read_manifest(dir.path());
  ASSERT_TRUE(again) << again.error().message;
  expect_same(*again, second);
  EXPECT_FALSE(std::filesystem::exists(dir.file("snapshot.json.tmp")));
  // The file is the JSON that manifest_to_json gives.
  std::ifstream in(dir.file("snapshot.json"));
  EXPECT_EQ(nlohmann::json::parse(in), manifest_to_json(second));
}

TEST(SnapshotManifestFile, WritingIntoAMissingDirectoryFails) {
  test::ScratchDir dir("manifest-nodir");
  auto written = write_manifest(dir.file("missing"), sample_manifest(false));
  ASSERT_FALSE(written);
  EXPECT_THAT(written.error().message, HasSubstr(dir.file("missing/snapshot.json.tmp")));
}

TEST(SnapshotManifestFile, ReadErrorsNameThePathAndTheProblem) {
  test::ScratchDir dir("manifest-read");
  auto missing = read_manifest(dir.file("nowhere"));
  ASSERT_FALSE(missing);
  EXPECT_EQ(missing.error().message,
            "snapshot directory " + dir.file("nowhere") + ": No such file or directory");

  std::ofstream(dir.file("plain")) << "x";
  auto not_dir = read_manifest(dir.file("plain"));
  ASSERT_FALSE(not_dir);
  EXPECT_EQ(not_dir.error().message,
            "snapshot directory " + dir.file("plain") + " is not a directory");

  auto empty = read_manifest(dir.path());
  ASSERT_FALSE(empty);
  EXPECT_EQ(empty.error().message,
            dir.file("snapshot.json") + ": cannot be read (not a complete snapshot directory?)");

  for (const char* text : {"", "{", "{\"format\": \"godwit-snapshot\",}", "\x01\x02"}) {
    SCOPED_TRACE(text);
    std::ofstream(dir.file("snapshot.json"), std::ios::trunc) << text;
    auto bad = read_manifest(dir.path());
    ASSERT_FALSE(bad);
    EXPECT_EQ(bad.error().message,
              dir.file("snapshot.json") + ": not valid JSON (damaged manifest)");
  }
  std::ofstream(dir.file("snapshot.json"), std::ios::trunc) << "[1, 2]";
  auto array = read_manifest(dir.path());
  ASSERT_FALSE(array);
  EXPECT_EQ(array.error().message, dir.file("snapshot.json") + ": not a JSON object");
}

/// A base and two diffs written from one synthetic VM.
class SnapshotChain : public ::testing::Test {
 protected:
  void SetUp() override {
    auto vm = test::SyntheticVm::create(kSmallVm);
    ASSERT_TRUE(vm) << vm.error().message;
    vm_.emplace(std::move(*vm));
    auto full = vm_->snapshot_full(base());
    ASSERT_TRUE(full) << full.error().message;
    base_id_ = full->memory_id;
    // The memory as of the base, for checks that need an older state.
    at_base_ = test::make_guest_memory(kSmallVm.memory_size);
    ASSERT_TRUE(at_base_);
    for (size_t r = 0; r < at_base_->regions().size(); ++r)
      std::memcpy(at_base_->regions()[r].host, vm_->memory().regions()[r].host,
                  at_base_->regions()[r].size);
    auto d1 = vm_->snapshot_diff(diff1());
    ASSERT_TRUE(d1) << d1.error().message;
    auto d2 = vm_->snapshot_diff(diff2());
    ASSERT_TRUE(d2) << d2.error().message;
    diff1_id_ = d1->memory_id;
    diff2_id_ = d2->memory_id;
  }

  std::string base() const { return dir_.file("base"); }
  std::string diff1() const { return dir_.file("diff1"); }
  std::string diff2() const { return dir_.file("diff2"); }
  static std::string memory_of(const std::string& dir) { return dir + "/memory.gmf"; }

  /// Guest memory loaded from `chain`.
  std::unique_ptr<GuestMemory> load(const std::vector<std::string>& chain) {
    auto memory = test::make_guest_memory(kSmallVm.memory_size);
    if (!memory) return nullptr;
    test::fill_all(*memory, 0xee);  // every page must be written or zeroed by the load
    auto loaded = load_memory(chain, *memory);
    EXPECT_TRUE(loaded) << loaded.error().message;
    return loaded ? std::move(memory) : nullptr;
  }

  /// Rewrites DIR's manifest after `edit`.
  void edit_manifest(const std::string& dir, const std::function<void(Manifest&)>& edit) {
    auto m = read_manifest(dir);
    ASSERT_TRUE(m) << m.error().message;
    edit(*m);
    ASSERT_TRUE(write_manifest(dir, *m));
  }

  test::ScratchDir dir_{"chain"};
  std::optional<test::SyntheticVm> vm_;
  std::unique_ptr<GuestMemory> at_base_;
  SnapshotId base_id_, diff1_id_, diff2_id_;
};

TEST_F(SnapshotChain, ManifestsLinkTheChain) {
  auto m2 = read_manifest(diff2());
  ASSERT_TRUE(m2) << m2.error().message;
  EXPECT_EQ(m2->kind, MemoryFileKind::diff);
  ASSERT_TRUE(m2->parent);
  EXPECT_EQ(m2->parent->dir, diff1());
  EXPECT_EQ(m2->parent->id, diff1_id_);
  auto file = MemoryFile::open(memory_of(diff2()));
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->header().id, diff2_id_);
  EXPECT_EQ(file->header().parent, diff1_id_);
}

TEST_F(SnapshotChain, MemoryChainIsBaseFirstAndLoadsTheLatestMemory) {
  auto chain = memory_chain(diff2());
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(*chain,
            (std::vector<std::string>{memory_of(base()), memory_of(diff1()), memory_of(diff2())}));
  auto loaded = load(*chain);
  ASSERT_TRUE(loaded);
  EXPECT_TRUE(test::memory_equal(*loaded, vm_->memory()));

  auto base_chain = memory_chain(base());
  ASSERT_TRUE(base_chain) << base_chain.error().message;
  EXPECT_EQ(*base_chain, std::vector<std::string>{memory_of(base())});
  auto base_loaded = load(*base_chain);
  ASSERT_TRUE(base_loaded);
  EXPECT_TRUE(test::memory_equal(*base_loaded, *at_base_));
  EXPECT_FALSE(test::memory_equal(*base_loaded, vm_->memory())) << "the diffs changed pages";
}

TEST_F(SnapshotChain, AReplacedParentIsNamedWithBothIds) {
  const SnapshotId other = id_of(0x77);
  edit_manifest(diff1(), [&](Manifest& m) { m.memory_id = other; });
  auto chain = memory_chain(diff2());
  ASSERT_FALSE(chain);
  EXPECT_EQ(chain.error().message, "snapshot " + diff2() + " is a diff on top of memory " +
                                       diff1_id_.hex() + ", but " + diff1() + " holds memory " +
                                       other.hex() + " (the parent was replaced)");
}

TEST_F(SnapshotChain, AMissingParentDirectoryIsNamed) {
  std::filesystem::remove_all(base());
  auto chain = memory_chain(diff2());
  ASSERT_FALSE(chain);
  EXPECT_THAT(chain.error().message,
              HasSubstr("snapshot " + diff1() + " is a diff on top of " + base()));
  EXPECT_THAT(chain.error().message, HasSubstr("No such file or directory"));
}

TEST_F(SnapshotChain, ALoopOfParentsStopsWithAnError) {
  // A's parent is B and B's parent is A, each link with the right id.
  const std::string a = dir_.file("loop-a");
  const std::string b = dir_.file("loop-b");
  std::filesystem::create_directories(a);
  std::filesystem::create_directories(b);
  Manifest ma = sample_manifest(true);
  Manifest mb = sample_manifest(true);
  ma.memory_id = id_of(0x01);
  mb.memory_id = id_of(0x02);
  ma.parent = ParentRef{b, mb.memory_id};
  mb.parent = ParentRef{a, ma.memory_id};
  ASSERT_TRUE(write_manifest(a, ma));
  ASSERT_TRUE(write_manifest(b, mb));
  auto chain = memory_chain(a);
  ASSERT_FALSE(chain);
  EXPECT_THAT(chain.error().message, HasSubstr("snapshot " + a + ": chain longer than 256"));
  EXPECT_THAT(chain.error().message, HasSubstr("a loop?"));

  // A diff that names itself as its parent.
  Manifest self = sample_manifest(true);
  self.parent = ParentRef{a, self.memory_id};
  ASSERT_TRUE(write_manifest(a, self));
  auto self_chain = memory_chain(a);
  ASSERT_FALSE(self_chain);
  EXPECT_THAT(self_chain.error().message, HasSubstr("a loop?"));
}

TEST_F(SnapshotChain, MergeMakesTheDiffFullKeepsItsIdAndLeavesTheParentsAlone) {
  const std::vector<std::string> parents = {memory_of(base()),          base() + "/snapshot.json",
                                            base() + "/state.bin",      memory_of(diff1()),
                                            diff1() + "/snapshot.json", diff1() + "/state.bin"};
  std::vector<test::FileFingerprint> before;
  for (const auto& p : parents) before.push_back(test::fingerprint(p));
  const auto chain = memory_chain(diff2());
  ASSERT_TRUE(chain) << chain.error().message;
  auto from_chain = load(*chain);
  ASSERT_TRUE(from_chain);
  const auto state_before = test::fingerprint(diff2() + "/state.bin");

  auto merged = merge_snapshot(diff2());
  ASSERT_TRUE(merged) << merged.error().message;
  EXPECT_EQ(merged->id, diff2_id_);
  EXPECT_EQ(merged->kind, MemoryFileKind::full);

  auto m = read_manifest(diff2());
  ASSERT_TRUE(m) << m.error().message;
  EXPECT_EQ(m->kind, MemoryFileKind::full);
  EXPECT_FALSE(m->parent);
  EXPECT_EQ(m->memory_id, diff2_id_);
  EXPECT_EQ(m->memory_data_pages, merged->data_pages);
  EXPECT_EQ(m->memory_file_bytes, merged->file_bytes);
  EXPECT_EQ(m->memory_file_bytes, test::file_size(memory_of(diff2())));
  auto file = MemoryFile::open(memory_of(diff2()));
  ASSERT_TRUE(file) << file.error().message;
  EXPECT_EQ(file->header().kind, MemoryFileKind::full);
  EXPECT_EQ(file->header().id, diff2_id_);

  auto own_chain = memory_chain(diff2());
  ASSERT_TRUE(own_chain) << own_chain.error().message;
  EXPECT_EQ(*own_chain, std::vector<std::string>{memory_of(diff2())});
  auto from_merged = load(*own_chain);
  ASSERT_TRUE(from_merged);
  EXPECT_TRUE(test::memory_equal(*from_merged, *from_chain));
  EXPECT_TRUE(test::memory_equal(*from_merged, vm_->memory()));

  for (size_t i = 0; i < parents.size(); ++i)
    EXPECT_EQ(test::fingerprint(parents[i]), before[i]) << parents[i] << " was modified";
  EXPECT_EQ(test::fingerprint(diff2() + "/state.bin"), state_before);
  for (const auto& e : std::filesystem::directory_iterator(diff2()))
    EXPECT_THAT(e.path().filename().string(),
                ::testing::AnyOf("snapshot.json", "state.bin", "memory.gmf"));
  // Merged snapshots are self-contained: the parents can go.
  std::filesystem::remove_all(base());
  std::filesystem::remove_all(diff1());
  EXPECT_TRUE(memory_chain(diff2()));
  const std::vector<std::string> alone = {memory_of(diff2())};
  EXPECT_TRUE(verify_memory_chain(alone));
}

TEST_F(SnapshotChain, DiffsOnTopOfAMergedSnapshotStillApply) {
  ASSERT_TRUE(merge_snapshot(diff1()));
  auto chain = memory_chain(diff2());
  ASSERT_TRUE(chain) << chain.error().message;
  EXPECT_EQ(*chain, (std::vector<std::string>{memory_of(diff1()), memory_of(diff2())}));
  auto loaded = load(*chain);
  ASSERT_TRUE(loaded);
  EXPECT_TRUE(test::memory_equal(*loaded, vm_->memory()));
}

TEST_F(SnapshotChain, MergingAFullSnapshotIsRefusedAndChangesNothing) {
  const auto memory_before = test::fingerprint(memory_of(base()));
  const auto manifest_before = test::fingerprint(base() + "/snapshot.json");
  auto merged = merge_snapshot(base());
  ASSERT_FALSE(merged);
  EXPECT_EQ(merged.error().message, "snapshot " + base() + " is already full: nothing to merge");
  EXPECT_EQ(test::fingerprint(memory_of(base())), memory_before);
  EXPECT_EQ(test::fingerprint(base() + "/snapshot.json"), manifest_before);
}

TEST_F(SnapshotChain, MergingABrokenChainChangesNothing) {
  std::filesystem::remove_all(base());
  const auto memory_before = test::fingerprint(memory_of(diff2()));
  const auto manifest_before = test::fingerprint(diff2() + "/snapshot.json");
  auto merged = merge_snapshot(diff2());
  ASSERT_FALSE(merged);
  EXPECT_THAT(merged.error().message, HasSubstr(base()));
  EXPECT_EQ(test::fingerprint(memory_of(diff2())), memory_before);
  EXPECT_EQ(test::fingerprint(diff2() + "/snapshot.json"), manifest_before);
}

TEST_F(SnapshotChain, MergingOverADamagedParentChangesNothing) {
  // A flipped bit in the base's page data is only found by reading it.
  auto file = MemoryFile::open(memory_of(base()));
  ASSERT_TRUE(file) << file.error().message;
  test::flip_bit(memory_of(base()), file->header().data_offset + 100, 3);
  const auto memory_before = test::fingerprint(memory_of(diff2()));
  const auto manifest_before = test::fingerprint(diff2() + "/snapshot.json");
  auto merged = merge_snapshot(diff2());
  ASSERT_FALSE(merged);
  EXPECT_THAT(merged.error().message, HasSubstr(memory_of(base())));
  EXPECT_THAT(merged.error().message, HasSubstr("checksum mismatch"));
  EXPECT_EQ(test::fingerprint(memory_of(diff2())), memory_before);
  EXPECT_EQ(test::fingerprint(diff2() + "/snapshot.json"), manifest_before);
}

}  // namespace
}  // namespace godwit::snapshot
