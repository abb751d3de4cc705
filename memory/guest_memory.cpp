// GuestMemory: creates and maps guest RAM (memfd, anonymous or hugetlbfs),
// bounds-checks every VMM access and marks the VMM-side dirty bitmap on writes.
#include "memory/guest_memory.h"

#include <fcntl.h>
#include <linux/magic.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <thread>

namespace godwit {
namespace {

constexpr uint64_t kPrefaultChunk = 64 * kMiB;

std::string hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
  return buf;
}

// Checks that `dir` is a hugetlbfs mount and returns its huge page size.
Result<uint64_t> hugetlbfs_page_size(const std::string& dir) {
  if (dir.empty()) return fail("hugetlbfs backing: no hugetlbfs directory given");
  struct statfs fs {};
  if (::statfs(dir.c_str(), &fs) != 0) return fail_errno("hugetlbfs backing: statfs " + dir);
  if (static_cast<uint64_t>(fs.f_type) != HUGETLBFS_MAGIC)
    return fail("hugetlbfs backing: " + dir +
                " is not a hugetlbfs mount (mount one with 'mount -t hugetlbfs none <dir>' and "
                "reserve pages in /proc/sys/vm/nr_hugepages)");
  return static_cast<uint64_t>(fs.f_bsize);
}

Result<UniqueFd> create_backing_fd(const GuestMemoryOptions& options, uint32_t slot) {
  std::string name = "godwit-ram-" + std::to_string(slot);
  if (options.backing == MemoryBacking::memfd) {
    int fd = ::memfd_create(name.c_str(), MFD_CLOEXEC);
    if (fd < 0) return fail_errno("memfd_create " + name);
    return UniqueFd(fd);
  }
  std::string path = options.hugetlbfs_dir + "/" + name + "-XXXXXX";
  int fd = ::mkostemp(path.data(), O_CLOEXEC);
  if (fd < 0) return fail_errno("hugetlbfs backing: create file in " + options.hugetlbfs_dir);
  ::unlink(path.c_str());  // the mapping keeps the pages; nothing is left behind
  return UniqueFd(fd);
}

}  // namespace

const char* backing_name(MemoryBacking b) {
  switch (b) {
    case MemoryBacking::memfd:
      return "memfd";
    case MemoryBacking::anonymous:
      return "anonymous";
    case MemoryBacking::hugetlbfs:
      return "hugetlbfs";
  }
  return "?";
}

Result<std::unique_ptr<GuestMemory>> GuestMemory::create(const GuestMemoryOptions& options) {
  if (options.size == 0) return fail("guest memory size 0: must be at least 4 KiB");
  if (options.size % kPageSize != 0)
    return fail("guest memory size " + std::to_string(options.size) +
                " bytes: not a multiple of 4 KiB");
  uint64_t host = TRY(host_memory_bytes());
  if (options.size > host)
    return fail("memory size " + format_size(options.size) + " exceeds host memory (" +
                format_size(host) + ")");
  if (options.backing == MemoryBacking::hugetlbfs) {
    uint64_t huge = TRY(hugetlbfs_page_size(options.hugetlbfs_dir));
    for (const RegionSpec& spec : x86_memory_layout(options.size))
      if (spec.size % huge != 0)
        return fail("hugetlbfs backing: guest memory size " + format_size(options.size) +
                    " is not a multiple of the huge page size " + format_size(huge));
  }

  std::unique_ptr<GuestMemory> mem(new GuestMemory());
  mem->backing_ = options.backing;
  for (const RegionSpec& spec : x86_memory_layout(options.size))
    TRY_VOID(mem->map_region(spec, options));
  mem->total_size_ = options.size;
  return mem;
}

