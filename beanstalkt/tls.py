"""The command lines' TLS options: moved to :mod:`beanstalkt.cli.tls`.

This import path keeps working.
"""

from .cli.tls import *  # noqa: F403
