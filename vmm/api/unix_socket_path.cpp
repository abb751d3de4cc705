// Socket path claiming: lstat, probe with connect(), unlink stale files.
#include "vmm/api/unix_socket_path.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "base/unique_fd.h"

namespace godwit::api {

namespace {
/// True when some process accepts connections on the socket file at `path`.
Result<bool> someone_listens(const std::string& path) {
  UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) return fail_errno("probing API socket " + path + ": socket");
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof(addr)) == 0) {
    return true;
  }
  if (errno == ECONNREFUSED || errno == ENOENT) return false;
  return fail_errno("probing API socket " + path + ": connect");
}
}  // namespace

Result<void> claim_socket_path(const std::string& path) {
  if (path.empty()) return fail("API socket path is empty");
  if (path.size() >= sizeof(sockaddr_un{}.sun_path)) {
    return fail("API socket path " + path + " is longer than " +
                std::to_string(sizeof(sockaddr_un{}.sun_path) - 1) + " bytes");
  }
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) return {};
    return fail_errno("API socket " + path + ": stat");
  }
  if (!S_ISSOCK(st.st_mode)) return fail("API socket " + path + " exists and is not a socket");
  if (TRY(someone_listens(path))) return fail("API socket " + path + " already in use");
  if (::unlink(path.c_str()) != 0 && errno != ENOENT) {
    return fail_errno("removing stale API socket " + path);
  }
  return {};
}

Result<FileIdentity> file_identity(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return fail_errno("stat " + path);
  return FileIdentity{st.st_dev, st.st_ino};
}

void remove_socket_file_if_same(const std::string& path, FileIdentity expected) {
  auto now = file_identity(path);
  if (now && now->device == expected.device && now->inode == expected.inode) {
    ::unlink(path.c_str());
  }
}

}  // namespace godwit::api