Result<void> GuestMemory::map_region(const RegionSpec& spec, const GuestMemoryOptions& options) {
  auto slot = static_cast<uint32_t>(regions_.size());
  std::string what = std::string(backing_name(options.backing)) + " region " +
                     std::to_string(slot) + " gpa " + hex(spec.gpa) + " size " +
                     format_size(spec.size);
  UniqueFd fd;
  void* host = MAP_FAILED;
  if (options.backing == MemoryBacking::anonymous) {
    host = ::mmap(nullptr, spec.size, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (host == MAP_FAILED) return fail_errno("mmap " + what);
  } else {
    fd = TRY(create_backing_fd(options, slot));
    if (::ftruncate(fd.get(), static_cast<off_t>(spec.size)) != 0)
      return fail_errno("ftruncate " + what);
    host = ::mmap(nullptr, spec.size, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
    if (host == MAP_FAILED) {
      if (errno == ENOMEM && options.backing == MemoryBacking::hugetlbfs)
        return fail("mmap " + what + ": not enough free huge pages in " + options.hugetlbfs_dir +
                        " (see HugePages_Free in /proc/meminfo)",
                    ENOMEM);
      return fail_errno("mmap " + what);
    }
  }
  MemoryRegion region;
  region.slot = slot;
  region.gpa = spec.gpa;
  region.size = spec.size;
  region.host = static_cast<uint8_t*>(host);
  region.fd = fd.get();
  region.fd_offset = 0;
  regions_.push_back(region);
  fds_.push_back(std::move(fd));
  dirty_.push_back(std::make_unique<DirtyBitmap>(spec.size / kPageSize));
  return {};
}

GuestMemory::~GuestMemory() {
  for (const MemoryRegion& r : regions_) ::munmap(r.host, r.size);
}

std::vector<RegionSpec> GuestMemory::layout() const {
  std::vector<RegionSpec> specs;
  for (const MemoryRegion& r : regions_) specs.push_back({r.gpa, r.size});
  return specs;
}

const MemoryRegion* GuestMemory::find_region(uint64_t gpa) const {
  for (const MemoryRegion& r : regions_)
    if (gpa >= r.gpa && gpa - r.gpa < r.size) return &r;
  return nullptr;
}

Result<void> GuestMemory::check_range(const char* what, uint64_t gpa, uint64_t len) const {
  uint64_t at = gpa;
  uint64_t left = len;
  while (left > 0) {
    const MemoryRegion* r = find_region(at);
    if (r == nullptr)
      return fail(std::string("guest memory ") + what + " gpa " + hex(gpa) + " len " +
                  std::to_string(len) + ": byte at " + hex(at) + " is outside guest RAM");
    uint64_t n = std::min(left, r->gpa + r->size - at);
    at += n;
    left -= n;
  }
  return {};
}

Result<void> GuestMemory::write(uint64_t gpa, std::span<const uint8_t> data) {
  TRY_VOID(check_range("write", gpa, data.size()));
  uint64_t at = gpa;
  size_t done = 0;
  while (done < data.size()) {
    const MemoryRegion* r = find_region(at);
    uint64_t n = std::min<uint64_t>(data.size() - done, r->gpa + r->size - at);
    std::memcpy(r->host + (at - r->gpa), data.data() + done, n);
    mark_dirty(at, n);
    at += n;
    done += n;
  }
  return {};
}

Result<void> GuestMemory::read(uint64_t gpa, std::span<uint8_t> out) const {
  TRY_VOID(check_range("read", gpa, out.size()));
  uint64_t at = gpa;
  size_t done = 0;
  while (done < out.size()) {
    const MemoryRegion* r = find_region(at);
    uint64_t n = std::min<uint64_t>(out.size() - done, r->gpa + r->size - at);
    std::memcpy(out.data() + done, r->host + (at - r->gpa), n);
    at += n;
    done += n;
  }
  return {};
}

Result<std::span<uint8_t>> GuestMemory::host_span(uint64_t gpa, uint64_t len) const {
  const MemoryRegion* r = find_region(gpa);
  if (r == nullptr || !r->contains(gpa, len))
    return fail("guest memory host_span gpa " + hex(gpa) + " len " + std::to_string(len) +
                ": not inside one RAM region");
  return std::span<uint8_t>(r->host + (gpa - r->gpa), len);
}

void GuestMemory::mark_dirty(uint64_t gpa, uint64_t len) {
  if (len == 0) return;
  uint64_t end = gpa + len < gpa ? UINT64_MAX : gpa + len;
  for (size_t i = 0; i < regions_.size(); ++i) {
    const MemoryRegion& r = regions_[i];
    uint64_t lo = std::max(gpa, r.gpa);
    uint64_t hi = std::min(end, r.gpa + r.size);
    if (lo >= hi) continue;
    uint64_t first = (lo - r.gpa) / kPageSize;
    uint64_t last = (hi - 1 - r.gpa) / kPageSize;
    dirty_[i]->mark_range(first, last - first + 1);
  }
}

Result<void> GuestMemory::prefault(unsigned threads) {
  struct Chunk {
    uint8_t* addr;
    uint64_t len;
  };
  std::vector<Chunk> chunks;
  for (const MemoryRegion& r : regions_)
    for (uint64_t off = 0; off < r.size; off += kPrefaultChunk)
      chunks.push_back({r.host + off, std::min(kPrefaultChunk, r.size - off)});

  std::atomic<size_t> next{0};
  std::atomic<int> first_errno{0};
  std::atomic<uint8_t*> failed_at{nullptr};
  auto worker = [&] {
    for (size_t i = next.fetch_add(1); i < chunks.size() && first_errno.load() == 0;
         i = next.fetch_add(1)) {
      const Chunk& c = chunks[i];
      if (::madvise(c.addr, c.len, MADV_POPULATE_WRITE) == 0) continue;
      if (errno == EINVAL) {
        // Kernels before 5.14 lack MADV_POPULATE_WRITE: touch each page with
        // an atomic add of zero, which faults it writable without changing it.
        for (uint64_t off = 0; off < c.len; off += kPageSize)
          __atomic_fetch_add(c.addr + off, 0, __ATOMIC_RELAXED);
        continue;
      }
      int expected = 0;
      if (first_errno.compare_exchange_strong(expected, errno)) failed_at.store(c.addr);
    }
  };
  unsigned n = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(chunks.size())));
  std::vector<std::thread> pool;
  for (unsigned t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  if (int e = first_errno.load(); e != 0) {
    uint8_t* at = failed_at.load();
    for (const MemoryRegion& r : regions_)
      if (at >= r.host && at < r.host + r.size)
        return fail(Error::from_errno(
            "prefault guest memory (MADV_POPULATE_WRITE) gpa " + hex(r.gpa + (at - r.host)), e));
    return fail(Error::from_errno("prefault guest memory (MADV_POPULATE_WRITE)", e));
  }
  return {};
}

}  // namespace godwit
