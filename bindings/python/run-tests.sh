#!/bin/bash
# The Python tests: builds the `incus` wheel (dev profile: quicker, same code), installs it
# with pytest into a fresh virtualenv under target/, and runs bindings/python/tests against a
# real incusd (target/debug/incusd, built by the caller) and the embedded engine. Prints
# pytest's summary, then one line "pytest result: ..." for tests/run-tests.sh to count.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
venv=$root/target/py-venv
rm -rf "$venv"
python3 -m venv "$venv"
"$venv/bin/pip" install -q --disable-pip-version-check "maturin==1.16.0" "pytest==9.2.0" "mypy==2.4.1"
cargo build --manifest-path "$root/Cargo.toml" -p incus-daemon --bin incusd
PATH="$venv/bin:$PATH" PROFILE=${PROFILE:-dev} bash "$here/build-wheel.sh" >/dev/null
"$venv/bin/pip" install -q --disable-pip-version-check "$here"/dist/*.whl
# The type hints and stubs (.pyi) must agree with the code.
(cd "$here/python" && "$venv/bin/python" -m mypy --ignore-missing-imports --cache-dir=/dev/null incus)
out=$(mktemp)
trap 'rm -f "$out"' EXIT
status=0
# Run from the tests directory so that the installed package, not the source tree, is tested.
(cd "$here/tests" && INCUSD="$root/target/debug/incusd" "$venv/bin/python" -m pytest -p no:cacheprovider -q "$@") \
  2>&1 | tee "$out" || status=$?
echo "pytest result: $(tail -n 1 "$out")"
exit "$status"
