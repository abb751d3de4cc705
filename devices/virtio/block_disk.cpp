// Raw disk image I/O for virtio-blk (see block_disk.h): open-time checks,
// vectored positional I/O resumed across short transfers, the O_DIRECT
// bounce path, flush, hole punching and zeroing.
#include "devices/virtio/block_disk.h"

#include <fcntl.h>
#include <linux/fs.h>
#include <linux/stat.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <climits>
#include <cstring>
#include <utility>

namespace godwit::virtio {
namespace {

/// Alignment assumed for O_DIRECT when the file system does not report one.
constexpr uint64_t kDefaultDirectAlign = 4096;
/// iovecs per preadv / pwritev call.
constexpr size_t kMaxIovecs = IOV_MAX;

uint64_t align_down(uint64_t v, uint64_t a) { return v & ~(a - 1); }
uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

uint64_t total_length(std::span<const iovec> iov) {
  uint64_t n = 0;
  for (const iovec& v : iov) n += v.iov_len;
  return n;
}

/// A position inside a list of iovecs that gathers the next bytes as iovecs,
/// or copies them to / from a flat buffer, advancing as it goes.
class IovCursor {
 public:
  explicit IovCursor(std::span<const iovec> iov) : iov_(iov) { skip_empty(); }

  /// Fills `out` with the iovecs of the next bytes (at most out.size()
  /// entries); returns how many. Does not advance.
  size_t gather(std::span<iovec> out) const {
    size_t n = 0;
    for (size_t i = index_; i < iov_.size() && n < out.size(); ++i) {
      size_t skip = i == index_ ? offset_ : 0;
      if (iov_[i].iov_len == skip) continue;
      out[n++] = iovec{static_cast<uint8_t*>(iov_[i].iov_base) + skip, iov_[i].iov_len - skip};
    }
    return n;
  }
  /// Moves past `n` bytes.
  void advance(uint64_t n) { walk(n, nullptr, nullptr); }
  /// Copies the next `n` bytes into `dst` and moves past them.
  void copy_out(uint8_t* dst, uint64_t n) { walk(n, dst, nullptr); }
  /// Copies `n` bytes from `src` into the next bytes and moves past them.
  void copy_in(const uint8_t* src, uint64_t n) { walk(n, nullptr, src); }

 private:
  void walk(uint64_t n, uint8_t* dst, const uint8_t* src) {
    while (n > 0 && index_ < iov_.size()) {
      auto* base = static_cast<uint8_t*>(iov_[index_].iov_base) + offset_;
      uint64_t piece = std::min<uint64_t>(n, iov_[index_].iov_len - offset_);
      if (dst) std::memcpy(std::exchange(dst, dst + piece), base, piece);
      if (src) std::memcpy(base, std::exchange(src, src + piece), piece);
      offset_ += piece;
      n -= piece;
      skip_empty();
    }
  }
  void skip_empty() {
    while (index_ < iov_.size() && offset_ == iov_[index_].iov_len) {
      ++index_;
      offset_ = 0;
    }
  }

