"""``python -m nocodb_guard``: the same as the ``nocodb-guard`` console script."""

from nocodb_guard.cli import main

raise SystemExit(main())
