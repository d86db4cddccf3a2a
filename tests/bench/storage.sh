#!/bin/bash
# The storage issue's numbers, against the real Incus 6.0.4 and our incusd on the same machine in
# the same run, one daemon after the other, through the unmodified incus 6.0.4 client:
#   - warm launch of a Debian bookworm minbase image on dir and on btrfs (peer bench, section a);
#   - snapshot and restore of a container with DATA_MB (200) MiB of data, copy with 10 snapshots,
#     on dir and btrfs (peer bench, section f, busybox image: the data is what counts);
#   - export (uncompressed) and import of a container with DATA_MB MiB and 10 snapshots (this
#     script).
# Needs root, the peer (shared/peers/incus/setup.sh: pools `default` (dir) and `btrfs`),
# `cargo build --release -p incus-daemon -p incus-cli`, debootstrap and network to the Debian
# mirror for the first run (the rootfs is cached in OUT).
#   [STEPS="a f export"] tests/bench/storage.sh OUTDIR
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
PEER=${PEER:-$HERE/../../../shared/peers/incus}
OUT=${1:-/var/tmp/incus-bench-storage}
DATA_MB=${DATA_MB:-200}
REPS=${REPS:-3}
EXPORT_REPS=${EXPORT_REPS:-1}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)

# Images: busybox (the peer's builder) and Debian minbase (debootstrap, cached).
bash "$HERE/../images/mk-busybox-image.sh" "$OUT/images"
DEB=$OUT/images/debian.tar.gz
if [ ! -s "$DEB" ]; then
    if [ ! -x "$OUT/debian-rootfs/bin/sh" ]; then
        mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
        debootstrap --variant=minbase bookworm "$OUT/debian-rootfs" "${mirror:-http://deb.debian.org/debian}"
    fi
    stage=$(mktemp -d "$OUT/stage.XXXX")
    # minbase has no init: a PID 1 that waits and stops on SIGPWR, as the busybox image's.
    mkdir -p "$stage/rootfs/usr/sbin"
    printf '#!/bin/sh\ntrap "exit 0" PWR TERM INT\nwhile :; do sleep 1000 & wait $!; done\n' >"$stage/rootfs/usr/sbin/init"
    chmod 755 "$stage/rootfs/usr/sbin/init"
    printf 'architecture: x86_64\ncreation_date: 1700000000\nproperties:\n  os: debian\n  release: bookworm\n  variant: minbase\n  description: Debian bookworm minbase (benchmark)\n' >"$stage/metadata.yaml"
    rm -f "$OUT/debian-rootfs/usr/sbin/init"
    tar -C "$stage" -czf "$DEB.tmp" --numeric-owner metadata.yaml rootfs/usr/sbin/init \
        --transform 's,^debian-rootfs,rootfs,' -C "$OUT" debian-rootfs
    mv "$DEB.tmp" "$DEB"
    rm -rf "$stage"
fi

# export/import of a container with DATA_MB MiB and 10 snapshots; prints TSV lines.
export_import() {
    local tag=$1 c=bench-exp
    incus delete -f "$c" bench-imp >/dev/null 2>&1 || true
    incus launch busybox "$c" >/dev/null
    incus exec "$c" -- sh -c "mkdir -p /data && i=0; while [ \$i -lt $DATA_MB ]; do dd if=/dev/urandom of=/data/f\$i bs=1M count=1 2>/dev/null; i=\$((i+1)); done; sync"
    for s in $(seq 10); do incus snapshot create "$c" "s$s" >/dev/null; done
    # Uncompressed (--compression none): 11 x DATA_MB of random data would time gzip, not
    # storage.
    for r in $(seq "$EXPORT_REPS"); do
        rm -f "$OUT/exp.tar.gz"
        t0=$(date +%s%N); incus export "$c" "$OUT/exp.tar.gz" --compression none >/dev/null; t1=$(date +%s%N)
        printf '%s\texport_%sMiB_10_snaps\t%d\tms\n' "$tag" "$DATA_MB" $(( (t1 - t0) / 1000000 ))
        t0=$(date +%s%N); incus import "$OUT/exp.tar.gz" bench-imp >/dev/null; t1=$(date +%s%N)
        printf '%s\timport_%sMiB_10_snaps\t%d\tms\n' "$tag" "$DATA_MB" $(( (t1 - t0) / 1000000 ))
        incus delete -f bench-imp >/dev/null
    done
    printf '%s\texport_size\t%d\tMiB\n' "$tag" $(( $(stat -c %s "$OUT/exp.tar.gz") / 1048576 ))
    incus delete -f "$c" >/dev/null
    rm -f "$OUT/exp.tar.gz"
}

