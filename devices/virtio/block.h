// virtio-blk (device id 2) over a raw image file: one request queue; read,
// write, flush, get-id, write-zeroes and discard (offered only where the file
// system can punch holes); a read-only option; an O_DIRECT option. Requests run
// synchronously on the device's event thread (never a vCPU thread). A failing
// backend (EIO, ENOSPC, a short read) completes the request with
// VIRTIO_BLK_S_IOERR; only a malformed request from the guest is a device
// error (NEEDS_RESET). Every byte a read places in guest memory marks the
// VMM-side dirty bitmap.
#pragma once

#include <sys/uio.h>

#include <array>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "base/result.h"
#include "base/unique_fd.h"
#include "devices/virtio/block_disk.h"
#include "devices/virtio/block_protocol.h"
#include "devices/virtio/device.h"

namespace godwit::virtio {

/// Virtio device id of the block device.
inline constexpr uint32_t kDeviceIdBlock = 2;

/// How a disk is opened (from `--disk path=...,readonly=on,direct=on,serial=...`).
struct BlockOptions {
  std::string path;       ///< raw image file (or block device)
  bool readonly = false;  ///< O_RDONLY; VIRTIO_BLK_F_RO offered; writes fail with IOERR
  bool direct = false;    ///< O_DIRECT (bounce buffers keep the alignment)
  std::string serial{};   ///< get-id answer (<= 20 bytes); empty: derived from the file name
};

/// QueueNumMax of the request queue.
inline constexpr uint16_t kBlockQueueSize = 256;
/// seg_max in config space: data buffers per request the driver may use
/// (the queue size minus header and status, as other VMMs report).
inline constexpr uint32_t kBlockSegMax = kBlockQueueSize - 2;
/// max_discard_sectors / max_write_zeroes_sectors: sectors per range (2 GiB).
inline constexpr uint32_t kBlockMaxRangeSectors = 1u << 22;
/// max_discard_seg / max_write_zeroes_seg: ranges per request.
inline constexpr uint32_t kBlockMaxRangeSegments = 16;
/// Bytes of a DeviceState from state(); see VirtioBlock::state().
inline constexpr size_t kBlockStateBytes = 24;

/// Request outcomes since construction (GET /vm "counters").
struct BlockCounters {
  uint64_t requests = 0;      ///< chains completed with a status byte
  uint64_t read_bytes = 0;    ///< bytes read into guest memory by IN requests
  uint64_t write_bytes = 0;   ///< bytes written to the disk by OUT requests
  uint64_t flushes = 0;       ///< FLUSH requests completed OK
  uint64_t discards = 0;      ///< DISCARD requests completed OK
  uint64_t write_zeroes = 0;  ///< WRITE_ZEROES requests completed OK
  uint64_t io_errors = 0;     ///< requests completed with VIRTIO_BLK_S_IOERR
  uint64_t unsupported = 0;   ///< requests completed with VIRTIO_BLK_S_UNSUPP
};

/// The virtio block device.
class VirtioBlock : public VirtioDevice {
 public:
  /// Opens `options.path` and builds the device; fails naming the path and
  /// the reason (missing file, not a multiple of 512 bytes, O_DIRECT refused).
  [[nodiscard]] static Result<std::unique_ptr<VirtioBlock>> open(GuestMemory& memory,
                                                                 std::string name,
                                                                 const BlockOptions& options);
  ~VirtioBlock() override;

