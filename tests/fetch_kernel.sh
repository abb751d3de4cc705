#!/bin/sh
# Fetches a real Debian x86-64 kernel (bzImage) for the boot loader unit tests:
# tests/fetch_kernel.sh DEST_DIR leaves DEST_DIR/vmlinuz (cached: does nothing
# when it is already there). Uses apt-get download + dpkg -x, so it needs the
# Debian package lists and a reachable mirror; exits non-zero otherwise.
# The tests call it lazily (under a lock), never at configure time.
set -eu
dest=${1:?usage: fetch_kernel.sh DEST_DIR}
mkdir -p "$dest"
[ -s "$dest/vmlinuz" ] && exit 0

# linux-image-amd64 depends on the newest linux-image-6.1.0-N-amd64.
pkg=$(apt-cache depends linux-image-amd64 2>/dev/null |
      awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
if [ -z "$pkg" ]; then
  echo "fetch_kernel.sh: no linux-image-*-amd64 package known to apt (run apt-get update?)" >&2
  exit 2
fi

tmp=$(mktemp -d "$dest/fetch.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && apt-get download -q "$pkg" >/dev/null 2>"$tmp/apt.log") || {
  echo "fetch_kernel.sh: apt-get download $pkg failed:" >&2
  cat "$tmp/apt.log" >&2
  exit 3
}
dpkg -x "$tmp"/*.deb "$tmp/root"
set -- "$tmp"/root/boot/vmlinuz-*
[ -f "$1" ] || { echo "fetch_kernel.sh: $pkg holds no /boot/vmlinuz-*" >&2; exit 4; }
cp "$1" "$dest/vmlinuz.part"
echo "$pkg" > "$dest/vmlinuz.package"
mv "$dest/vmlinuz.part" "$dest/vmlinuz"
