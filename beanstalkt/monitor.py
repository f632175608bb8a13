"""Server snapshots: moved to :mod:`beanstalkt.ops.monitor`.

This import path keeps working.
"""

from .ops.monitor import *  # noqa: F403
