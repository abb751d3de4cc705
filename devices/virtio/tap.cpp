// Tap attachment and frame I/O (see tap.h).
#include "devices/virtio/tap.h"

#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace godwit::virtio {

Result<Tap> Tap::open(std::string_view name) {
  std::string what = "tap " + std::string(name);
  if (name.empty()) return fail("tap: the interface name is empty");
  if (name.size() >= IFNAMSIZ) {
    return fail(what + ": name longer than " + std::to_string(IFNAMSIZ - 1) + " characters");
  }
  UniqueFd fd(::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC));
  if (!fd) return fail_errno(what + ": open /dev/net/tun");

  ifreq request{};
  std::memcpy(request.ifr_name, name.data(), name.size());
  request.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
  if (::ioctl(fd.get(), TUNSETIFF, &request) < 0) {
    int e = errno;
    const char* hint = e == EBUSY    ? " (is another process attached to it?)"
                       : e == EPERM  ? " (creating or attaching needs CAP_NET_ADMIN or ownership)"
                       : e == EINVAL ? " (is it a tun, not a tap, or an invalid name?)"
                                     : "";
    Error error = Error::from_errno(what + ": TUNSETIFF IFF_TAP|IFF_NO_PI|IFF_VNET_HDR", e);
    error.message += hint;
    return fail(std::move(error));
  }
  int header_size = static_cast<int>(kVnetHeaderSize);
  if (::ioctl(fd.get(), TUNSETVNETHDRSZ, &header_size) < 0) {
    return fail_errno(what + ": TUNSETVNETHDRSZ " + std::to_string(header_size));
  }
  // No checksum or segmentation offload: a tap attached earlier may have had
  // some switched on, and the device offers none to the guest.
  if (::ioctl(fd.get(), TUNSETOFFLOAD, 0ul) < 0) return fail_errno(what + ": TUNSETOFFLOAD 0");

  request.ifr_name[IFNAMSIZ - 1] = '\0';
  return Tap(std::move(fd), std::string(request.ifr_name));
}

Result<std::optional<size_t>> Tap::read_frame(std::span<uint8_t> buffer) {
  while (true) {
    ssize_t got = ::read(fd_.get(), buffer.data(), buffer.size());
    if (got >= 0) return std::optional<size_t>(static_cast<size_t>(got));
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return std::optional<size_t>();
    return fail_errno("tap " + name_ + ": read " + std::to_string(buffer.size()) + " bytes");
  }
}

Result<bool> Tap::write_frame(std::span<const iovec> pieces) {
  size_t total = 0;
  for (const iovec& piece : pieces) total += piece.iov_len;
  while (true) {
    ssize_t put = ::writev(fd_.get(), pieces.data(), static_cast<int>(pieces.size()));
    if (put >= 0) {
      if (static_cast<size_t>(put) != total) {
        return fail("tap " + name_ + ": writev of " + std::to_string(total) + " bytes wrote " +
                    std::to_string(put));
      }
      return true;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return false;
    return fail_errno("tap " + name_ + ": writev " + std::to_string(total) + " bytes");
  }
}

}  // namespace godwit::virtio
