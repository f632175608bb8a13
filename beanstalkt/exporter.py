"""``python -m beanstalkt.exporter``: the Prometheus exporter.

It lives in :mod:`beanstalkt.ops.exporter`; this path keeps the documented
command line and imports working.
"""

import sys

from .ops.exporter import *  # noqa: F403
from .ops.exporter import main

if __name__ == "__main__":
    sys.exit(main())
