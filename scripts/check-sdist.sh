#!/usr/bin/env bash
# The sdist runs its own tests: build it, unpack it in a temporary directory,
# and run the tests it ships against the package it ships (not this checkout).
# The fast subset by default (-m "not slow": the soaks take minutes); extra
# arguments go to pytest, e.g. bash scripts/check-sdist.sh -m "" for all.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
checkout="$PWD"
source scripts/setup.sh test
python="$checkout/.venv/bin/python"
# `build` makes the sdist exactly as a release would (isolated, from pyproject.toml).
"$python" -m pip install --quiet --disable-pip-version-check "build>=1" >/dev/null 2>&1 \
    || { echo "check-sdist: cannot install build" >&2; exit 1; }
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
if ! "$python" -m build --sdist --outdir "$work" . >"$work/build.log" 2>&1; then
    cat "$work/build.log" >&2
    echo "check-sdist: building the sdist failed (log above)" >&2
    exit 1
fi
tar -xzf "$work"/beanstalkt-*.tar.gz -C "$work"
unpacked="$(echo "$work"/beanstalkt-*/)"
cd "$unpacked"
# Every interpreter the tests start imports the unpacked package first (the
# checkout's editable install stays behind it on sys.path).
export PYTHONPATH="$unpacked"
unset PYTHONDONTWRITEBYTECODE
"$python" -c 'import beanstalkt, sys; assert beanstalkt.__file__.startswith(sys.argv[1]), beanstalkt.__file__' \
    "$unpacked"
status=0
"$python" -m pytest -p no:cacheprovider -n "${TEST_WORKERS:-8}" --dist loadfile -m "not slow" "$@" \
    || status=$?
echo "check-sdist: the sdist's tests exited with $status (in $unpacked)" >&2
exit "$status"
