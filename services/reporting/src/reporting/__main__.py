"""`python -m reporting api|worker|relay|migrate|topology|revision`."""

from reporting.service import SERVICE

raise SystemExit(SERVICE.main())
