#!/usr/bin/env bash
# Shared set-up for the README commands: beanstalkd, a venv, the package.
# Usage: source scripts/setup.sh [EXTRAS]   (e.g. "test" or "dev")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! command -v beanstalkd >/dev/null 2>&1; then
    echo "setup: installing beanstalkd with apt-get" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq beanstalkd >/dev/null
fi

# tmux drives top's live view in a real terminal in the tests.
if ! command -v tmux >/dev/null 2>&1; then
    echo "setup: installing tmux with apt-get" >&2
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq tmux >/dev/null
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
extras="${1:-}"
spec="."
[ -z "$extras" ] || spec=".[$extras]"
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
