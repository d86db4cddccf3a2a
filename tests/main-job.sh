#!/usr/bin/env bash
# The main job: install what is needed, build, make the busybox image, then launch a
# container with the embedded engine, exec in it, snapshot, restore and delete it.
# State goes to $INCUS_DIR (default: a fresh directory under /var/tmp).
set -euo pipefail
cd "$(dirname "$0")/.."
bash tests/install-deps.sh
cargo build --locked --release -p incus-core --bins --examples
bash tests/images/mk-busybox-image.sh target/images
state=${INCUS_DIR:-$(mktemp -d /var/tmp/incus-main-job.XXXXXX)}
echo "state directory: $state"
./target/release/examples/launch "$state" target/images/busybox.tar.xz
