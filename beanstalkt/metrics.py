"""The worker's Prometheus metrics: moved to :mod:`beanstalkt.ops.metrics`.

This import path keeps working.
"""

from .ops.metrics import *  # noqa: F403
