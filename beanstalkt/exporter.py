"""``python -m beanstalkt.exporter``: the Prometheus exporter.

It lives in :mod:`beanstalkt.ops.exporter`; this path keeps the documented
command line and imports working.
"""

import sys

if __name__ == "__main__":
    # Without the metrics extra the import fails: one line, as from
    # `beanstalkt exporter`, rather than a traceback (even for -h).
    try:
        from .ops.exporter import main
    except ImportError as exc:
        sys.exit(f"beanstalkt exporter: {exc}")
    sys.exit(main())
else:
    from .ops.exporter import *  # noqa: F403
    from .ops.exporter import main
