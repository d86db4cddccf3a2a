#!/bin/bash
# Runs ../../../shared/peers/incus/bench.sh against the real Incus 6.0.4 and against our incusd, one
# after the other on the same machine, and prints both summaries. Needs root, the peer installed
# (shared/peers/incus/setup.sh) and `cargo build --release -p incus-daemon`.
#   SECTIONS="startup a b d i scale" QUICK=1 tests/bench/compare.sh OUTDIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PEER=${PEER:-$HERE/../../../shared/peers/incus}
OUT=${1:-/var/tmp/incus-compare}
export SECTIONS=${SECTIONS:-"startup a b d i scale"} QUICK=${QUICK:-1}
mkdir -p "$OUT"
bash "$HERE/../images/mk-busybox-image.sh" "$OUT/images"
# The real Incus (its own state dir, started and initialised by the peer scripts).
INCUS_DIR=/var/lib/incus bash "$PEER/incusd-ctl.sh" start
INCUS_DIR=/var/lib/incus bash "$PEER/incusd-ctl.sh" init || true
INCUS_DIR=/var/lib/incus bash "$PEER/import-image.sh" "$OUT/images/busybox.tar.xz" busybox || true
INCUS_DIR=/var/lib/incus IMAGE_TARBALL="$OUT/images/busybox.tar.xz" INCUS_POOLS=default OUT="$OUT/incus" \
    bash "$PEER/bench.sh" || true
INCUS_DIR=/var/lib/incus bash "$PEER/incusd-ctl.sh" stop || true
# Ours.
export INCUS_DIR=$OUT/ours-state
INCUS_DIR=$INCUS_DIR bash "$HERE/incusd-ctl.sh" start
INCUS_DIR=$INCUS_DIR bash "$PEER/import-image.sh" "$OUT/images/busybox.tar.xz" busybox || true
IMAGE_TARBALL="$OUT/images/busybox.tar.xz" INCUS_POOLS=default DAEMON_CTL="$HERE/incusd-ctl.sh" OUT="$OUT/ours" \
    MONITOR_PATTERN='^\[lxc monitor\] .* bench-' bash "$PEER/bench.sh" || true
bash "$HERE/incusd-ctl.sh" stop || true
echo "== Incus 6.0.4"; cat "$OUT/incus/summary.txt" 2>/dev/null || true
echo "== ours"; cat "$OUT/ours/summary.txt" 2>/dev/null || true
