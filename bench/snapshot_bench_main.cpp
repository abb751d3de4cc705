// godwit-snapshot-bench: the snapshot benchmark alone (snapshot_bench.h),
// printed as one JSON document.
//   godwit-snapshot-bench [BUILD_DIR] [--runs N] [--sizes MiB,MiB...]
//                         [--budget-s N] [--dir PARENT_DIR]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <sstream>
#include <string>

#include "bench/snapshot_bench.h"

int main(int argc, char** argv) {
  godwit::bench::SnapshotBenchOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    bool ok = true;
    if (arg == "--runs" && has_value) {
      options.runs = std::atoi(argv[++i]);
    } else if (arg == "--budget-s" && has_value) {
      options.budget_s = std::atof(argv[++i]);
    } else if (arg == "--dir" && has_value) {
      options.parent_dir = argv[++i];
    } else if (arg == "--sizes" && has_value) {
      options.sizes_mib.clear();
      std::istringstream list(argv[++i]);
      std::string item;
      while (std::getline(list, item, ','))
        options.sizes_mib.push_back(static_cast<uint32_t>(std::strtoul(item.c_str(), nullptr, 0)));
    } else if (!arg.starts_with("--")) {
      options.build_dir = arg;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: godwit-snapshot-bench [BUILD_DIR] [--runs N] [--sizes MiB,MiB...] "
                   "[--budget-s N] [--dir PARENT_DIR]\n");
      return 2;
    }
  }
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    std::puts(R"({"error": "/dev/kvm is not available"})");
    return 1;
  }
  nlohmann::json out = godwit::bench::run_snapshot_bench(options);
  std::puts(out.dump(2).c_str());
  bool failed = out.contains("error");
  for (const auto& size : out.value("sizes", nlohmann::json::array()))
    failed = failed || size.contains("error");
  return failed ? 1 : 0;
}
