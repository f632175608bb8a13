"""``python -m beanstalkt.web``: run the web console."""

from . import main

raise SystemExit(main())
