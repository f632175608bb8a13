"""``python -m beanstalkt.top``: the terminal view of servers.

It lives in :mod:`beanstalkt.ops.top`; this path keeps the documented
command line and imports working.
"""

import sys

from .ops.top import *  # noqa: F403
from .ops.top import main

if __name__ == "__main__":
    sys.exit(main())
