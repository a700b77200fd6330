"""`python -m automation api|worker|relay|migrate|topology|revision`."""

from automation.service import SERVICE

raise SystemExit(SERVICE.main())
