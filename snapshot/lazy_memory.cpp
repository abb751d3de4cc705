// LazyMemoryLoader: userfaultfd set-up, the fault thread, the prefetchers and
// the per-chunk fill (read + verify once, then UFFDIO_COPY / UFFDIO_ZEROPAGE).
#include "snapshot/lazy_memory.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <unistd.h>

#include <array>

namespace godwit::snapshot {
namespace {

enum ChunkState : uint8_t { kPending, kFilling, kFillingWanted, kDone, kFailed };

Result<UniqueFd> open_userfaultfd() {
  // No UFFD_USER_MODE_ONLY: KVM touches guest RAM from the kernel (the vCPU's
  // own faults, emulation), and those faults must reach the handler too.
  int fd = static_cast<int>(::syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) {
    int e = errno;
    return fail(
        Error::from_errno("userfaultfd (lazy restore needs it; unprivileged use needs "
                          "vm.unprivileged_userfaultfd=1 or CAP_SYS_PTRACE)",
                          e));
  }
  UniqueFd uffd(fd);
  uffdio_api api{.api = UFFD_API, .features = 0, .ioctls = 0};
  if (::ioctl(uffd.get(), UFFDIO_API, &api) != 0) return fail_errno("userfaultfd UFFDIO_API");
  return uffd;
}

uint64_t elapsed_us(std::chrono::steady_clock::time_point since) {
  auto d = std::chrono::steady_clock::now() - since;
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(d).count());
}

}  // namespace

Result<void> LazyMemoryLoader::userfaultfd_available() {
  TRY(open_userfaultfd());
  return {};
}

LazyMemoryLoader::LazyMemoryLoader(MemoryImage image, GuestMemory& memory,
                                   const LazyOptions& options, ErrorCallback on_error)
    : image_(std::move(image)),
      memory_(memory),
      options_(options),
      on_error_(std::move(on_error)),
      hugetlb_(memory.backing() == MemoryBacking::hugetlbfs),
      chunk_count_(image_.layout().size()) {
  chunk_state_ = std::make_unique<std::atomic<uint8_t>[]>(chunk_count_);
  for (size_t c = 0; c < chunk_count_; ++c) chunk_state_[c].store(kPending);
}

Result<std::unique_ptr<LazyMemoryLoader>> LazyMemoryLoader::start(MemoryImage image,
                                                                  GuestMemory& memory,
                                                                  const LazyOptions& options,
                                                                  ErrorCallback on_error) {
  TRY_VOID(image.check_layout(memory.layout()));
  if (options.prefetch && options.prefetch_threads == 0)
    return fail("lazy restore: prefetch_threads must be at least 1");
  if (memory.backing() == MemoryBacking::hugetlbfs) {
    // The fill unit must be one huge page: UFFDIO_COPY on hugetlbfs works in
    // whole huge pages, and a chunk is exactly one 2 MiB page.
    for (const MemoryRegion& r : memory.regions()) {
      struct statfs fs {};
      if (::fstatfs(r.fd, &fs) != 0) return fail_errno("lazy restore: fstatfs of hugetlbfs RAM");
      if (static_cast<uint64_t>(fs.f_bsize) != kChunkBytes)
        return fail("lazy restore: hugetlbfs RAM with " +
                    format_size(static_cast<uint64_t>(fs.f_bsize)) +
                    " pages is not supported (only 2 MiB pages, one per snapshot chunk)");
    }
  }

  std::unique_ptr<LazyMemoryLoader> loader(
      new LazyMemoryLoader(std::move(image), memory, options, std::move(on_error)));
  loader->uffd_ = TRY(open_userfaultfd());
  loader->uffd_raw_ = loader->uffd_.get();
  int wake = ::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (wake < 0) return fail_errno("lazy restore: eventfd");
  loader->wake_fd_.reset(wake);
  TRY_VOID(loader->empty_and_register());

  loader->fault_buffer_.resize(kChunkBytes);
  if (loader->hugetlb_) loader->zero_chunk_.assign(kChunkBytes, 0);
  LazyMemoryLoader* self = loader.get();
  loader->fault_thread_ = std::thread([self] { self->fault_loop(); });
  if (options.prefetch)
    for (unsigned i = 0; i < options.prefetch_threads; ++i)
      loader->prefetchers_.emplace_back([self] { self->prefetch_loop(); });
  return loader;
}

