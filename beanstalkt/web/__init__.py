"""``python -m beanstalkt.web``: the web console.

It lives in :mod:`beanstalkt.ops.web`; this path keeps the documented command
line and imports working.
"""

from ..ops.web import *  # noqa: F403
