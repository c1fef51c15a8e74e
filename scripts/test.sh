#!/usr/bin/env bash
# The project's test command: prepares the Python MCP SDK (the real third-party peer the
# end-to-end tests drive) and the chart checkers in target/py-venv, then runs every test
# in the release profile (the same build `cargo run --release -- demo` uses, so nothing
# is compiled twice), then checks the deployment artefacts.
set -euo pipefail
cd "$(dirname "$0")/.."

venv=target/py-venv
if ! "$venv/bin/python" -c 'import mcp, helm_python, kubernetes_validate' 2>/dev/null; then
    echo "test.sh: installing the Python MCP SDK and chart checkers into $venv" >&2
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check \
        -r tests/py/requirements.txt -r tests/deploy/requirements.txt
fi
export MCPT_PYTHON="$PWD/$venv/bin/python"

# No import circle among src/ files, and the layering rules.
"$venv/bin/python" scripts/module_graph.py
# No src/ file over 400 lines, no function over 80 (tests aside).
"$venv/bin/python" scripts/size_check.py

cargo test --release "$@"

# Deployment artefacts: the Helm chart (rendered, linted, schema-validated) and the
# systemd unit (systemd-analyze verify when available).
"$venv/bin/python" tests/deploy/helm_check.py
bash tests/deploy/systemd_check.sh
