#!/usr/bin/env bash
# The test command: formatting, lints, then every test, with the privileged tests enabled when
# run as root (INCUS_TEST_PRIVILEGED=1). Ends with one summary line, "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then export INCUS_TEST_PRIVILEGED=${INCUS_TEST_PRIVILEGED:-1}; fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The API types, config and driver traits must build without the Linux engine.
cargo check --locked -p incus-core --no-default-features --lib
# The Rust client must build for macOS and Windows too (checked, not linked: no cross linker).
# Without its `tls` feature: aws-lc (under rustls) needs a C compiler for the target, which
# this machine has not; the rest of the crate is checked.
for target in x86_64-apple-darwin x86_64-pc-windows-gnu; do
  cargo check --locked -p incus-client --lib --no-default-features --target "$target"
done
log=$(mktemp)
# The zfs driver's tests need a ZFS daemon; without kernel ZFS, start zfs-fuse for the run
# (and stop it after, by its PID) unless one answers already.
zfs_pid=
if command -v zfs-fuse >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && ! timeout 10 zpool list >/dev/null 2>&1; then
  zfs-fuse --no-daemon --pidfile "$log.zfs-fuse.pid" >/dev/null 2>&1 &
  zfs_pid=$!
  for _ in $(seq 100); do timeout 5 zpool list >/dev/null 2>&1 && break; sleep 0.1; done
fi
trap 'rm -f "$log" "$log.zfs-fuse.pid"; if [ -n "$zfs_pid" ]; then kill "$zfs_pid" 2>/dev/null || true; fi' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
# The Python module: wheel built and installed in a fresh virtualenv, pytest against a real
# incusd and the embedded engine.
bash bindings/python/run-tests.sh 2>&1 | tee -a "$log" || status=$?
if grep -q '^SKIPPED ' "$log"; then
  echo "note: some privileged tests were skipped (see SKIPPED lines above)"
fi
awk '/^(test|pytest) result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed[;,]?$/) p += $(i-1); if ($i ~ /^failed[;,]?$/ || ($1 == "pytest" && $i ~ /^errors?[;,]?$/)) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
