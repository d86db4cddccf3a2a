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
for target in x86_64-apple-darwin x86_64-pc-windows-gnu; do
  cargo check --locked -p incus-client --lib --target "$target"
done
log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0
cargo test --workspace --locked 2>&1 | tee "$log" || status=$?
if grep -q '^SKIPPED ' "$log"; then
  echo "note: some privileged tests were skipped (see SKIPPED lines above)"
fi
awk '/^test result:/ { for (i = 1; i <= NF; i++) { if ($i ~ /^passed;?$/) p += $(i-1); if ($i ~ /^failed;?$/) f += $(i-1) } }
     END { printf "%d passed, %d failed\n", p, f }' "$log"
exit "$status"
