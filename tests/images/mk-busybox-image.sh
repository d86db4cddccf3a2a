#!/bin/bash
# Builds the project's busybox test image from the host's static busybox (Debian package
# busybox-static), in both Incus image forms:
#   OUTDIR/busybox.tar.xz                                   unified (metadata.yaml, templates/, rootfs/)
#   OUTDIR/busybox-split.meta.tar.xz + busybox-split.rootfs.squashfs   split (metadata tarball + squashfs rootfs)
# The output is reproducible (fixed times, sorted entries, numeric owners), so the fingerprints
# stay the same for the same busybox binary. PID 1 is a small shell script that traps the stop
# signal (SIGPWR) first thing and exits at once, so a graceful stop is fast.
# Existing files are kept unless FORCE=1.
set -euo pipefail
OUT=${1:?usage: mk-busybox-image.sh OUTDIR}
BB=${BUSYBOX:-/bin/busybox}
mkdir -p "$OUT"
if [ -s "$OUT/busybox.tar.xz" ] && [ -s "$OUT/busybox-split.rootfs.squashfs" ] && [ "${FORCE:-0}" != 1 ]; then
  exit 0
fi
# (no `| grep -q` under pipefail: an early grep exit would fail the pipeline with SIGPIPE)
case "$(file -L "$BB" 2>/dev/null)" in *"statically linked"*) ;; *) echo "need a static busybox at $BB (apt-get install busybox-static)" >&2; exit 1;; esac
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
img=$work/image; r=$img/rootfs
mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,dev,proc,sys,tmp,run,root,etc/init.d,var/log,mnt} "$img/templates"
chmod 1777 "$r/tmp"; chmod 0700 "$r/root"
install -m 0755 "$BB" "$r/bin/busybox"
for app in $("$BB" --list-full); do
  [ -e "$r/$app" ] || [ -L "$r/$app" ] || ln -s /bin/busybox "$r/$app"
done
rm -f "$r/sbin/init"
cat > "$r/sbin/init" <<'INIT'
#!/bin/sh
trap 'kill -TERM -1 2>/dev/null; exit 0' PWR TERM INT
mount -t tmpfs tmpfs /run 2>/dev/null
hostname -F /etc/hostname 2>/dev/null
echo "busybox init ready: $(hostname)"
while :; do sleep 2147483647 & wait $!; done
INIT
chmod 0755 "$r/sbin/init"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$r/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
echo busybox > "$r/etc/hostname"
echo '{{ container.name }}' > "$img/templates/hostname.tpl"
epoch=$(stat -c %Y "$BB")
ver=$("$BB" 2>&1 | sed -n '1s/^BusyBox v\([0-9.]*\).*/\1/p')   # sed reads all: no SIGPIPE
cat > "$img/metadata.yaml" <<META
architecture: $(uname -m)
creation_date: $epoch
properties:
  architecture: $(uname -m)
  os: busybox
  release: "${ver:-unknown}"
  description: "busybox ${ver:-unknown} (locally built test image)"
templates:
  /etc/hostname:
    when:
    - create
    - copy
    template: hostname.tpl
META
TAR=(tar --sort=name --mtime="@$epoch" --owner=0 --group=0 --numeric-owner)
"${TAR[@]}" -C "$img" -cf - metadata.yaml templates rootfs | xz -T1 -6 -c > "$OUT/busybox.tar.xz.tmp"
"${TAR[@]}" -C "$img" -cf - metadata.yaml templates | xz -T1 -6 -c > "$OUT/busybox-split.meta.tar.xz.tmp"
mksquashfs "$r" "$OUT/busybox-split.rootfs.squashfs.tmp" -noappend -quiet -all-root -mkfs-time "$epoch" -all-time "$epoch" -comp gzip >/dev/null
for f in busybox.tar.xz busybox-split.meta.tar.xz busybox-split.rootfs.squashfs; do mv "$OUT/$f.tmp" "$OUT/$f"; done
echo "built $OUT: $(cd "$OUT" && sha256sum busybox.tar.xz | cut -c1-12)"
