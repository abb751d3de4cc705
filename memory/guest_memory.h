// Guest physical memory: a set of host-mapped regions (memfd by default,
// anonymous or hugetlbfs on request) laid out as on x86 (a hole below 4 GiB
// for MMIO when RAM is larger than the low area), plus the single accessor
// through which every VMM-side write into guest memory goes. KVM's dirty log
// cannot see writes made by the VMM itself, so each such write marks the
// VMM-side dirty bitmap; forgetting this loses data silently during migration.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"

namespace godwit {

inline constexpr uint64_t kPageSize = 4096;
inline constexpr uint64_t kMiB = 1024ull * 1024;
inline constexpr uint64_t kGiB = 1024ull * kMiB;
/// Low RAM ends here when the guest has more memory than fits below it; the
/// range [kLowRamEnd, 4 GiB) is the MMIO hole (virtio, IOAPIC, LAPIC, ...).
inline constexpr uint64_t kLowRamEnd = 3 * kGiB;
inline constexpr uint64_t kHighRamStart = 4 * kGiB;

/// How guest RAM is backed on the host.
enum class MemoryBacking { memfd, anonymous, hugetlbfs };
/// "memfd", "anonymous" or "hugetlbfs".
[[nodiscard]] const char* backing_name(MemoryBacking backing);

/// Bytes the host can back (MemTotal + SwapTotal of /proc/meminfo), or an
/// error if /proc/meminfo cannot be read.
[[nodiscard]] Result<uint64_t> host_memory_bytes();
/// Parses MemTotal + SwapTotal (in bytes) out of /proc/meminfo text.
[[nodiscard]] Result<uint64_t> parse_host_memory_bytes(std::string_view meminfo);
/// "512 GiB", "1.5 GiB", "64 MiB", "12345 bytes": sizes in error messages.
[[nodiscard]] std::string format_size(uint64_t bytes);

/// Where one RAM region lives in the guest (no host resources yet).
struct RegionSpec {
  uint64_t gpa = 0;
  uint64_t size = 0;
};

/// The x86 layout for `size` bytes of RAM: [0, min(size, 3 GiB)) and, for the
/// rest, [4 GiB, 4 GiB + rest). Pure function, unit-tested.
std::vector<RegionSpec> x86_memory_layout(uint64_t size);

/// One mapped RAM region: KVM slot number, guest range, host mapping, and the
/// backing fd (-1 for anonymous) with the region's offset inside it.
struct MemoryRegion {
  uint32_t slot = 0;
  uint64_t gpa = 0;
  uint64_t size = 0;
  uint8_t* host = nullptr;
  int fd = -1;
  uint64_t fd_offset = 0;

  /// True when [a, a+len) lies entirely inside this region.
  [[nodiscard]] bool contains(uint64_t a, uint64_t len) const {
    return a >= gpa && len <= size && a - gpa <= size - len;
  }
};

/// A lock-free bitmap with one bit per guest page of one region, set by the
/// VMM whenever it writes guest memory (and by nothing else).
class DirtyBitmap {
 public:
  explicit DirtyBitmap(uint64_t pages);
  /// Marks page `index` dirty (relaxed atomic OR).
  void mark(uint64_t index);
  /// Marks pages [first, first + count).
  void mark_range(uint64_t first, uint64_t count);
  /// True when page `index` is marked.
  [[nodiscard]] bool test(uint64_t index) const;
  /// Atomically reads and clears 64 pages starting at word `word`.
  [[nodiscard]] uint64_t take_word(uint64_t word);
  /// Clears every bit.
  void clear();
  /// Number of set bits.
  [[nodiscard]] uint64_t count() const;
  /// Number of pages (bits) tracked.
  [[nodiscard]] uint64_t pages() const { return pages_; }
  /// Number of 64-bit words (take_word() indices are [0, words())).
  [[nodiscard]] uint64_t words() const { return words_.size(); }

