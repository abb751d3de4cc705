#!/bin/sh
# Runs godwit's whole test suite (`make test`) inside a Debian 12 container:
# installs docker.io and debootstrap if missing, starts dockerd (vfs storage)
# if no engine answers, creates the local base image godwit-debian:bookworm
# with debootstrap if it is missing, builds the project image from the
# Dockerfile and runs it with --device /dev/kvm. Exits with the container's
# exit status. Needs root. See docs/docker.md.
#
# Environment (all optional):
#   GODWIT_DOCKER_IMAGE   project image tag        (default godwit-test:latest)
#   GODWIT_BASE_IMAGE     base image tag           (default godwit-debian:bookworm)
#   GODWIT_DEBIAN_MIRROR  mirror for debootstrap   (default http://deb.debian.org/debian)
#   GODWIT_DOCKER_LOGS    log directory            (default /tmp/godwit-docker)
#   GODWIT_DOCKER_NETWORK docker network for build and run (default: docker's own)
#   GODWIT_DOCKER_TIMEOUT seconds to wait for dockerd to answer (default 60)
set -eu

image=${GODWIT_DOCKER_IMAGE:-godwit-test:latest}
base_image=${GODWIT_BASE_IMAGE:-godwit-debian:bookworm}
mirror=${GODWIT_DEBIAN_MIRROR:-http://deb.debian.org/debian}
log_dir=${GODWIT_DOCKER_LOGS:-/tmp/godwit-docker}
network=${GODWIT_DOCKER_NETWORK:-}
engine_timeout=${GODWIT_DOCKER_TIMEOUT:-60}
source_dir=$(cd "$(dirname "$0")/.." && pwd)

# Runs "$@" with its output shown and copied to the log file $1; returns the
# command's own exit status (not tee's).
run_logged() {
  log=$1
  shift
  rm -f "$log.status"
  {
    if "$@" 2>&1; then st=0; else st=$?; fi
    echo "$st" >"$log.status"
  } | tee "$log"
  read -r logged_status <"$log.status" || logged_status=1
  rm -f "$log.status"
  return "$logged_status"
}

script_start=$(date +%s)
step_start=$script_start
# Prints a step heading, with the time the previous step took.
step() {
  now=$(date +%s)
  printf '\n==> docker-test [+%ss, previous step %ss]: %s\n' \
    "$((now - script_start))" "$((now - step_start))" "$*"
  step_start=$now
}
warn() { printf 'docker-test: warning: %s\n' "$*" >&2; }
die() {
  printf 'docker-test: error: %s\n' "$*" >&2
  exit 1
}

if [ "$(id -u)" -ne 0 ]; then
  die "must run as root (installs packages, starts dockerd, runs debootstrap)"
fi
mkdir -p "$log_dir"

# --- 1. Tools -----------------------------------------------------------------
missing=""
if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  missing=" docker.io"
fi
command -v debootstrap >/dev/null 2>&1 || missing="$missing debootstrap"
if [ -n "$missing" ]; then
  step "installing:$missing (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q || die "apt-get update failed"
  # shellcheck disable=SC2086
  apt-get install -y -q --no-install-recommends $missing ||
    die "apt-get install$missing failed"
else
  step "docker and debootstrap are installed"
fi

# --- 2. Engine ------------------------------------------------------------------
dockerd_pid=""
dockerd_log="$log_dir/dockerd.log"
base_rootfs=""

container="godwit-test-$$"
container_started=""

# shellcheck disable=SC2317  # called through the EXIT trap
cleanup() {
  if [ -n "$container_started" ]; then
    docker rm -f "$container" >/dev/null 2>&1 || true
  fi
  if [ -n "$base_rootfs" ] && [ -d "$base_rootfs" ]; then
    rm -rf "$base_rootfs"
  fi
  if [ -n "$dockerd_pid" ]; then
    printf '\n==> docker-test: stopping the dockerd this script started (pid %s)\n' "$dockerd_pid"
    kill "$dockerd_pid" 2>/dev/null || true
    # dockerd stops its containerd too; give it a moment to exit cleanly.
    waited=0
    while kill -0 "$dockerd_pid" 2>/dev/null && [ "$waited" -lt 20 ]; do
      sleep 1
      waited=$((waited + 1))
    done
  fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if docker info >/dev/null 2>&1; then
  step "using the docker engine that is already running (left running afterwards)"
else
  step "no docker engine answers: starting dockerd --storage-driver vfs (log: $dockerd_log)"
  dockerd --storage-driver vfs >"$dockerd_log" 2>&1 &
  dockerd_pid=$!
  waited=0
  until docker info >/dev/null 2>&1; do
    if ! kill -0 "$dockerd_pid" 2>/dev/null; then
      dockerd_pid=""
      tail -n 20 "$dockerd_log" >&2 || true
      die "dockerd exited during start-up; see $dockerd_log"
    fi
    if [ "$waited" -ge "$engine_timeout" ]; then
      tail -n 20 "$dockerd_log" >&2 || true
      die "dockerd did not answer 'docker info' within ${engine_timeout}s; see $dockerd_log"
    fi
    sleep 1
    waited=$((waited + 1))
  done
  echo "dockerd (pid $dockerd_pid) answers after ${waited}s"
fi

network_args=""
[ -n "$network" ] && network_args="--network $network"

# --- 3. Base image --------------------------------------------------------------
if docker image inspect "$base_image" >/dev/null 2>&1; then
  step "base image $base_image exists"
else
  step "creating base image $base_image with debootstrap from $mirror (1-2 minutes; log: $log_dir/debootstrap.log)"
  base_rootfs=$(mktemp -d /var/tmp/godwit-rootfs.XXXXXX)
  debootstrap --variant=minbase bookworm "$base_rootfs" "$mirror" \
    >"$log_dir/debootstrap.log" 2>&1 || {
    tail -n 20 "$log_dir/debootstrap.log" >&2 || true
    die "debootstrap bookworm $base_rootfs $mirror failed; see $log_dir/debootstrap.log"
  }
  tar -C "$base_rootfs" -c . | docker import - "$base_image" ||
    die "docker import of $base_rootfs as $base_image failed"
  rm -rf "$base_rootfs"
  base_rootfs=""
fi

# --- 4. Project image -----------------------------------------------------------
step "building image $image from $source_dir (log: $log_dir/build.log)"
# The legacy builder: Debian's docker.io has no buildx plugin.
export DOCKER_BUILDKIT=0
# shellcheck disable=SC2086
run_logged "$log_dir/build.log" docker build $network_args \
  --build-arg "BASE_IMAGE=$base_image" -t "$image" "$source_dir" ||
  die "docker build failed; see $log_dir/build.log"

# --- 5. Test run ----------------------------------------------------------------
device_args=""
if [ -c /dev/kvm ]; then
  device_args="--device /dev/kvm"
else
  warn "/dev/kvm is missing on this host: running without it (the kvm and integration tests will skip)"
fi
step "running '${*:-make test}' in $image ${device_args:+with $device_args }(log: $log_dir/test.log)"
if [ "$#" -eq 0 ]; then
  set -- make test
fi
status=0
container_started=1
# The wrapper says whether the container sees /dev/kvm, then runs COMMAND.
# shellcheck disable=SC2016  # expanded by the container's shell
in_container='if [ -c /dev/kvm ]; then echo "docker-test: /dev/kvm is present in the container"; else echo "docker-test: no /dev/kvm in the container"; fi; echo "docker-test: running: $*"; exec "$@"'
# --init: make is not PID 1, so Ctrl-C (proxied by the client) stops it.
# shellcheck disable=SC2086
run_logged "$log_dir/test.log" docker run --rm --init --name "$container" \
  $network_args $device_args "$image" sh -c "$in_container" sh "$@" || status=$?
container_started=""

if [ "$status" -eq 0 ]; then
  step "'$*' passed in the container"
else
  step "'$*' failed in the container (exit status $status); see $log_dir/test.log"
fi
exit "$status"
