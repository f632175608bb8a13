#!/usr/bin/env bash
# Shared set-up for the README commands: beanstalkd, a venv, the package.
# Usage: source scripts/setup.sh [EXTRAS]   (e.g. "test" or "dev")
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

extras="${1:-}"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
apt_updated=""

# apt_get PACKAGE...: install PACKAGEs with apt-get (the package lists updated once).
apt_get() {
    echo "setup: installing $* with apt-get" >&2
    if [ -z "$apt_updated" ]; then
        $SUDO apt-get update -qq
        apt_updated=1
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "$@" >/dev/null
}

# apt_install COMMAND PACKAGE...: install PACKAGEs with apt-get unless COMMAND exists.
apt_install() {
    local command="$1"
    shift
    command -v "$command" >/dev/null 2>&1 && return 0
    apt_get "$@"
}

apt_install beanstalkd beanstalkd
if [ "$extras" = "test" ] || [ "$extras" = "dev" ]; then
    # What the test suite drives besides beanstalkd: iptables (the keepalive
    # test drops a flow in a network namespace of its own), tmux (top's live
    # view in a real terminal), headless Chromium (the web console's browser
    # tests, which skip, saying why, only when it cannot be installed), stunnel4
    # (the TLS terminator in front of beanstalkd in the TLS tests).
    apt_install iptables iptables
    apt_install tmux tmux
    apt_install stunnel4 stunnel4
    # Both commands are needed, chromium and chromedriver (Debian's chromium-driver).
    if ! command -v chromium >/dev/null 2>&1 || ! command -v chromedriver >/dev/null 2>&1; then
        apt_get chromium chromium-driver 2>/dev/null \
            || echo "setup: could not install chromium; the browser tests will skip, saying why" >&2
    fi
fi

PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv" >&2
    "$PYTHON" -m venv .venv
fi
spec="."
[ -z "$extras" ] || spec=".[$extras]"
# The install is editable, so code changes need no reinstall: pip runs again
# only when the dependencies (pyproject.toml) or this script change.
stamp=".venv/setup-stamp-${extras:-none}"
wanted="$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$stamp" 2>/dev/null)" != "$wanted" ]; then
    .venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip \
        >/dev/null 2>&1 \
        || echo "setup: could not upgrade pip; going on with the one the venv has" >&2
    # pip's notices (editable installs, a newer pip) are not for the user of these
    # scripts: its output is shown only when the install fails.
    if ! .venv/bin/python -m pip install --quiet --disable-pip-version-check -e "$spec" \
        >.venv/pip-install.log 2>&1; then
        cat .venv/pip-install.log >&2
        echo "setup: installing the package failed (log above)" >&2
        exit 1
    fi
    echo "$wanted" >"$stamp"
fi
