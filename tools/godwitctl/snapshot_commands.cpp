// godwitctl snapshot create | info | merge.
#include "tools/godwitctl/snapshot_commands.h"

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <ostream>

#include "snapshot/manifest.h"

namespace godwit::ctl {

namespace po = boost::program_options;

namespace {

std::string mib(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MiB", static_cast<double>(bytes) / (1024.0 * 1024.0));
  return buf;
}

void add_dir_option(po::options_description& options) {
  options.add_options()("dir", po::value<std::string>()->required()->value_name("DIR"),
                        "snapshot directory");
}

void add_create_options(po::options_description& options) {
  add_dir_option(options);
  options.add_options()("diff",
                        "only the pages changed since this VMM's previous snapshot (a diff on "
                        "top of that snapshot's directory)");
}

void add_info_options(po::options_description& options) {
  add_dir_option(options);
  options.add_options()("verify",
                        "also read every memory page of the chain and check its checksum");
}

int run_create(CommandContext& context, const po::variables_map& options) {
  const std::string dir = std::filesystem::absolute(options["dir"].as<std::string>()).string();
  const bool diff = options.count("diff") > 0;
  nlohmann::json body = {{"dir", dir}, {"type", diff ? "diff" : "full"}};
  int exit_code = kExitOk;
  auto reply = call_api(context, "PUT", "/vm/snapshot", exit_code, body.dump());
  if (!reply) return exit_code;
  auto report = nlohmann::json::parse(reply->body, nullptr, false);
  if (context.json || !report.is_object()) {
    context.out << (report.is_discarded() ? reply->body : report.dump(2)) << "\n";
    return kExitOk;
  }
  context.out << "snapshot written to " << report.value("dir", dir) << ": "
              << report.value("type", std::string("?")) << ", "
              << report.value("data_pages", uint64_t{0}) << " data pages, memory file "
              << mib(report.value("memory_bytes", uint64_t{0})) << ", state "
              << report.value("state_bytes", uint64_t{0}) << " bytes, "
              << static_cast<uint64_t>(report.value("duration_ms", 0.0)) << " ms\n";
  return kExitOk;
}

int run_info(CommandContext& context, const po::variables_map& options) {
  const std::string dir = options["dir"].as<std::string>();
  auto manifest = snapshot::read_manifest(dir);
  if (!manifest) {
    context.err << "godwitctl: " << manifest.error().message << "\n";
    return kExitRefused;
  }
  auto image = snapshot::open_snapshot_memory(dir, *manifest);
  if (!image) {
    context.err << "godwitctl: " << image.error().message << "\n";
    return kExitRefused;
  }
  bool verified = false;
  if (options.count("verify")) {
    if (auto ok = image->verify_all(); !ok) {
      context.err << "godwitctl: " << ok.error().message << "\n";
      return kExitRefused;
    }
    verified = true;
  }
  const std::vector<std::string> chain = image->paths();
  if (context.json) {
    nlohmann::json j = snapshot::manifest_to_json(*manifest);
    j["chain"] = chain;
    if (verified) j["verified"] = true;
    context.out << j.dump(2) << "\n";
    return kExitOk;
  }
  const auto& vm = manifest->vm;
  context.out << "snapshot " << dir << ": " << snapshot::kind_name(manifest->kind) << ", taken "
              << manifest->created << " by godwit " << manifest->godwit_version << "\n"
              << "  vm: " << vm.value("vcpus", 0u) << " vCPUs, "
              << mib(vm.value("memory_size", uint64_t{0})) << " RAM, guest TSC "
              << manifest->tsc_khz << " kHz\n"
              << "  memory: " << manifest->memory_data_pages << " data pages, file "
              << mib(manifest->memory_file_bytes) << ", id " << manifest->memory_id.hex() << "\n";
  if (manifest->parent) context.out << "  parent: " << manifest->parent->dir << "\n";
  context.out << "  chain (base first):\n";
  for (const auto& file : chain) context.out << "    " << file << "\n";
  if (verified) context.out << "  every memory checksum verified\n";
  return kExitOk;
}

int run_merge(CommandContext& context, const po::variables_map& options) {
  const std::string dir = options["dir"].as<std::string>();
  auto merged = snapshot::merge_snapshot(dir);
  if (!merged) {
    context.err << "godwitctl: " << merged.error().message << "\n";
    return kExitRefused;
  }
  if (context.json) {
    context.out << nlohmann::json{{"dir", dir},
                                  {"data_pages", merged->data_pages},
                                  {"file_bytes", merged->file_bytes}}
                       .dump(2)
                << "\n";
  } else {
    context.out << "snapshot " << dir << " is now full: " << merged->data_pages
                << " data pages, memory file " << mib(merged->file_bytes) << "\n";
  }
  return kExitOk;
}

}  // namespace

void append_snapshot_commands(std::vector<Command>& table) {
  table.push_back(
      {{"snapshot", "create"},
       "--dir DIR [--diff]",
       "write a snapshot of the paused VM to a directory",
       "Writes a snapshot of the paused VM (PUT /vm/snapshot) into DIR, which is created (or "
       "must be empty): snapshot.json, state.bin and memory.gmf. The first snapshot is full; "
       "with --diff only the pages changed since this VMM's previous snapshot are written, and "
       "the new snapshot refers to that one's directory. Restore with godwit --restore DIR.",
       add_create_options,
       run_create});
  table.push_back(
      {{"snapshot", "info"},
       "--dir DIR [--verify]",
       "describe a snapshot directory and its chain (no VMM needed)",
       "Reads DIR's manifest and follows its diff chain to the full base; with --verify also "
       "checks every memory checksum. Needs no API socket.",
       add_info_options,
       run_info,
       /*offline=*/true});
  table.push_back(
      {{"snapshot", "merge"},
       "--dir DIR",
       "merge a diff snapshot with its chain into a full one (no VMM needed)",
       "Replaces DIR's memory file by the full memory its chain describes (every checksum "
       "verified; the file is replaced atomically) and marks DIR full, so it no longer needs "
       "its parents. Diffs taken on top of DIR stay valid. Needs no API socket.",
       add_dir_option,
       run_merge,
       /*offline=*/true});
}

}  // namespace godwit::ctl
