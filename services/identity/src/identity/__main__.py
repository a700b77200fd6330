"""`python -m identity api|worker|relay|migrate|topology|revision|rotate-keys|send-mail`."""

from identity.service import main

raise SystemExit(main())