STEPS=${STEPS:-"a f export"}
want() { case " $STEPS " in *" $1 "*) return 0 ;; esac; return 1; }
run_bench() { # TAG
    local tag=$1
    ! want a || INCUS_POOLS="default btrfs" IMAGE=debian IMAGE_TARBALL="$DEB" OUT="$OUT/$tag-a" \
        SECTIONS="a" QUICK=1 REPS_WARM=$REPS REPS_COLD=1 DAEMON_CTL=none MONITOR_PATTERN="${MONITOR_PATTERN:-}" \
        bash "$PEER/bench.sh" >/dev/null 2>&1 || true
    ! want f || INCUS_POOLS="default btrfs" IMAGE=busybox IMAGE_TARBALL="$OUT/images/busybox.tar.xz" OUT="$OUT/$tag-f" \
        SECTIONS="f" QUICK=1 DATA_MB=$DATA_MB SNAP_REPS=5 COPY_REPS=$REPS DAEMON_CTL=none \
        bash "$PEER/bench.sh" >/dev/null 2>&1 || true
    ! want export || export_import "$tag" >"$OUT/$tag-export.tsv"
}

export INCUS_CONF
INCUS_CONF=$(mktemp -d)
trap 'rm -rf "$INCUS_CONF"' EXIT

# The real Incus.
INCUS_DIR=/var/lib/incus bash "$PEER/incusd-ctl.sh" start
INCUS_DIR=/var/lib/incus bash "$PEER/incusd-ctl.sh" init || true
export INCUS_SOCKET=/var/lib/incus/unix.socket
INCUS_DIR=/var/lib/incus bash "$PEER/import-image.sh" "$OUT/images/busybox.tar.xz" busybox || true
INCUS_DIR=/var/lib/incus bash "$PEER/import-image.sh" "$DEB" debian || true
run_bench incus
INCUS_DIR=/var/lib/incus bash "$PEER/incusd-ctl.sh" stop || true

# Ours, on its own state directory with a dir pool `default` and a btrfs pool `btrfs`.
STATE=$OUT/ours-state
export INCUS_SOCKET=$STATE/unix.socket
INCUS_DIR=$STATE bash "$HERE/incusd-ctl.sh" start
incus storage show btrfs >/dev/null 2>&1 || incus storage create btrfs btrfs size=12GiB >/dev/null
INCUS_DIR=$STATE bash "$PEER/import-image.sh" "$OUT/images/busybox.tar.xz" busybox || true
INCUS_DIR=$STATE bash "$PEER/import-image.sh" "$DEB" debian || true
MONITOR_PATTERN='^\[lxc monitor\] .* bench-' run_bench ours
incus storage delete btrfs >/dev/null 2>&1 || true
INCUS_DIR=$STATE bash "$HERE/incusd-ctl.sh" stop || true

for tag in incus ours; do
    echo "== $tag"
    cat "$OUT/$tag-a/summary.txt" "$OUT/$tag-f/summary.txt" 2>/dev/null | grep -E '^ *a\.|^ *f\.|warm|snap|restore|copy' || true
    cat "$OUT/$tag-export.tsv"
done
