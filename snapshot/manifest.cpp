// snapshot.json: writing, reading and checking it, following diff chains,
// and merging a chain into a self-contained snapshot.
#include "snapshot/manifest.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "base/file_io.h"
#include "base/unique_fd.h"
#include "snapshot/memory_merge.h"

namespace godwit::snapshot {

namespace {

std::string hex64(uint64_t v) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
  return buf;
}

/// XXH3 of the manifest without its "checksum" member (dump() sorts keys, so
/// the text is canonical).
std::string manifest_checksum(nlohmann::json json) {
  json.erase("checksum");
  const std::string text = json.dump();
  return hex64(XXH3_64bits(text.data(), text.size()));
}

/// Reads member `key` of `json` as T; the error names the key.
template <typename T>
Result<T> member(const nlohmann::json& json, const char* key, const std::string& where) {
  auto it = json.find(key);
  if (it == json.end()) return fail(where + ": \"" + key + "\" is missing");
  if (!json_fits<T>(*it))
    return fail(where + ": \"" + key + "\" is out of range or not an integer");
  try {
    return it->get<T>();
  } catch (const nlohmann::json::exception&) {
    return fail(where + ": \"" + key + "\" has the wrong type");
  }
}

}  // namespace

std::string snapshot_path(const std::string& dir, const char* file) {
  return (std::filesystem::path(dir) / file).string();
}

Result<SnapshotId> parse_snapshot_id(const std::string& hex) {
  SnapshotId id;
  if (hex.size() != 2 * id.bytes.size())
    return fail("snapshot id '" + hex + "' is not 32 hex digits");
  for (size_t i = 0; i < id.bytes.size(); ++i) {
    unsigned v = 0;
    for (size_t k = 0; k < 2; ++k) {
      char c = hex[2 * i + k];
      int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
      if (d < 0) return fail("snapshot id '" + hex + "' is not 32 lowercase hex digits");
      v = v * 16 + static_cast<unsigned>(d);
    }
    id.bytes[i] = static_cast<uint8_t>(v);
  }
  return id;
}

nlohmann::json manifest_to_json(const Manifest& m) {
  nlohmann::json j;
  j["format"] = kManifestFormat;
  j["version"] = m.version;
  j["kind"] = kind_name(m.kind);
  j["godwit_version"] = m.godwit_version;
  j["created"] = m.created;
  j["vm"] = m.vm;
  j["host"] = {{"tsc_khz", m.tsc_khz}};
  j["state"] = {{"file", kStateFile}, {"bytes", m.state_bytes}};
  nlohmann::json memory = {{"file", kMemoryFile},
                           {"id", m.memory_id.hex()},
                           {"data_pages", m.memory_data_pages},
                           {"file_bytes", m.memory_file_bytes}};
  memory["parent"] = m.parent ? nlohmann::json{{"dir", m.parent->dir}, {"id", m.parent->id.hex()}}
                              : nlohmann::json(nullptr);
  j["memory"] = memory;
  j["checksum"] = manifest_checksum(j);
  return j;
}

Result<Manifest> manifest_from_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) return fail(where + ": not a JSON object");
  if (j.value("format", std::string{}) != kManifestFormat)
    return fail(where + ": not a godwit snapshot manifest (\"format\" is not \"" + kManifestFormat +
                "\")");
  Manifest m;
  m.version = TRY(member<uint32_t>(j, "version", where));
  if (m.version < kManifestMinVersion || m.version > kManifestVersion)
    return fail(where + ": manifest version " + std::to_string(m.version) +
                " is not supported (this godwit reads " + std::to_string(kManifestMinVersion) +
                " to " + std::to_string(kManifestVersion) + ")");
  const std::string sum = TRY(member<std::string>(j, "checksum", where));
  if (sum != manifest_checksum(j))
    return fail(where + ": checksum mismatch (the manifest was modified or damaged)");
  const std::string kind = TRY(member<std::string>(j, "kind", where));
  if (kind == "full") {
    m.kind = MemoryFileKind::full;
  } else if (kind == "diff") {
    m.kind = MemoryFileKind::diff;
  } else {
    return fail(where + ": unknown kind '" + kind + "'");
  }
  m.godwit_version = TRY(member<std::string>(j, "godwit_version", where));
  m.created = TRY(member<std::string>(j, "created", where));
  m.vm = TRY(member<nlohmann::json>(j, "vm", where));
  const auto host = TRY(member<nlohmann::json>(j, "host", where));
  m.tsc_khz = TRY(member<uint32_t>(host, "tsc_khz", where + " host"));
  const auto state = TRY(member<nlohmann::json>(j, "state", where));
  m.state_bytes = TRY(member<uint64_t>(state, "bytes", where + " state"));
  const auto memory = TRY(member<nlohmann::json>(j, "memory", where));
  m.memory_id = TRY(parse_snapshot_id(TRY(member<std::string>(memory, "id", where + " memory"))));
  m.memory_data_pages = TRY(member<uint64_t>(memory, "data_pages", where + " memory"));
  m.memory_file_bytes = TRY(member<uint64_t>(memory, "file_bytes", where + " memory"));
  auto parent = memory.find("parent");
  if (parent != memory.end() && !parent->is_null()) {
    ParentRef ref;
    ref.dir = TRY(member<std::string>(*parent, "dir", where + " memory parent"));
    ref.id =
        TRY(parse_snapshot_id(TRY(member<std::string>(*parent, "id", where + " memory parent"))));
    m.parent = ref;
  }
  if ((m.kind == MemoryFileKind::diff) != m.parent.has_value())
    return fail(where + ": a " + kind + " snapshot " +
                (m.parent ? "must not have a parent" : "needs a parent"));
  return m;
}

