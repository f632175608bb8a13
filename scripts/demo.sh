#!/usr/bin/env bash
# Run demo.py from a fresh machine: installs what it needs, then runs the demo
# (which starts a throwaway beanstalkd when none answers on localhost:11300).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
source scripts/setup.sh
exec .venv/bin/python demo.py "$@"
