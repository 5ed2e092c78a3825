#!/usr/bin/env bash
# Builds local base images from Debian packages, for machines where no image registry answers.
#
#   local/debian:bookworm    Debian bookworm minbase (debootstrap + docker import)
#   local/python:3.11        + Debian's python3 (3.11) and python3-venv: BASE_IMAGE for ./Dockerfile
#   local/postgres:15        + Debian's postgresql, initdb on first start: TESTCONTAINERS_POSTGRES_IMAGE
#
# An image whose tag already exists is reused (FORCE=1 rebuilds all three).
# DEBIAN_MIRROR overrides the mirror, which is otherwise the one apt uses on this machine.
set -euo pipefail
cd "$(dirname "$0")"

DOCKER=${DOCKER:-docker}
DEBIAN_IMAGE=${DEBIAN_IMAGE:-local/debian:bookworm}
PYTHON_IMAGE=${PYTHON_IMAGE:-local/python:3.11}
POSTGRES_IMAGE=${POSTGRES_IMAGE:-local/postgres:15}
FORCE=${FORCE:-0}

have_image() { [ "$FORCE" != 1 ] && "$DOCKER" image inspect "$1" >/dev/null 2>&1; }

apt_mirror() {
  # The first Debian (not -security) URI in apt's sources, deb822 or one-line format.
  local uri
  uri=$(grep -hoE '^URIs:[[:space:]]*[^[:space:]]+' /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '{print $2}' | grep -v security | head -n1 || true)
  if [ -z "$uri" ]; then
    uri=$(grep -hoE '^deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+' \
      /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null |
      awk '{print $NF}' | grep -v security | head -n1 || true)
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

build_debian() {
  if have_image "$DEBIAN_IMAGE"; then
    echo "reusing $DEBIAN_IMAGE"
    return
  fi
  command -v debootstrap >/dev/null || {
    echo "debootstrap is missing: apt-get install debootstrap" >&2
    exit 1
  }
  local mirror rootfs started=$SECONDS
  mirror=${DEBIAN_MIRROR:-$(apt_mirror)}
  rootfs=$(mktemp -d /tmp/classsync-rootfs.XXXXXX)
  trap 'rm -rf "$rootfs"' RETURN
  echo "debootstrap bookworm from $mirror"
  debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 30 "$rootfs.log" >&2
    exit 1
  }
  rm -f "$rootfs.log"
  # An image keeps no package lists or caches; RUN steps run `apt-get update` themselves.
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin
  tar -C "$rootfs" -c . | "$DOCKER" import - "$DEBIAN_IMAGE"
  echo "$DEBIAN_IMAGE built in $((SECONDS - started)) s"
}

build_from() {
  # build_from TAG DIR: a Dockerfile in DIR on top of the Debian image, host network for apt.
  local tag=$1 dir=$2
  if have_image "$tag"; then
    echo "reusing $tag"
    return
  fi
  local started=$SECONDS
  "$DOCKER" build --network host --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" -t "$tag" "$dir"
  echo "$tag built in $((SECONDS - started)) s"
}

build_debian
build_from "$PYTHON_IMAGE" python
build_from "$POSTGRES_IMAGE" postgres
echo "BASE_IMAGE=$PYTHON_IMAGE TESTCONTAINERS_POSTGRES_IMAGE=$POSTGRES_IMAGE"
