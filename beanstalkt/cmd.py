"""``python -m beanstalkt.cmd``: the command line client, by the seed's spelling.

The command line lives in :mod:`beanstalkt.cli.main`; this module keeps the
original beanstalkt's ``python -m beanstalkt.cmd put "..."`` working.
"""

import sys

from .cli.main import main

__all__ = ["main"]

if __name__ == "__main__":
    sys.exit(main())
