#!/usr/bin/env bash
# Run the whole test suite from a fresh machine: installs what it needs first.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k yaml -x
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh test
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$status"
