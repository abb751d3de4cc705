// A Linux tap interface as a frame pipe for virtio-net: /dev/net/tun attached
// to a named interface with IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, a 12-byte
// vnet header (TUNSETVNETHDRSZ, the virtio 1.x struct virtio_net_hdr_v1), no
// offloads (TUNSETOFFLOAD 0: the kernel hands over fully checksummed,
// unsegmented frames) and O_NONBLOCK. Every read returns one frame preceded
// by its header; every write takes one frame preceded by its header.
//
//   read():  | virtio_net_hdr (12) | Ethernet frame (<= 65550) |
//   write(): | virtio_net_hdr (12) | Ethernet frame            |  (one writev)
#pragma once

#include <sys/uio.h>

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "base/result.h"
#include "base/unique_fd.h"

namespace godwit::virtio {

/// Bytes of the vnet header in front of every frame on the tap (and in the
/// guest's buffers): struct virtio_net_hdr_v1, num_buffers included.
inline constexpr size_t kVnetHeaderSize = 12;
/// Largest Ethernet frame (without the vnet header) either direction carries.
inline constexpr size_t kMaxFrameSize = 65550;

/// One open tap queue. Movable, not copyable; closing it detaches from the
/// interface (a non-persistent tap disappears with its last file).
class Tap {
 public:
  /// Opens /dev/net/tun and attaches to tap `name`, creating it if absent
  /// (which needs CAP_NET_ADMIN). Fails naming the interface and the step
  /// ("tap tap0: TUNSETIFF: Device or resource busy").
  [[nodiscard]] static Result<Tap> open(std::string_view name);

  /// The descriptor (non-blocking) to watch for readability.
  [[nodiscard]] int fd() const { return fd_.get(); }
  /// The interface name the kernel attached us to.
  [[nodiscard]] const std::string& name() const { return name_; }

  /// Reads one frame with its vnet header into `buffer`; std::nullopt when
  /// none is queued (EAGAIN). A frame longer than `buffer` is truncated by
  /// the kernel: callers size the buffer one byte above the largest frame
  /// they accept and treat a full buffer as oversized.
  [[nodiscard]] Result<std::optional<size_t>> read_frame(std::span<uint8_t> buffer);
  /// Writes one frame (vnet header first) given as `pieces` in one writev;
  /// false when the tap's queue is full (EAGAIN). Other failures (EINVAL for
  /// a malformed header or frame, EIO) are errors naming the tap.
  [[nodiscard]] Result<bool> write_frame(std::span<const iovec> pieces);

 private:
  Tap(UniqueFd fd, std::string name) : fd_(std::move(fd)), name_(std::move(name)) {}

  UniqueFd fd_;
  std::string name_;
};

}  // namespace godwit::virtio