  std::span<const iovec> iov_;
  size_t index_ = 0;
  size_t offset_ = 0;
};

std::string at(const std::string& path, uint64_t offset, uint64_t len) {
  return path + " offset " + std::to_string(offset) + " length " + std::to_string(len);
}

}  // namespace

Result<BlockDisk> BlockDisk::open(const std::string& path, bool readonly, bool direct) {
  BlockDisk disk;
  disk.path_ = path;
  disk.readonly_ = readonly;
  disk.direct_ = direct;
  int flags = (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0);
  disk.fd_.reset(::open(path.c_str(), flags));
  if (!disk.fd_) {
    int e = errno;
    if (direct && e == EINVAL) {
      Error err = Error::from_errno("open " + path + " with O_DIRECT", e);
      err.message +=
          " (its file system refuses O_DIRECT, as tmpfs did before Linux 6.6; "
          "use direct=off or put the image on another file system)";
      return fail(std::move(err));
    }
    return fail(Error::from_errno(std::string("open ") + path + (readonly ? " read-only" : ""), e));
  }
  int fd = disk.fd_.get();

  struct stat st {};
  if (::fstat(fd, &st) != 0) return fail_errno("fstat " + path);
  if (S_ISREG(st.st_mode)) {
    disk.size_ = static_cast<uint64_t>(st.st_size);
  } else if (S_ISBLK(st.st_mode)) {
    if (::ioctl(fd, BLKGETSIZE64, &disk.size_) != 0) return fail_errno("BLKGETSIZE64 " + path);
  } else {
    return fail(path + ": not a regular file or block device");
  }
  if (st.st_blksize > 0) disk.allocation_unit_ = static_cast<uint32_t>(st.st_blksize);
  if (disk.size_ == 0) return fail(path + ": empty disk image (0 bytes)");
  if (disk.size_ % 512 != 0) {
    return fail(path + ": size " + std::to_string(disk.size_) +
                " bytes is not a multiple of 512 (the virtio-blk sector size)");
  }

  if (direct) {
    struct statx sx {};
    if (::statx(fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) == 0 &&
        (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align != 0) {
      disk.memory_align_ = std::max<uint64_t>(sx.stx_dio_mem_align, 1);
      disk.offset_align_ = sx.stx_dio_offset_align;
    } else {
      disk.memory_align_ = disk.offset_align_ = kDefaultDirectAlign;
    }
    if (disk.offset_align_ > kBlockBounceBytes || (disk.offset_align_ & (disk.offset_align_ - 1))) {
      return fail(path + ": unusable O_DIRECT alignment " + std::to_string(disk.offset_align_));
    }
    if (disk.size_ % disk.offset_align_ != 0) {
      return fail(path + ": size " + std::to_string(disk.size_) +
                  " bytes is not a multiple of the O_DIRECT alignment " +
                  std::to_string(disk.offset_align_) + " of its file system; use direct=off");
    }
    void* p = nullptr;
    const uint64_t bounce_align = std::max(disk.memory_align_, kDefaultDirectAlign);
    if (int e = ::posix_memalign(&p, bounce_align, kBlockBounceBytes); e != 0) {
      return fail(Error::from_errno("posix_memalign O_DIRECT bounce buffer for " + path, e));
    }
    disk.bounce_.reset(static_cast<uint8_t*>(p));
    // Some file systems accept the flag at open and refuse the I/O itself.
    if (auto r = disk.transfer_bounce(false, 0, disk.offset_align_); !r) {
      return fail(r.error().context(path + ": O_DIRECT read refused by its file system"));
    }
  }

  if (!readonly && S_ISREG(st.st_mode)) {
    // Punching beyond the end of the file (size kept) changes nothing and
    // tells whether the file system can deallocate.
    disk.can_punch_hole_ = ::fallocate(fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                                       static_cast<off_t>(disk.size_), 4096) == 0;
  }
  return disk;
}

bool BlockDisk::aligned_for_direct(uint64_t offset, std::span<const iovec> iov) const {
  if (offset % offset_align_ != 0) return false;
  for (const iovec& v : iov) {
    if (reinterpret_cast<uintptr_t>(v.iov_base) % memory_align_ != 0) return false;
    if (v.iov_len % offset_align_ != 0) return false;
  }
  return true;
}

Result<void> BlockDisk::transfer_vectored(bool is_write, uint64_t offset,
                                          std::span<const iovec> iov) {
  uint64_t left = total_length(iov);
  IovCursor cursor(iov);
  std::array<iovec, kMaxIovecs> batch;
  while (left > 0) {
    size_t count = cursor.gather(batch);
    ssize_t done = is_write ? ::pwritev(fd_.get(), batch.data(), static_cast<int>(count),
                                        static_cast<off_t>(offset))
                            : ::preadv(fd_.get(), batch.data(), static_cast<int>(count),
                                       static_cast<off_t>(offset));
    if (done < 0) {
      if (errno == EINTR) continue;
      return fail_errno((is_write ? "pwritev " : "preadv ") + at(path_, offset, left));
    }
    if (done == 0) {
      return fail((is_write ? "pwritev " : "preadv ") + at(path_, offset, left) +
                      (is_write ? ": wrote nothing" : ": end of file"),
                  EIO);
    }
    cursor.advance(static_cast<uint64_t>(done));
    offset += static_cast<uint64_t>(done);
    left -= static_cast<uint64_t>(done);
  }
  return {};
}

Result<void> BlockDisk::transfer_bounce(bool is_write, uint64_t offset, uint64_t len,
                                        uint64_t buffer_offset) {
  uint8_t* buf = bounce_.get() + buffer_offset;
  uint64_t done = 0;
  while (done < len) {
    ssize_t n = is_write
                    ? ::pwrite(fd_.get(), buf + done, len - done, static_cast<off_t>(offset + done))
                    : ::pread(fd_.get(), buf + done, len - done, static_cast<off_t>(offset + done));
    if (n < 0) {
      if (errno == EINTR) continue;
      return fail_errno((is_write ? "pwrite " : "pread ") + at(path_, offset + done, len - done));
    }
    if (n == 0) {
      return fail((is_write ? "pwrite " : "pread ") + at(path_, offset + done, len - done) +
                      (is_write ? ": wrote nothing" : ": end of file"),
                  EIO);
    }
    done += static_cast<uint64_t>(n);
  }
  return {};
}

Result<void> BlockDisk::read_bounced(uint64_t offset, std::span<const iovec> iov) {
  const uint64_t end = offset + total_length(iov);
  IovCursor cursor(iov);
  for (uint64_t pos = offset; pos < end;) {
    uint64_t block_start = align_down(pos, offset_align_);
    uint64_t block_end = std::min(align_up(end, offset_align_), block_start + kBlockBounceBytes);
    TRY_VOID(transfer_bounce(false, block_start, block_end - block_start));
    uint64_t take = std::min(end, block_end) - pos;
    cursor.copy_in(bounce_.get() + (pos - block_start), take);
    pos += take;
  }
  return {};
}

Result<void> BlockDisk::write_bounced(uint64_t offset, std::span<const iovec> iov) {
  const uint64_t end = offset + total_length(iov);
  IovCursor cursor(iov);
  for (uint64_t pos = offset; pos < end;) {
    uint64_t block_start = align_down(pos, offset_align_);
    uint64_t block_end = std::min(align_up(end, offset_align_), block_start + kBlockBounceBytes);
    uint64_t take = std::min(end, block_end) - pos;
    // Keep the bytes of partial blocks that the request does not cover.
    if (pos != block_start) TRY_VOID(transfer_bounce(false, block_start, offset_align_));
    if (pos + take != block_end) {
      uint64_t last = block_end - offset_align_;
      TRY_VOID(transfer_bounce(false, last, offset_align_, last - block_start));
    }
    cursor.copy_out(bounce_.get() + (pos - block_start), take);
    TRY_VOID(transfer_bounce(true, block_start, block_end - block_start));
    pos += take;
  }
  return {};
}

Result<void> BlockDisk::read(uint64_t offset, std::span<const iovec> iov) {
  if (direct_ && !aligned_for_direct(offset, iov)) return read_bounced(offset, iov);
  return transfer_vectored(false, offset, iov);
}

Result<void> BlockDisk::write(uint64_t offset, std::span<const iovec> iov) {
  if (readonly_) return fail("write " + at(path_, offset, total_length(iov)) + ": read-only disk");
  if (direct_ && !aligned_for_direct(offset, iov)) return write_bounced(offset, iov);
  return transfer_vectored(true, offset, iov);
}

Result<void> BlockDisk::flush() {
  while (::fdatasync(fd_.get()) != 0) {
    if (errno != EINTR) return fail_errno("fdatasync " + path_);
  }
  return {};
}

Result<void> BlockDisk::punch_hole(uint64_t offset, uint64_t len) {
  if (::fallocate(fd_.get(), FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, static_cast<off_t>(offset),
                  static_cast<off_t>(len)) != 0) {
    return fail_errno("fallocate PUNCH_HOLE " + at(path_, offset, len));
  }
  return {};
}

Result<void> BlockDisk::write_zeroes(uint64_t offset, uint64_t len) {
  if (can_zero_range_) {
    if (::fallocate(fd_.get(), FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE,
                    static_cast<off_t>(offset), static_cast<off_t>(len)) == 0) {
      return {};
    }
    if (errno != EOPNOTSUPP) return fail_errno("fallocate ZERO_RANGE " + at(path_, offset, len));
    can_zero_range_ = false;  // e.g. tmpfs: write the zeroes instead from now on
  }
  if (!zeroes_) {
    void* p = nullptr;
    if (int e = ::posix_memalign(&p, kDefaultDirectAlign, kBlockBounceBytes); e != 0) {
      return fail(Error::from_errno("posix_memalign zero buffer for " + path_, e));
    }
    std::memset(p, 0, kBlockBounceBytes);
    zeroes_.reset(static_cast<uint8_t*>(p));
  }
  for (uint64_t done = 0; done < len;) {
    uint64_t piece = std::min(len - done, kBlockBounceBytes);
    iovec v{zeroes_.get(), piece};
    TRY_VOID(write(offset + done, std::span(&v, 1)));
    done += piece;
  }
  return {};
}

}  // namespace godwit::virtio
