#!/bin/bash
# Builds the `incus` wheel into bindings/python/dist/: the liblxc helper the embedded engine
# runs (`incus-helper`) is built first and shipped inside the package, next to `_native`.
# PROFILE=release (default) or dev (quicker to build, for tests).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
profile=${PROFILE:-release}
case "$profile" in
    dev) outdir=debug ;;
    *) outdir=$profile ;;
esac
target=${CARGO_TARGET_DIR:-$root/target}
cargo build --manifest-path "$root/Cargo.toml" --profile "$profile" -p incus-core --bin incus-helper
install -m 0755 "$target/$outdir/incus-helper" "$here/python/incus/incus-helper"
cd "$here"
rm -rf "$here/dist"
# The wheel links the system liblxc (and what it needs) rather than bundling copies: it is
# tagged `linux`, for this distribution, not manylinux.
maturin build --profile "$profile" --compatibility linux --auditwheel skip --out "$here/dist" "$@"
ls -1 "$here"/dist/*.whl
