"""`python -m automation api|worker|relay|migrate|topology|revision|tick|webhooks|dead-letters`."""

import sys

from automation.cli import main

raise SystemExit(main(sys.argv[1:]))
