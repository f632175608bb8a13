#!/usr/bin/env bash
# Run the whole test suite from a fresh machine: installs what it needs first.
# Extra arguments go to pytest, e.g.: bash scripts/test.sh -k yaml -x
# The tests run in TEST_WORKERS processes (default 8: most of a test's time is
# spent waiting on a server or a timer, so more processes than cores pay off);
# TEST_WORKERS=0 runs them in this process, one after another. Each test file
# runs whole, in order, in one process (--dist loadfile): module-scoped
# fixtures are made once, and a file's tests may build on each other.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh test
# Each test process (and each interpreter a test starts) would compile the
# package and the tests anew if compiled modules were never written.
unset PYTHONDONTWRITEBYTECODE
status=0
workers="${TEST_WORKERS:-8}"
parallel=()
if [ "$workers" != 0 ]; then
    parallel=(-n "$workers" --dist loadfile)
fi
.venv/bin/python -m pytest "${parallel[@]}" "$@" || status=$?
if [ "$status" -eq 5 ]; then
    echo "test.sh: pytest collected no tests; that is a failure" >&2
    exit 1
fi
exit "$status"
