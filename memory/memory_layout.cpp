// The x86 guest RAM layout (low RAM below the 3 GiB MMIO hole, the rest above
// 4 GiB) and the host-capacity helpers used to refuse impossible sizes early.
#include <charconv>
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>

#include "memory/guest_memory.h"

namespace godwit {

std::vector<RegionSpec> x86_memory_layout(uint64_t size) {
  std::vector<RegionSpec> layout;
  if (size == 0) return layout;
  uint64_t low = size < kLowRamEnd ? size : kLowRamEnd;
  layout.push_back({0, low});
  if (size > low) layout.push_back({kHighRamStart, size - low});
  return layout;
}

namespace {
// Value in kB of the "<key>:   <n> kB" line, or nullopt if absent.
std::optional<uint64_t> meminfo_kib(std::string_view text, std::string_view key) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string_view::npos) end = text.size();
    std::string_view line = text.substr(pos, end - pos);
    pos = end + 1;
    if (line.size() <= key.size() || line.substr(0, key.size()) != key || line[key.size()] != ':')
      continue;
    std::string_view rest = line.substr(key.size() + 1);
    size_t digits = rest.find_first_of("0123456789");
    if (digits == std::string_view::npos) return std::nullopt;
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(rest.data() + digits, rest.data() + rest.size(), value);
    if (ec != std::errc()) return std::nullopt;
    return value;
  }
  return std::nullopt;
}
}  // namespace

Result<uint64_t> parse_host_memory_bytes(std::string_view meminfo) {
  auto mem = meminfo_kib(meminfo, "MemTotal");
  if (!mem) return fail("/proc/meminfo: no MemTotal line");
  uint64_t swap = meminfo_kib(meminfo, "SwapTotal").value_or(0);
  return (*mem + swap) * 1024;
}

Result<uint64_t> host_memory_bytes() {
  std::ifstream in("/proc/meminfo");
  if (!in) return fail_errno("open /proc/meminfo");
  std::stringstream text;
  text << in.rdbuf();
  return parse_host_memory_bytes(text.str());
}

std::string format_size(uint64_t bytes) {
  char buf[64];
  auto in_unit = [&](uint64_t unit, const char* name) {
    if (bytes % unit == 0) {
      std::snprintf(buf, sizeof buf, "%llu %s", static_cast<unsigned long long>(bytes / unit),
                    name);
    } else {
      std::snprintf(buf, sizeof buf, "%.1f %s", static_cast<double>(bytes) / unit, name);
    }
    return std::string(buf);
  };
  if (bytes >= kGiB) return in_unit(kGiB, "GiB");
  if (bytes >= kMiB && bytes % kMiB == 0) return in_unit(kMiB, "MiB");
  std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  return buf;
}

}  // namespace godwit