 private:
  uint64_t pages_;
  std::vector<std::atomic<uint64_t>> words_;
};

/// Options for creating guest memory.
struct GuestMemoryOptions {
  uint64_t size = 0;  ///< total RAM bytes (multiple of 4 KiB, > 0)
  MemoryBacking backing = MemoryBacking::memfd;
  std::string hugetlbfs_dir{};  ///< for MemoryBacking::hugetlbfs
};

/// All guest RAM. Thread-safe for concurrent reads/writes of guest memory
/// (the guest races with us anyway); the region list never changes after
/// creation.
class GuestMemory {
 public:
  /// Creates and maps RAM per x86_memory_layout(options.size). Fails with a
  /// clear message for size 0, a size not a multiple of 4 KiB, or a size the
  /// host cannot provide.
  static Result<std::unique_ptr<GuestMemory>> create(const GuestMemoryOptions& options);
  ~GuestMemory();
  GuestMemory(const GuestMemory&) = delete;
  GuestMemory& operator=(const GuestMemory&) = delete;

  /// The RAM regions in slot order (region index == KVM slot number).
  [[nodiscard]] std::span<const MemoryRegion> regions() const { return regions_; }
  /// Total RAM bytes over all regions.
  [[nodiscard]] uint64_t total_size() const { return total_size_; }
  /// Where the regions are, without their host resources (region order).
  [[nodiscard]] std::vector<RegionSpec> layout() const;
  /// How the RAM is backed on the host.
  [[nodiscard]] MemoryBacking backing() const { return backing_; }

  /// Copies `data` into guest memory at `gpa` (may span regions only if they
  /// are contiguous; fails if any byte is outside RAM) and marks the pages in
  /// the VMM dirty bitmap.
  [[nodiscard]] Result<void> write(uint64_t gpa, std::span<const uint8_t> data);
  /// Copies guest memory at `gpa` into `out`; fails if outside RAM.
  [[nodiscard]] Result<void> read(uint64_t gpa, std::span<uint8_t> out) const;

  /// Writes a trivially copyable value (little-endian host) at `gpa`.
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<void> write_obj(uint64_t gpa, const T& v) {
    return write(gpa, std::span(reinterpret_cast<const uint8_t*>(&v), sizeof(T)));
  }
  /// Reads a trivially copyable value at `gpa`.
  template <typename T>
  requires std::is_trivially_copyable_v<T>
  [[nodiscard]] Result<T> read_obj(uint64_t gpa) const {
    T v{};
    TRY_VOID(read(gpa, std::span(reinterpret_cast<uint8_t*>(&v), sizeof(T))));
    return v;
  }

  /// Host view of [gpa, gpa+len) for zero-copy reads (e.g. sending pages or a
  /// device reading a buffer). Fails unless the range lies in one region.
  /// Anyone who writes through this span must call mark_dirty() afterwards.
  [[nodiscard]] Result<std::span<uint8_t>> host_span(uint64_t gpa, uint64_t len) const;
  /// Marks [gpa, gpa+len) dirty in the VMM-side bitmap (ignores bytes outside RAM).
  void mark_dirty(uint64_t gpa, uint64_t len);

  /// Faults in every page of guest RAM for writing (MADV_POPULATE_WRITE),
  /// splitting the work across `threads` threads (at least 1). Fresh-memory
  /// faults are expensive on the development hosts, so a migration
  /// destination calls this before pages arrive. Contents are unchanged and
  /// nothing is marked dirty.
  [[nodiscard]] Result<void> prefault(unsigned threads);

  /// The region holding `gpa`, or nullptr.
  [[nodiscard]] const MemoryRegion* find_region(uint64_t gpa) const;
  /// The VMM-side dirty bitmap of region `index` (same order as regions()).
  [[nodiscard]] DirtyBitmap& vmm_dirty(size_t index) { return *dirty_[index]; }

 private:
  GuestMemory() = default;
  [[nodiscard]] Result<void> map_region(const RegionSpec& spec, const GuestMemoryOptions& options);
  /// Fails unless every byte of [gpa, gpa+len) is RAM.
  [[nodiscard]] Result<void> check_range(const char* what, uint64_t gpa, uint64_t len) const;

  std::vector<MemoryRegion> regions_;
  std::vector<UniqueFd> fds_;  ///< owns MemoryRegion::fd (one per region, empty if anonymous)
  std::vector<std::unique_ptr<DirtyBitmap>> dirty_;
  uint64_t total_size_ = 0;
  MemoryBacking backing_ = MemoryBacking::memfd;
};

}  // namespace godwit
