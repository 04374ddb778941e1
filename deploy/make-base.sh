#!/usr/bin/env bash
# A Debian 12 base image with Python 3.11 for the Dockerfile's BASE, made without any image registry:
# debootstrap (from Debian's packages, through the apt mirror this machine uses) into a folder, then
# `podman import` of its tarball. The tarball is cached, so the next call only imports it (or does nothing
# when the image is already there).
#
#   deploy/make-base.sh IMAGE CACHE_DIR        e.g. localhost/archs-base:bookworm artifacts/image/base
#
# PODMAN: the podman command line to use (default: podman --cgroup-manager cgroupfs --runtime runc).
set -euo pipefail

image=${1:?usage: make-base.sh IMAGE CACHE_DIR}
cache=${2:?usage: make-base.sh IMAGE CACHE_DIR}
read -r -a podman <<<"${PODMAN:-podman --cgroup-manager cgroupfs --runtime runc}"
suite=bookworm
# python3-venv brings ensurepip's pip wheel: the Dockerfile makes /opt/venv with it (Debian's own python3
# refuses pip installs into the system, PEP 668). No python3-pip needed.
packages=python3,python3-venv,ca-certificates
tarball=$cache/$suite-python3.tar

if "${podman[@]}" image exists "$image"; then
  echo "base: $image is there"
  exit 0
fi

mirror() {  # the Debian mirror apt uses here (deb822 or one-line sources), else deb.debian.org
  local uri
  uri=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
        awk '/^URIs:/ {for (i = 2; i <= NF; i++) print $i} /^deb / {print ($2 ~ /^\[/ ? $3 : $2)}' |
        grep -E '/debian/?$' | head -n 1 || true)
  echo "${uri:-http://deb.debian.org/debian}"
}

if [ ! -s "$tarball" ]; then
  command -v debootstrap >/dev/null || { echo "base: debootstrap is missing (apt-get install debootstrap)" >&2; exit 1; }
  [ "$(id -u)" = 0 ] || { echo "base: debootstrap needs root" >&2; exit 1; }
  mkdir -p "$cache"
  root=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$root"' EXIT
  url=$(mirror)
  echo "base: debootstrap --variant=minbase --include=$packages $suite from $url"
  start=$(date +%s)
  if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" "$url" >"$cache/debootstrap.log" 2>&1; then
    tail -n 20 "$cache/debootstrap.log" >&2
    exit 1
  fi
  # What an image does not need: downloaded packages, apt's lists (an image build runs apt-get update itself)
  rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/* "$root"/tmp/*
  tar --numeric-owner -C "$root" -cf "$tarball.tmp" .
  mv "$tarball.tmp" "$tarball"
  echo "base: debootstrap took $(( $(date +%s) - start )) s; $(du -h "$tarball" | cut -f1) in $tarball"
fi

if ! "${podman[@]}" import --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' \
     --message "Debian $suite minbase + $packages (debootstrap)" "$tarball" "$image" >"$cache/import.log" 2>&1; then
  cat "$cache/import.log" >&2
  exit 1
fi
echo "base: imported $tarball as $image"