Result<void> write_manifest(const std::string& dir, const Manifest& manifest) {
  const std::string path = snapshot_path(dir, kManifestFile);
  const std::string temp = path + ".tmp";
  const std::string text = manifest_to_json(manifest).dump(2) + "\n";
  {
    UniqueFd fd(::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
    if (!fd) return fail_errno("creating " + temp);
    if (auto w = write_all(fd.get(), text, temp); !w) {
      ::unlink(temp.c_str());
      return w;
    }
    if (::fsync(fd.get()) != 0) {
      ::unlink(temp.c_str());
      return fail_errno("fsync " + temp);
    }
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    int e = errno;
    ::unlink(temp.c_str());
    errno = e;
    return fail_errno("renaming " + temp + " to " + path);
  }
  UniqueFd dir_fd(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (!dir_fd || ::fsync(dir_fd.get()) != 0) return fail_errno("fsync directory " + dir);
  return {};
}

Result<Manifest> read_manifest(const std::string& dir) {
  const std::string path = snapshot_path(dir, kManifestFile);
  struct stat st {};
  if (::stat(dir.c_str(), &st) != 0) return fail_errno("snapshot directory " + dir);
  if (!S_ISDIR(st.st_mode)) return fail("snapshot directory " + dir + " is not a directory");
  std::ifstream in(path);
  if (!in) return fail(path + ": cannot be read (not a complete snapshot directory?)");
  std::stringstream text;
  text << in.rdbuf();
  auto json = nlohmann::json::parse(text.str(), nullptr, false);
  if (json.is_discarded()) return fail(path + ": not valid JSON (damaged manifest)");
  return manifest_from_json(json, path);
}

Result<std::vector<std::string>> memory_chain(const std::string& dir) {
  std::vector<std::string> reversed{snapshot_path(dir, kMemoryFile)};
  Manifest current = TRY(read_manifest(dir));
  std::string current_dir = dir;
  while (current.parent) {
    if (reversed.size() >= kMaxChainLength)
      return fail("snapshot " + dir + ": chain longer than " + std::to_string(kMaxChainLength) +
                  " snapshots (a loop?)");
    const ParentRef link = *current.parent;
    auto parent = read_manifest(link.dir);
    if (!parent)
      return fail(
          parent.error().context("snapshot " + current_dir + " is a diff on top of " + link.dir));
    if (parent->memory_id != link.id)
      return fail("snapshot " + current_dir + " is a diff on top of memory " + link.id.hex() +
                  ", but " + link.dir + " holds memory " + parent->memory_id.hex() +
                  " (the parent was replaced)");
    reversed.push_back(snapshot_path(link.dir, kMemoryFile));
    current = std::move(*parent);
    current_dir = link.dir;
  }
  return std::vector<std::string>(reversed.rbegin(), reversed.rend());
}

Result<MemoryImage> open_snapshot_memory(const std::string& dir, const Manifest& manifest) {
  const auto chain = TRY(memory_chain(dir));
  auto image = TRY(MemoryImage::open(chain));
  if (image.id() != manifest.memory_id)
    return fail("memory file " + chain.back() + " has id " + image.id().hex() + ", but " +
                snapshot_path(dir, kManifestFile) + " names memory " + manifest.memory_id.hex() +
                " (the file belongs to another snapshot)");
  return image;
}

Result<MemoryFileSummary> merge_snapshot(const std::string& dir) {
  Manifest manifest = TRY(read_manifest(dir));
  if (manifest.kind == MemoryFileKind::full)
    return fail("snapshot " + dir + " is already full: nothing to merge");
  const auto chain = TRY(open_snapshot_memory(dir, manifest)).paths();
  auto summary = TRY(merge_memory_chain(chain, snapshot_path(dir, kMemoryFile)));
  manifest.kind = MemoryFileKind::full;
  manifest.parent.reset();
  manifest.memory_id = summary.id;
  manifest.memory_data_pages = summary.data_pages;
  manifest.memory_file_bytes = summary.file_bytes;
  TRY_VOID(write_manifest(dir, manifest));
  return summary;
}

}  // namespace godwit::snapshot