Result<void> LazyMemoryLoader::empty_and_register() {
  for (const MemoryRegion& r : memory_.regions()) {
    std::string what = "lazy restore: region gpa " + hex_u64(r.gpa) + "+" + format_size(r.size);
    // MISSING faults fire only for absent pages: any page left in RAM (a
    // dirty destination, a previous run) would bypass the loader unseen.
    if (memory_.backing() == MemoryBacking::anonymous) {
      if (::madvise(r.host, r.size, MADV_DONTNEED) != 0)
        return fail_errno(what + ": madvise(MADV_DONTNEED)");
    } else if (::fallocate(r.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                           static_cast<off_t>(r.fd_offset), static_cast<off_t>(r.size)) != 0) {
      return fail_errno(what + ": fallocate(PUNCH_HOLE)");
    }
    uffdio_register reg{};
    reg.range = {.start = reinterpret_cast<uint64_t>(r.host), .len = r.size};
    reg.mode = UFFDIO_REGISTER_MODE_MISSING;
    if (::ioctl(uffd_raw_, UFFDIO_REGISTER, &reg) != 0)
      return fail_errno(what + ": UFFDIO_REGISTER (MISSING)");
    uint64_t needed = (uint64_t{1} << _UFFDIO_COPY) | (uint64_t{1} << _UFFDIO_WAKE);
    if (!hugetlb_) needed |= uint64_t{1} << _UFFDIO_ZEROPAGE;
    if ((reg.ioctls & needed) != needed)
      return fail(what + ": the userfaultfd registration does not offer UFFDIO_COPY/ZEROPAGE/WAKE");
  }
  return {};
}

LazyMemoryLoader::~LazyMemoryLoader() {
  stopping_ = true;
  notify_fault_thread();
  if (fault_thread_.joinable()) fault_thread_.join();
  for (std::thread& t : prefetchers_) t.join();
  // Closing releases every thread still waiting on a missing page; with the
  // registration gone its fault is an ordinary one (a hole reads zero).
  uffd_.reset();
}

Result<void> LazyMemoryLoader::wait() {
  std::unique_lock lock(mu_);
  finished_.wait(lock, [&] { return complete_ || error_.has_value(); });
  if (error_) return fail(*error_);
  return {};
}

LazyStats LazyMemoryLoader::stats() const {
  LazyStats s;
  s.faults = faults_.load();
  s.chunks_on_fault = chunks_on_fault_.load();
  s.chunks_prefetched = chunks_prefetched_.load();
  s.max_fault_us = max_fault_us_.load();
  std::lock_guard lock(mu_);
  s.complete = complete_;
  return s;
}

// ---- fault thread ----

