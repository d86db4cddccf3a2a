#!/usr/bin/env bash
# The test command: formatting, lints, then every test, with the privileged tests enabled when
# run as root (INCUS_TEST_PRIVILEGED=1). Must run from the repository root or anywhere below.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$(id -u)" = 0 ]; then export INCUS_TEST_PRIVILEGED=${INCUS_TEST_PRIVILEGED:-1}; fi
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
