#!/usr/bin/env bash
# Installs every Debian package the build, the tests and the main job need. Idempotent.
set -euo pipefail
PKGS=(
  lxc liblxc1 lxc-dev     # liblxc (runtime, and the .so link the build links against)
  uidmap                  # /etc/subuid tooling for unprivileged containers
  busybox-static          # the test image is built from it
  btrfs-progs             # the btrfs storage driver (mkfs.btrfs, btrfs)
  zfs-fuse                # the zfs storage driver's tests (zfs, zpool; no kernel ZFS here)
  lvm2 thin-provisioning-tools  # the lvm storage driver (real-device test where device-mapper exists)
  squashfs-tools          # unsquashfs for split images with a squashfs rootfs; mksquashfs for tests
  xz-utils tar file       # the image builder
  gcc libc6-dev pkg-config
  dnsmasq-base nftables iproute2  # the bridge network driver (DHCP/DNS, NAT rules) and its tests (ip netns)
  lxd-client              # the LXD 5.0 `lxc` client, driven against incusd in the compatibility tests
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

# The unmodified incus 6.0.4 client (compatibility tests) comes from bookworm-backports. Only
# the client: the backports daemon package would bring another liblxc.
if ! command -v incus >/dev/null 2>&1; then
  if ! grep -rqs '^[^#]*bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$uri" ] || uri=$(awk '$1=="deb" && $3=="bookworm"{print $2; exit}' /etc/apt/sources.list 2>/dev/null || true)
    [ -n "$uri" ] || { echo "cannot find the Debian mirror in the apt sources" >&2; exit 1; }
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
      > /etc/apt/sources.list.d/bookworm-backports.sources
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends -t bookworm-backports incus-client
fi

# pylxd, unmodified from PyPI, for the compatibility test.
python3 -c 'import pylxd' 2>/dev/null || python3 -m pip install -q --disable-pip-version-check pylxd==2.4.2

# The Rust standard libraries for the cross-platform check of incus-client (macOS, Windows).
if command -v rustup >/dev/null 2>&1; then
  installed=$(rustup target list --installed)
  for t in x86_64-apple-darwin x86_64-pc-windows-gnu; do
    grep -qx "$t" <<<"$installed" || rustup target add "$t"
  done
fi
