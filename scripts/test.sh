#!/usr/bin/env bash
# The project's test command: prepares the Python MCP SDK (the real third-party peer the
# end-to-end tests drive) in target/py-venv, then runs every test in the release profile
# (the same build `cargo run --release -- demo` uses, so nothing is compiled twice).
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/py-venv
if ! "$venv/bin/python" -c 'import mcp' 2>/dev/null; then
    echo "test.sh: installing the Python MCP SDK into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/py/requirements.txt
fi
export MCPT_PYTHON="$PWD/$venv/bin/python"

cargo test --release "$@"
