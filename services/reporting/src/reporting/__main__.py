"""`python -m reporting api|worker|relay|migrate|topology|revision|rebuild`."""

from reporting.cli import main

raise SystemExit(main())
