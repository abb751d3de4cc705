// Guest parameter tables: parsing of assignments, finding and patching tables.
#include "vmm/boot/guest_params.h"

#include <algorithm>
#include <cstring>

#include "vmm/boot/guest_range.h"
#include "base/number.h"

namespace godwit::boot {
namespace {

constexpr size_t kNameSize = 8;
constexpr size_t kKeySize = 12;
constexpr uint64_t kHeaderSize = 24;
constexpr uint64_t kEntrySize = 16;

std::string padded_string(const uint8_t* bytes, size_t size) {
  const auto* end = std::find(bytes, bytes + size, uint8_t{0});
  return std::string(bytes, end);
}

uint32_t le32(const uint8_t* p) {
  return uint32_t{p[0]} | uint32_t{p[1]} << 8 | uint32_t{p[2]} << 16 | uint32_t{p[3]} << 24;
}

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& item : items) out += (out.empty() ? "" : ", ") + item;
  return out.empty() ? "none" : out;
}

Result<GuestParam> parse_one(std::string_view item) {
  const std::string context = "guest parameter '" + std::string(item) + "'";
  size_t dot = item.find('.'), eq = item.find('=');
  if (dot == std::string_view::npos || eq == std::string_view::npos || dot > eq)
    return fail(context + ": expected NAME.KEY=VALUE");
  GuestParam param{std::string(item.substr(0, dot)),
                   std::string(item.substr(dot + 1, eq - dot - 1)), 0};
  if (param.guest.empty() || param.guest.size() > kNameSize)
    return fail(context + ": guest name must be 1 to 8 bytes");
  if (param.key.empty() || param.key.size() > kKeySize)
    return fail(context + ": key must be 1 to 12 bytes");
  auto value = parse_u64(item.substr(eq + 1));
  if (!value || *value > 0xffffffff)
    return fail(context + ": value must be a decimal or 0x-hex number that fits in 32 bits");
  param.value = static_cast<uint32_t>(*value);
  return param;
}

}  // namespace

Result<std::vector<GuestParam>> parse_guest_params(std::span<const std::string> items) {
  std::vector<GuestParam> params;
  for (const std::string& item : items) {
    std::string_view rest = item;
    for (;;) {
      size_t comma = rest.find(',');
      params.push_back(TRY(parse_one(rest.substr(0, comma))));
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return params;
}

Result<std::vector<GuestParamTable>> find_guest_param_tables(const GuestMemory& memory,
                                                             uint64_t image_gpa,
                                                             uint64_t image_size) {
  const uint64_t window = std::min(image_size, kGuestParamSearchWindow);
  std::vector<uint8_t> bytes(window);
  if (auto r = memory.read(image_gpa, bytes); !r)
    return fail(
        r.error().context("searching guest parameter tables in " + hex_range(image_gpa, window)));

  std::vector<GuestParamTable> tables;
  for (uint64_t at = 0; at + kHeaderSize <= window; at += kGuestParamAlignment) {
    if (std::memcmp(bytes.data() + at, kGuestParamMagic, sizeof kGuestParamMagic) != 0) continue;
    GuestParamTable table;
    table.gpa = image_gpa + at;
    table.guest = padded_string(bytes.data() + at + 8, kNameSize);
    uint64_t count = le32(bytes.data() + at + 16);
    if (count > (window - at - kHeaderSize) / kEntrySize)
      return fail("guest parameter table '" + table.guest + "' at " + hex(table.gpa) + " claims " +
                  std::to_string(count) + " entries, more than fit in the image");
    for (uint64_t i = 0; i < count; ++i)
      table.keys.push_back(
          padded_string(bytes.data() + at + kHeaderSize + i * kEntrySize, kKeySize));
    tables.push_back(std::move(table));
  }
  return tables;
}

Result<void> patch_guest_params(GuestMemory& memory, uint64_t image_gpa, uint64_t image_size,
                                std::span<const GuestParam> params) {
  if (params.empty()) return {};
  auto tables = find_guest_param_tables(memory, image_gpa, image_size);
  if (!tables) return fail(tables.error());
  for (const GuestParam& param : params) {
    const std::string name = "guest parameter " + param.guest + "." + param.key;
    auto table = std::find_if(tables->begin(), tables->end(),
                              [&](const GuestParamTable& t) { return t.guest == param.guest; });
    if (table == tables->end()) {
      std::vector<std::string> names;
      for (const auto& t : *tables) names.push_back(t.guest);
      return fail(name + ": the image has no parameter table named '" + param.guest +
                  "' (tables found: " + join(names) + ")");
    }
    auto key = std::find(table->keys.begin(), table->keys.end(), param.key);
    if (key == table->keys.end())
      return fail(name + ": table '" + param.guest + "' has no key '" + param.key +
                  "' (keys: " + join(table->keys) + ")");
    uint64_t value_gpa = table->gpa + kHeaderSize +
                         static_cast<uint64_t>(key - table->keys.begin()) * kEntrySize + kKeySize;
    const uint8_t value[4] = {
        static_cast<uint8_t>(param.value), static_cast<uint8_t>(param.value >> 8),
        static_cast<uint8_t>(param.value >> 16), static_cast<uint8_t>(param.value >> 24)};
    if (auto r = memory.write(value_gpa, value); !r) return fail(r.error().context(name));
  }
  return {};
}

}  // namespace godwit::boot