void LazyMemoryLoader::fault_loop() {
  std::array<pollfd, 2> fds{{{uffd_raw_, POLLIN, 0}, {wake_fd_.get(), POLLIN, 0}}};
  std::array<uffd_msg, 32> msgs{};
  while (!stopping_) {
    if (done_count_.load() == chunk_count_) {
      serve_parked();
      finish();
      break;
    }
    if (::poll(fds.data(), fds.size(), -1) < 0) {
      if (errno == EINTR) continue;
      report_error(Error::from_errno("lazy restore: poll on the userfaultfd"));
      break;
    }
    if (fds[1].revents & POLLIN) {
      uint64_t ignored = 0;
      (void)!::read(wake_fd_.get(), &ignored, sizeof ignored);
    }
    if (fds[0].revents & POLLIN) {
      serving_faults_ = 1;
      for (;;) {
        ssize_t n = ::read(uffd_raw_, msgs.data(), sizeof msgs);
        if (n < 0) {
          if (errno != EAGAIN && errno != EINTR)
            report_error(Error::from_errno("lazy restore: read from the userfaultfd"));
          break;
        }
        auto since = std::chrono::steady_clock::now();
        for (size_t i = 0; i < static_cast<size_t>(n) / sizeof(uffd_msg); ++i) {
          if (msgs[i].event != UFFD_EVENT_PAGEFAULT) continue;
          faults_.fetch_add(1, std::memory_order_relaxed);
          uint64_t address = msgs[i].arg.pagefault.address & ~(kPageSize - 1);
          auto chunk = chunk_of_host(address);
          if (!chunk) {
            // Not guest RAM (cannot happen: only RAM is registered); waking
            // is harmless and keeps the thread from hanging.
            (void)uffd_wake(address, kPageSize);
            continue;
          }
          if (handle_fault(address, *chunk))
            note_fault_served(since);
          else
            parked_.push_back({address, *chunk, since});
        }
      }
      serving_faults_ = 0;
      serving_faults_.notify_all();
    }
    serve_parked();
  }
  serving_faults_ = 0;
  serving_faults_.notify_all();
}

bool LazyMemoryLoader::handle_fault(uint64_t address, size_t chunk) {
  std::atomic<uint8_t>& state = chunk_state_[chunk];
  for (;;) {
    uint8_t s = state.load();
    if (s == kPending) {
      if (!state.compare_exchange_strong(s, kFilling)) continue;
      if (auto filled = fill_chunk(chunk, fault_buffer_); !filled) {
        state = kFailed;
        report_error(filled.error());
        return false;
      }
      chunks_on_fault_.fetch_add(1, std::memory_order_relaxed);
      mark_done(chunk);
      s = kDone;
    } else if (s == kFilling) {
      if (!state.compare_exchange_strong(s, kFillingWanted)) continue;
      return false;
    } else if (s == kFillingWanted || (s == kFailed && !error_reported_)) {
      return false;  // served by serve_parked()
    }
    if (auto resolved = resolve_in_done_chunk(address); !resolved) report_error(resolved.error());
    return true;
  }
}

Result<void> LazyMemoryLoader::resolve_in_done_chunk(uint64_t address) {
  // Every data page of a done chunk is present, so a page still missing is a
  // zero page left as a hole (memfd), or one discarded since; either way it
  // is zero. If it is present, the copy may have raced the fault: wake.
  // A failed chunk gets zeros too, but only once on_error has returned (the
  // VMM has asked to stop): a thread must not stay blocked for ever, or the
  // VMM's own stop (joining vCPU and device threads) could hang on it.
  if (hugetlb_) {
    uint64_t huge = address & ~(kChunkBytes - 1);
    return uffd_copy(huge, zero_chunk_.data(), kChunkBytes);
  }
  return uffd_zeropage(address, kPageSize);
}

void LazyMemoryLoader::serve_parked() {
  std::erase_if(parked_, [&](const ParkedFault& p) {
    uint8_t s = chunk_state_[p.chunk].load();
    if (s != kDone && !(s == kFailed && error_reported_)) return false;
    if (auto resolved = resolve_in_done_chunk(p.address); !resolved) report_error(resolved.error());
    note_fault_served(p.since);
    return true;
  });
}

void LazyMemoryLoader::finish() {
  // Unregistering wakes any fault still queued; it retries as an ordinary
  // fault on memory that now holds the image.
  for (const MemoryRegion& r : memory_.regions()) {
    uffdio_range range{.start = reinterpret_cast<uint64_t>(r.host), .len = r.size};
    if (::ioctl(uffd_raw_, UFFDIO_UNREGISTER, &range) != 0)
      report_error(Error::from_errno("lazy restore: UFFDIO_UNREGISTER " +
                                     describe_host(range.start, r.size)));
  }
  uffd_.reset();
  {
    std::lock_guard lock(mu_);
    complete_ = true;
  }
  finished_.notify_all();
}

