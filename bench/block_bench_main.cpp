// godwit-block-bench: the block-device benchmark alone (block_bench.h),
// printed as one JSON document.
//   godwit-block-bench [BUILD_DIR] [--runs N] [--count N] [--direct-count N]
//                      [--depth N] [--span-mib N] [--dir DISK_DIR]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "bench/block_bench.h"

int main(int argc, char** argv) {
  godwit::bench::BlockBenchOptions options;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    auto number = [&](uint32_t& into) {
      if (i + 1 >= argc) return false;
      into = static_cast<uint32_t>(std::strtoul(argv[++i], nullptr, 0));
      return true;
    };
    uint32_t runs = 0;
    bool ok = true;
    if (arg == "--runs") {
      ok = number(runs);
      options.runs = static_cast<int>(runs);
    } else if (arg == "--count") {
      ok = number(options.count);
    } else if (arg == "--direct-count") {
      ok = number(options.direct_count);
    } else if (arg == "--depth") {
      ok = number(options.depth);
    } else if (arg == "--span-mib") {
      ok = number(options.span_mib);
    } else if (arg == "--dir" && i + 1 < argc) {
      options.disk_dir = argv[++i];
    } else if (!arg.starts_with("--")) {
      options.build_dir = arg;
    } else {
      ok = false;
    }
    if (!ok) {
      std::fprintf(stderr,
                   "usage: godwit-block-bench [BUILD_DIR] [--runs N] [--count N] "
                   "[--direct-count N] [--depth N] [--span-mib N] [--dir DISK_DIR]\n");
      return 2;
    }
  }
  if (::access("/dev/kvm", R_OK | W_OK) != 0) {
    std::puts(R"({"error": "/dev/kvm is not available"})");
    return 1;
  }
  nlohmann::json out = godwit::bench::run_block_bench(options);
  std::puts(out.dump(2).c_str());
  return out.contains("error") ? 1 : 0;
}
