#!/bin/sh
# The main demo: boots the self-checking test guest with 2 vCPUs, streams its
# serial console, and exits with the guest's verdict (0 on PASS).
# (Later issues turn this into two VMMs live-migrating the running guest.)
set -eu
BUILD=${1:-build}
if [ ! -c /dev/kvm ]; then
  echo "demo: /dev/kvm is missing: godwit needs KVM" >&2
  exit 1
fi
echo "demo: booting build/guests/selfcheck.img on 2 vCPUs (serial console follows)"
set +e
"$BUILD/bin/godwit" --image "$BUILD/guests/selfcheck.img" --vcpus 2 --memory 512M --serial stdout
status=$?
set -e
if [ "$status" -eq 0 ]; then
  echo "demo: guest verdict PASS (godwit exit status 0)"
else
  echo "demo: guest verdict FAIL (godwit exit status $status)" >&2
fi
exit "$status"
