// ab-check: verifies the a-b invariant over a memory dump of the a-b guest's
// page range. Exit status: 0 invariant holds, 1 it does not, 2 usage error or
// unreadable file.
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "base/number.h"
#include "tools/abcheck/abcheck.h"

namespace {

constexpr int kExitOk = 0;
constexpr int kExitViolation = 1;
constexpr int kExitUsage = 2;

constexpr const char* kUsage =
    "usage: ab-check DUMP_FILE [--pages N] [--offset BYTES] [--page-size BYTES]\n"
    "  Checks that the first byte of every page of DUMP_FILE (starting at\n"
    "  --offset, default 0) holds k or k-1 (mod 256) with at most one boundary.\n"
    "  --pages N   check exactly N pages (the guest's ab.pages); default: all\n"
    "              complete pages in the file\n"
    "  exit status: 0 invariant holds, 1 violated, 2 usage or unreadable file\n";

struct Options {
  std::string path;
  std::optional<uint64_t> pages;
  uint64_t offset = 0;
  uint64_t page_size = 4096;
};

std::optional<Options> parse_args(int argc, char** argv) {
  Options opts;
  for (int i = 1; i < argc; ++i) {
    std::string_view arg = argv[i];
    auto take_number = [&](std::string_view name) -> std::optional<uint64_t> {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "ab-check: %.*s needs a value\n", int(name.size()), name.data());
        return std::nullopt;
      }
      auto v = godwit::parse_u64(argv[++i]);
      if (!v) {
        std::fprintf(stderr, "ab-check: %.*s: %s\n", int(name.size()), name.data(),
                     v.error().message.c_str());
        return std::nullopt;
      }
      return *v;
    };
    if (arg == "-h" || arg == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(kExitOk);
    } else if (arg == "--pages") {
      opts.pages = take_number(arg);
      if (!opts.pages) return std::nullopt;
    } else if (arg == "--offset") {
      auto v = take_number(arg);
      if (!v) return std::nullopt;
      opts.offset = *v;
    } else if (arg == "--page-size") {
      auto v = take_number(arg);
      if (!v || *v == 0) return std::nullopt;
      opts.page_size = *v;
    } else if (!arg.empty() && arg[0] == '-') {
      std::fprintf(stderr, "ab-check: unknown option %s\n", argv[i]);
      return std::nullopt;
    } else if (opts.path.empty()) {
      opts.path = arg;
    } else {
      std::fprintf(stderr, "ab-check: more than one dump file given\n");
      return std::nullopt;
    }
  }
  if (opts.path.empty()) return std::nullopt;
  return opts;
}

/// Reads [offset, offset + limit) of the file (or to its end when limit is absent).
std::optional<std::vector<uint8_t>> read_dump(const Options& opts) {
  std::ifstream in(opts.path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "ab-check: cannot open %s: %s\n", opts.path.c_str(), std::strerror(errno));
    return std::nullopt;
  }
  in.seekg(0, std::ios::end);
  const auto size = static_cast<uint64_t>(in.tellg());
  if (!in || opts.offset > size) {
    std::fprintf(stderr, "ab-check: %s: offset %llu is beyond the file size %llu\n",
                 opts.path.c_str(), static_cast<unsigned long long>(opts.offset),
                 static_cast<unsigned long long>(size));
    return std::nullopt;
  }
  uint64_t length = size - opts.offset;
  if (opts.pages && *opts.pages * opts.page_size < length) length = *opts.pages * opts.page_size;
  std::vector<uint8_t> data(length);
  in.seekg(static_cast<std::streamoff>(opts.offset));
  in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(length));
  if (!in) {
    std::fprintf(stderr, "ab-check: reading %llu bytes at offset %llu of %s failed\n",
                 static_cast<unsigned long long>(length),
                 static_cast<unsigned long long>(opts.offset), opts.path.c_str());
    return std::nullopt;
  }
  return data;
}

}  // namespace

int main(int argc, char** argv) {
  auto opts = parse_args(argc, argv);
  if (!opts) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  auto dump = read_dump(*opts);
  if (!dump) return kExitUsage;

  const uint64_t available = dump->size() / opts->page_size;
  if (opts->pages && available < *opts->pages) {
    std::printf("FAIL: %s holds %llu pages after offset %llu, --pages asks for %llu\n",
                opts->path.c_str(), static_cast<unsigned long long>(available),
                static_cast<unsigned long long>(opts->offset),
                static_cast<unsigned long long>(*opts->pages));
    return kExitViolation;
  }

  const auto result = godwit::abcheck::check_ab(*dump, opts->page_size);
  if (result.ok) {
    std::printf("OK: %s\n", result.message.c_str());
    std::printf("counter=%u trailing=%u boundary=%llu pages=%llu\n", result.counter,
                result.trailing_counter, static_cast<unsigned long long>(result.boundary),
                static_cast<unsigned long long>(result.pages));
    return kExitOk;
  }
  std::printf("FAIL: %s\n", result.message.c_str());
  if (result.bad_page) {
    std::printf("counter=%u boundary=%llu pages=%llu bad_page=%llu bad_value=%u\n", result.counter,
                static_cast<unsigned long long>(result.boundary),
                static_cast<unsigned long long>(result.pages),
                static_cast<unsigned long long>(*result.bad_page), result.bad_value);
  }
  return kExitViolation;
}
