// The host side of a virtio-blk disk: a raw image file (or block device)
// read and written with positional vectored I/O straight into / out of the
// caller's buffers (guest memory). Pure host I/O, no virtio: the device
// (block.cpp) maps requests onto it and turns its errors into
// VIRTIO_BLK_S_IOERR.
//
// With O_DIRECT, offsets, lengths and memory must be aligned to what the file
// system reports (statx STATX_DIOALIGN, else 4096). Aligned requests still go
// straight to guest memory; anything else goes through a 1 MiB aligned bounce
// buffer, reading the partial first and last blocks first when writing
// (read-modify-write), so every 512-byte-sector request is served and no
// request ever allocates memory in proportion to its size.
#pragma once

#include <sys/uio.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <span>
#include <string>

#include "base/result.h"
#include "base/unique_fd.h"

namespace godwit::virtio {

/// Bytes of the O_DIRECT bounce buffer (the unit of an unaligned transfer).
inline constexpr uint64_t kBlockBounceBytes = 1024 * 1024;

/// An open disk image.
class BlockDisk {
 public:
  /// Opens `path` (O_RDONLY when `readonly`, O_DIRECT when `direct`) and
  /// checks it: a regular file or block device, a non-zero size that is a
  /// multiple of 512 (and of the O_DIRECT alignment with `direct`), O_DIRECT
  /// accepted by its file system. Probes hole punching on a writable file.
  [[nodiscard]] static Result<BlockDisk> open(const std::string& path, bool readonly, bool direct);

  /// The path given to open().
  [[nodiscard]] const std::string& path() const { return path_; }
  /// Size in bytes at open (a multiple of 512).
  [[nodiscard]] uint64_t size() const { return size_; }
  /// Opened read-only.
  [[nodiscard]] bool readonly() const { return readonly_; }
  /// Opened with O_DIRECT.
  [[nodiscard]] bool direct() const { return direct_; }
  /// fallocate(PUNCH_HOLE) works here: discard and unmapping write-zeroes.
  [[nodiscard]] bool can_punch_hole() const { return can_punch_hole_; }
  /// The file system's allocation unit (st_blksize): the useful discard granularity.
  [[nodiscard]] uint32_t allocation_unit() const { return allocation_unit_; }
  /// O_DIRECT offset / length alignment (1 without O_DIRECT).
  [[nodiscard]] uint64_t direct_alignment() const { return offset_align_; }

  /// Reads exactly the iovecs' total length at `offset`; a short read (end of
  /// file) is an error. With O_DIRECT the destination may be partly written
  /// on failure.
  [[nodiscard]] Result<void> read(uint64_t offset, std::span<const iovec> iov);
  /// Writes exactly the iovecs' total length at `offset`.
  [[nodiscard]] Result<void> write(uint64_t offset, std::span<const iovec> iov);
  /// fdatasync.
  [[nodiscard]] Result<void> flush();
  /// Deallocates [offset, offset+len) (reads return zeroes afterwards).
  [[nodiscard]] Result<void> punch_hole(uint64_t offset, uint64_t len);
  /// Makes [offset, offset+len) read as zeroes: FALLOC_FL_ZERO_RANGE, else
  /// (file system without it) by writing zeroes.
  [[nodiscard]] Result<void> write_zeroes(uint64_t offset, uint64_t len);

 private:
  /// free() for posix_memalign buffers.
  struct FreeDeleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  using AlignedBuffer = std::unique_ptr<uint8_t, FreeDeleter>;

  BlockDisk() = default;
  /// True when O_DIRECT can take `iov` at `offset` without the bounce buffer.
  [[nodiscard]] bool aligned_for_direct(uint64_t offset, std::span<const iovec> iov) const;
  /// preadv / pwritev loop over `iov` (IOV_MAX at a time, resuming short transfers).
  [[nodiscard]] Result<void> transfer_vectored(bool is_write, uint64_t offset,
                                               std::span<const iovec> iov);
  /// O_DIRECT read through the bounce buffer.
  [[nodiscard]] Result<void> read_bounced(uint64_t offset, std::span<const iovec> iov);
  /// O_DIRECT write through the bounce buffer (read-modify-write of partial blocks).
  [[nodiscard]] Result<void> write_bounced(uint64_t offset, std::span<const iovec> iov);
  /// pread / pwrite of exactly `len` bytes of the bounce buffer at `offset`.
  [[nodiscard]] Result<void> transfer_bounce(bool is_write, uint64_t offset, uint64_t len,
                                             uint64_t buffer_offset = 0);

  std::string path_;
  UniqueFd fd_;
  uint64_t size_ = 0;
  bool readonly_ = false;
  bool direct_ = false;
  bool can_punch_hole_ = false;
  bool can_zero_range_ = true;  ///< cleared at the first EOPNOTSUPP
  uint32_t allocation_unit_ = 4096;
  uint64_t memory_align_ = 1;
  uint64_t offset_align_ = 1;
  AlignedBuffer bounce_;  ///< kBlockBounceBytes, O_DIRECT only
  AlignedBuffer zeroes_;  ///< kBlockBounceBytes of zeroes, allocated at first use
};

}  // namespace godwit::virtio
