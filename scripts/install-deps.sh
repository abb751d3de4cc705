#!/bin/sh
# Installs the Debian packages given as arguments that are not installed yet.
# Runs apt-get update first when something is missing (a fresh machine has
# no package lists). Needs root when anything must be installed.
set -eu
missing=""
for pkg in "$@"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $pkg"
  fi
done
if [ -z "$missing" ]; then
  exit 0
fi
echo "installing:$missing"
if [ "$(id -u)" -ne 0 ]; then
  echo "error: missing packages:$missing; run as root or install them" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
# shellcheck disable=SC2086
apt-get install -y -q --no-install-recommends $missing