void LazyMemoryLoader::note_fault_served(std::chrono::steady_clock::time_point since) {
  uint64_t us = elapsed_us(since);
  uint64_t seen = max_fault_us_.load(std::memory_order_relaxed);
  while (us > seen && !max_fault_us_.compare_exchange_weak(seen, us)) {
  }
}

// ---- prefetchers ----

void LazyMemoryLoader::prefetch_loop() {
  std::vector<uint8_t> buffer(kChunkBytes);
  while (!stopping_ && !failed_) {
    // Faults come first: a vCPU is stopped until its chunk arrives, and the
    // fault thread fills it itself, so it must not share the CPU and the
    // files with a prefetch meanwhile.
    while (serving_faults_.load() != 0 && !stopping_) serving_faults_.wait(1);
    size_t chunk = prefetch_cursor_.fetch_add(1);
    if (chunk >= chunk_count_) return;
    uint8_t expected = kPending;
    if (!chunk_state_[chunk].compare_exchange_strong(expected, kFilling)) continue;
    if (auto filled = fill_chunk(chunk, buffer); !filled) {
      uint8_t was = chunk_state_[chunk].exchange(kFailed);
      report_error(filled.error());
      if (was == kFillingWanted) notify_fault_thread();
      return;
    }
    chunks_prefetched_.fetch_add(1, std::memory_order_relaxed);
    mark_done(chunk);
  }
}

// ---- filling ----

Result<void> LazyMemoryLoader::fill_chunk(size_t chunk, std::vector<uint8_t>& buffer) {
  const ChunkInfo& info = image_.layout()[chunk];
  std::span<uint8_t> content(buffer.data(), uint64_t{info.pages} * kPageSize);
  if (auto read = image_.read_chunk(chunk, content); !read)
    return fail(read.error().context("lazy restore"));
  uint64_t host = chunk_host(chunk);
  if (hugetlb_) {
    // Whole huge page or nothing: an all-zero chunk stays a hole.
    for (uint32_t p = 0; p < info.pages; ++p)
      if (!page_is_zero_in_image(chunk, p)) return uffd_copy(host, content.data(), content.size());
    return {};
  }
  for (uint32_t p = 0; p < info.pages;) {
    bool zero = page_is_zero_in_image(chunk, p);
    uint32_t end = p + 1;
    while (end < info.pages && page_is_zero_in_image(chunk, end) == zero) ++end;
    uint64_t offset = uint64_t{p} * kPageSize;
    uint64_t len = uint64_t{end - p} * kPageSize;
    if (!zero) {
      TRY_VOID(uffd_copy(host + offset, content.data() + offset, len));
    } else if (memory_.backing() == MemoryBacking::anonymous) {
      // Maps the shared zero page: no memory is allocated. On memfd
      // UFFDIO_ZEROPAGE would allocate a zeroed shmem page, so zero runs stay
      // holes there (already zero) until the guest touches them.
      TRY_VOID(uffd_zeropage(host + offset, len));
    }
    p = end;
  }
  return {};
}

void LazyMemoryLoader::mark_done(size_t chunk) {
  uint8_t was = chunk_state_[chunk].exchange(kDone);
  bool last = done_count_.fetch_add(1) + 1 == chunk_count_;
  if (last || was == kFillingWanted) notify_fault_thread();
}

void LazyMemoryLoader::report_error(const Error& error) {
  if (failed_.exchange(true)) return;
  // The VMM hears of it (and requests a stop) before wait() returns and
  // before any fault on the failed chunk is answered (with zeros).
  if (on_error_) on_error_(error);
  error_reported_ = true;
  {
    std::lock_guard lock(mu_);
    error_ = error;
  }
  finished_.notify_all();
  notify_fault_thread();
}

void LazyMemoryLoader::notify_fault_thread() {
  uint64_t one = 1;
  (void)!::write(wake_fd_.get(), &one, sizeof one);
}