  /// 2 (block).
  [[nodiscard]] uint32_t device_id() const override { return kDeviceIdBlock; }
  /// The instance name ("blk0").
  [[nodiscard]] std::string_view name() const override { return name_; }
  /// SEG_MAX, BLK_SIZE, FLUSH; RO when read-only; WRITE_ZEROES when
  /// writable; DISCARD when writable and the file system can punch holes.
  [[nodiscard]] uint64_t offered_features() const override { return offered_features_; }
  /// One request queue.
  [[nodiscard]] std::vector<uint16_t> queue_max_sizes() const override { return {kBlockQueueSize}; }
  /// struct virtio_blk_config (blk::Config); bytes beyond it read 0.
  void read_config(uint64_t offset, std::span<uint8_t> data) const override;
  /// Nothing in the config is writable (no CONFIG_WCE): ignored.
  void write_config(uint64_t offset, std::span<const uint8_t> data) override;
  /// Keeps the queue and interrupt.
  [[nodiscard]] Result<void> activate(uint64_t negotiated_features, std::span<Queue> queues,
                                      VirtioInterrupt& interrupt) override;
  /// Forgets the queue and interrupt (the disk stays open).
  void reset() override;
  /// Serves every available request synchronously. Fails only for a broken
  /// ring or a chain that cannot carry a status (no writable byte, header
  /// shorter than 16 bytes), after completing and signalling earlier chains.
  [[nodiscard]] Result<void> process_queue(uint16_t index) override;
  /// requests, read_bytes, write_bytes, flushes, discards, write_zeroes,
  /// io_errors, unsupported.
  [[nodiscard]] std::vector<std::pair<std::string, uint64_t>> counters() const override;
  /// path, readonly, direct, serial, capacity_bytes.
  [[nodiscard]] std::vector<std::pair<std::string, std::string>> properties() const override;
  /// kBlockStateBytes bytes, little-endian:
  ///
  ///   0        4          8                    16                   24
  ///   | version | reserved | capacity (sectors) | offered features   |
  ///   | le32 =1 | le32 = 0 | le64               | le64               |
  ///
  /// Everything else (config, features) is re-derived from the disk at open.
  [[nodiscard]] Result<DeviceState> state() const override;
  /// Accepts state() output whose capacity equals this disk's and whose
  /// offered features this device also offers (same read-only mode, discard
  /// support not lost).
  [[nodiscard]] Result<void> restore(const DeviceState& state) override;

  /// The counters as a struct (counters() lists the same values).
  [[nodiscard]] const BlockCounters& block_counters() const { return counters_; }
  /// Disk size in bytes.
  [[nodiscard]] uint64_t capacity_bytes() const;
  /// The 20-byte GET_ID answer (NUL-padded).
  [[nodiscard]] const std::array<uint8_t, 20>& device_serial() const { return serial_; }

 private:
  /// Outcome of one request: its status byte and the data bytes it placed
  /// in the writable buffers before the status.
  struct Completion {
    uint8_t status = 0;
    uint32_t data_written = 0;
  };

  VirtioBlock(GuestMemory& memory, std::string name, BlockOptions options,
              std::unique_ptr<BlockDisk> disk);
  /// Serves one chain; fails only when the chain cannot carry a status.
  /// Returns the used length (data bytes + the status byte).
  [[nodiscard]] Result<uint32_t> serve_chain(const DescriptorChain& chain);
  /// Executes a request whose header was read; never fails (errors become status).
  [[nodiscard]] Completion execute(const blk::RequestHeader& header, const DescriptorChain& chain);
  [[nodiscard]] Completion read_sectors(uint64_t sector, const DescriptorChain& chain);
  [[nodiscard]] Completion write_sectors(uint64_t sector, const DescriptorChain& chain);
  [[nodiscard]] Completion get_id(const DescriptorChain& chain);
  [[nodiscard]] Completion discard_or_zero(uint32_t type, const DescriptorChain& chain);
  /// True when [sector, sector + bytes/512) is inside the disk and bytes is
  /// a multiple of 512.
  [[nodiscard]] bool range_ok(uint64_t sector, uint64_t bytes) const;
  /// Host iovecs for `len` bytes of `buffers` after the first `skip` bytes
  /// (into iov_scratch_).
  [[nodiscard]] Result<void> guest_iovecs(std::span<const GuestBuffer> buffers, uint64_t skip,
                                          uint64_t len);
  /// Marks `len` bytes of `buffers` after the first `skip` dirty.
  void mark_dirty(std::span<const GuestBuffer> buffers, uint64_t skip, uint64_t len);
  /// IOERR completion; logs `error` at warn level the first time per request type.
  [[nodiscard]] Completion backend_error(uint32_t type, const Error& error);

  GuestMemory& memory_;
  std::string name_;
  BlockOptions options_;
  std::unique_ptr<BlockDisk> disk_;
  std::array<uint8_t, 20> serial_{};
  uint64_t offered_features_ = 0;
  blk::Config config_{};
  Queue* queue_ = nullptr;
  VirtioInterrupt* interrupt_ = nullptr;
  BlockCounters counters_{};
  uint32_t logged_error_types_ = 0;  ///< bit per request type already logged
  std::vector<iovec> iov_scratch_;
};

}  // namespace godwit::virtio
