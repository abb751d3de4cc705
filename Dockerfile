# Builds godwit and runs its whole test suite (`make test`) in Debian 12.
# The base image is a local debootstrap image (no registry is reachable);
# scripts/docker-test.sh creates it, builds this image and runs it with
# --device /dev/kvm. See docs/docker.md.
ARG BASE_IMAGE=godwit-debian:bookworm
FROM ${BASE_IMAGE}

# Metadata first: with the vfs storage driver every step after the source
# COPY costs a full copy of the image, so the source COPY is the last step.
ENV DEBIAN_FRONTEND=noninteractive \
    LANG=C.UTF-8
WORKDIR /src
# Builds (normal + ASan) and runs ctest; exits non-zero when anything fails.
CMD ["make", "test"]

# Dependencies next, so that editing the source reuses this layer: only the
# Makefile (which holds the package list) and the installer are copied.
# The apt package lists are kept: tests/fetch_kernel.sh needs them to
# download a Debian kernel for the boot loader tests.
COPY Makefile /src/Makefile
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN apt-get update -q \
 && apt-get install -y -q --no-install-recommends make \
 && make deps \
 && apt-get clean

# The source. build*/ and .git are left out by .dockerignore, so the build
# inside the container always starts from scratch.
COPY . /src
