// format_vm_status: a stable, aligned text view of the VM info JSON.
#include "tools/godwitctl/status_format.h"

#include <cstdio>
#include <optional>

namespace godwit::ctl {

std::string human_size(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int unit = 0;
  uint64_t whole = bytes;
  while (unit < 4 && whole >= 1024 && whole % 1024 == 0) {
    whole /= 1024;
    ++unit;
  }
  if (whole < 1024 * 10 || unit == 4) return std::to_string(whole) + " " + kUnits[unit];
  // Not a round multiple: one decimal in the largest fitting unit.
  double value = static_cast<double>(bytes);
  unit = 0;
  while (unit < 4 && value >= 1024) {
    value /= 1024;
    ++unit;
  }
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f %s", value, kUnits[unit]);
  return text;
}

namespace {
std::string hex(uint64_t value) {
  char text[24];
  std::snprintf(text, sizeof(text), "0x%llx", static_cast<unsigned long long>(value));
  return text;
}

/// A non-negative integer JSON value (signed or unsigned), if it is one.
std::optional<uint64_t> as_u64(const nlohmann::json& value) {
  if (value.is_number_unsigned()) return value.get<uint64_t>();
  if (value.is_number_integer() && value.get<int64_t>() >= 0) {
    return static_cast<uint64_t>(value.get<int64_t>());
  }
  return std::nullopt;
}

/// A JSON value as text: strings without quotes, everything else compact JSON.
std::string plain(const nlohmann::json& value) {
  if (value.is_string()) return value.get<std::string>();
  return value.dump();
}

void line(std::string& out, const std::string& key, const std::string& value) {
  out += key + ":";
  out += std::string(key.size() < 9 ? 9 - key.size() : 1, ' ');
  out += value + "\n";
}

void format_memory(std::string& out, const nlohmann::json& memory) {
  if (!memory.is_object()) {
    line(out, "memory", plain(memory));
    return;
  }
  std::string summary;
  if (auto size = memory.contains("size_bytes") ? as_u64(memory["size_bytes"]) : std::nullopt) {
    summary = human_size(*size);
  }
  if (memory.contains("backing")) {
    summary += (summary.empty() ? "" : " ") + std::string("(") + plain(memory["backing"]) + ")";
  }
  line(out, "memory", summary.empty() ? "-" : summary);
  if (memory.contains("regions") && memory["regions"].is_array()) {
    for (const auto& region : memory["regions"]) {
      std::optional<uint64_t> gpa_value, size_value;
      if (region.is_object() && region.contains("gpa") && region.contains("size")) {
        gpa_value = as_u64(region["gpa"]);
        size_value = as_u64(region["size"]);
      }
      if (!gpa_value || !size_value) {
        out += "  region " + region.dump() + "\n";
        continue;
      }
      uint64_t gpa = *gpa_value;
      uint64_t size = *size_value;
      out +=
          "  " + hex(gpa) + "-" + hex(size == 0 ? gpa : gpa + size - 1) + "  " + human_size(size);
      if (region.contains("slot")) out += "  (slot " + plain(region["slot"]) + ")";
      out += "\n";
    }
  }
  for (const auto& [key, value] : memory.items()) {
    if (key == "size_bytes" || key == "backing" || key == "regions") continue;
    out += "  " + key + ": " + plain(value) + "\n";
  }
}
/// "k=v k=v" of a flat JSON object (empty for anything else).
std::string key_values(const nlohmann::json& object) {
  std::string text;
  if (!object.is_object()) return text;
  for (const auto& [key, value] : object.items())
    text += (text.empty() ? "" : " ") + key + "=" + plain(value);
  return text;
}

/// One block per virtio device: name, type, page, IRQ, state, then its
/// properties and counters as key=value lines.
void format_virtio(std::string& out, const nlohmann::json& devices) {
  if (!devices.is_array()) {
    line(out, "virtio", plain(devices));
    return;
  }
  line(out, "virtio", devices.empty() ? "none" : std::to_string(devices.size()) + " devices");
  for (const auto& d : devices) {
    if (!d.is_object()) {
      out += "  " + plain(d) + "\n";
      continue;
    }
    std::string head = "  " + plain(d.value("name", nlohmann::json("?"))) + " (" +
                       plain(d.value("type", nlohmann::json("?"))) + ")";
    if (auto base = d.contains("base") ? as_u64(d["base"]) : std::nullopt) head += " " + hex(*base);
    if (d.contains("irq")) head += " irq " + plain(d["irq"]);
    if (d.contains("active")) head += d["active"] == true ? " active" : " inactive";
    if (d.contains("needs_reset")) head += " NEEDS_RESET: " + plain(d["needs_reset"]);
    out += head + "\n";
    if (std::string props = key_values(d.value("properties", nlohmann::json())); !props.empty())
      out += "    " + props + "\n";
    if (std::string counters = key_values(d.value("counters", nlohmann::json())); !counters.empty())
      out += "    " + counters + "\n";
  }
}
}  // namespace

std::string format_vm_status(const nlohmann::json& info) {
  if (!info.is_object()) return plain(info) + "\n";
  std::string out;
  line(out, "state", info.contains("state") ? plain(info["state"]) : "unknown");
  if (info.contains("vcpus")) line(out, "vcpus", plain(info["vcpus"]));
  if (info.contains("memory")) format_memory(out, info["memory"]);
  if (info.contains("virtio")) format_virtio(out, info["virtio"]);
  for (const auto& [key, value] : info.items()) {
    if (key == "state" || key == "vcpus" || key == "memory" || key == "virtio") continue;
    if (value.is_object() && !value.empty()) {
      // One level of nesting reads better as indented lines than as one JSON blob.
      out += key + ":\n";
      for (const auto& [sub_key, sub_value] : value.items()) {
        out += "  " + sub_key + ": " + plain(sub_value) + "\n";
      }
    } else {
      line(out, key, plain(value));
    }
  }
  return out;
}

}  // namespace godwit::ctl
