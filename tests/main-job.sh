#!/usr/bin/env bash
# The main job: install what is needed, build, make the busybox image, start `incusd` on its
# own state directory (an embedded default: a `dir` pool named default), then with our
# `incus` client import the image, launch a container, exec in it, list and delete it, and
# stop the daemon. State goes to $INCUS_DIR (default: a fresh directory under /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
cargo build --locked --release -p incus-daemon -p incus-cli
bash tests/images/mk-busybox-image.sh target/images
state=${INCUS_DIR:-$(mktemp -d /var/tmp/incus-main-job.XXXXXX)}
mkdir -p "$state"
echo "state directory: $state"
export INCUS_DIR=$state INCUS_CONF=$state/client-config
incus=./target/release/incus
./target/release/incusd --dir "$state" >"$state/incusd.log" 2>&1 &
daemon=$!
name=main-job-$$
cleanup() {
    "$incus" delete -f "$name" >/dev/null 2>&1 || true
    kill "$daemon" 2>/dev/null || true
    wait "$daemon" 2>/dev/null || true
}
trap cleanup EXIT
"$incus" admin waitready --timeout 30
"$incus" image info busybox >/dev/null 2>&1 ||
    "$incus" image import target/images/busybox.tar.xz --alias busybox
"$incus" storage list
start=$(date +%s%N)
"$incus" launch busybox "$name"
echo "launched in $(( ($(date +%s%N) - start) / 1000000 )) ms"
"$incus" exec "$name" -- sh -c 'echo "hello from $(hostname): $(uname -sr)"; cat /etc/os-release 2>/dev/null | head -1 || true'
"$incus" list
"$incus" delete -f "$name"
echo "main job done"
