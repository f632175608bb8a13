"""``python -m beanstalkt.web``: run the web console."""

from ..ops.web import main

raise SystemExit(main())
