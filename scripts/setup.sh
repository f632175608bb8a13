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

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
extras="${1:-}"
spec="."
[ -z "$extras" ] || spec=".[$extras]"
# The web console's browser tests drive headless Chromium (skipped, saying why, without it).
if [ "$extras" = "test" ] || [ "$extras" = "dev" ]; then
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        echo "setup: installing chromium and chromium-driver with apt-get" >&2
        SUDO=""
        [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        { $SUDO apt-get update -qq \
            && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium chromium-driver; } \
            >/dev/null 2>&1 || echo "setup: could not install chromium; browser tests will skip" >&2
    fi
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip >/dev/null
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec"
