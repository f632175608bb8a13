"""``python -m beanstalkt.worker``: run a worker (see :mod:`beanstalkt.cli.worker`)."""

import sys

from ..cli.worker import main

sys.exit(main())
