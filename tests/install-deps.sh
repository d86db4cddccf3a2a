#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the main job need. Idempotent.
set -euo pipefail
PKGS=(
  lxc liblxc1 lxc-dev     # liblxc (runtime, and the .so link the build links against)
  uidmap                  # /etc/subuid tooling for unprivileged containers
  busybox-static          # the test image is built from it
  squashfs-tools          # unsquashfs for split images with a squashfs rootfs; mksquashfs for tests
  xz-utils tar file       # the image builder
  gcc libc6-dev pkg-config
)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