// ---- userfaultfd ioctls ----

Result<void> LazyMemoryLoader::uffd_copy(uint64_t dst, const uint8_t* src, uint64_t len) {
  const uint64_t unit = hugetlb_ ? kChunkBytes : kPageSize;
  while (len > 0) {
    uffdio_copy copy{
        .dst = dst, .src = reinterpret_cast<uint64_t>(src), .len = len, .mode = 0, .copy = 0};
    if (::ioctl(uffd_raw_, UFFDIO_COPY, &copy) == 0) return {};
    int e = errno;
    uint64_t done = copy.copy > 0 ? static_cast<uint64_t>(copy.copy) : 0;
    if (e == EAGAIN) {  // partial copy (stopped before an existing page) or mm changing: go on
      dst += done;
      src += done;
      len -= done;
      continue;
    }
    if (e == EEXIST) {
      // The first page of the rest is already there: keep it (someone filled
      // it with what it must hold), wake its waiters, copy the others.
      TRY_VOID(uffd_wake(dst, unit));
      dst += unit;
      src += unit;
      len -= unit;
      continue;
    }
    return fail(Error::from_errno("lazy restore: UFFDIO_COPY " + describe_host(dst, len), e));
  }
  return {};
}

Result<void> LazyMemoryLoader::uffd_zeropage(uint64_t dst, uint64_t len) {
  while (len > 0) {
    uffdio_zeropage zero{.range = {.start = dst, .len = len}, .mode = 0, .zeropage = 0};
    if (::ioctl(uffd_raw_, UFFDIO_ZEROPAGE, &zero) == 0) return {};
    int e = errno;
    uint64_t done = zero.zeropage > 0 ? static_cast<uint64_t>(zero.zeropage) : 0;
    if (e == EAGAIN) {
      dst += done;
      len -= done;
      continue;
    }
    if (e == EEXIST) {
      TRY_VOID(uffd_wake(dst, kPageSize));
      dst += kPageSize;
      len -= kPageSize;
      continue;
    }
    return fail(Error::from_errno("lazy restore: UFFDIO_ZEROPAGE " + describe_host(dst, len), e));
  }
  return {};
}

Result<void> LazyMemoryLoader::uffd_wake(uint64_t dst, uint64_t len) {
  uffdio_range range{.start = dst, .len = len};
  if (::ioctl(uffd_raw_, UFFDIO_WAKE, &range) != 0)
    return fail_errno("lazy restore: UFFDIO_WAKE " + describe_host(dst, len));
  return {};
}

// ---- geometry ----

std::optional<size_t> LazyMemoryLoader::chunk_of_host(uint64_t address) const {
  for (const MemoryRegion& r : memory_.regions()) {
    auto host = reinterpret_cast<uint64_t>(r.host);
    if (address >= host && address - host < r.size)
      return image_.layout().chunk_of(r.gpa + (address - host));
  }
  return std::nullopt;
}

uint64_t LazyMemoryLoader::chunk_host(size_t chunk) const {
  const ChunkInfo& info = image_.layout()[chunk];
  const MemoryRegion& r = memory_.regions()[info.region];
  return reinterpret_cast<uint64_t>(r.host) + (info.gpa - r.gpa);
}

bool LazyMemoryLoader::page_is_zero_in_image(size_t chunk, uint32_t page) const {
  return !bit_test(image_.file(image_.owner(chunk, page)).chunk(chunk).present, page);
}

std::string LazyMemoryLoader::describe_host(uint64_t address, uint64_t len) const {
  for (const MemoryRegion& r : memory_.regions()) {
    auto host = reinterpret_cast<uint64_t>(r.host);
    if (address >= host && address - host < r.size)
      return "gpa " + hex_u64(r.gpa + (address - host)) + "+" + format_size(len);
  }
  return "host address " + hex_u64(address);
}

}  // namespace godwit::snapshot
