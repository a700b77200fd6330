"""`python -m catalog api|worker|relay|migrate|topology|revision`."""

from catalog.service import SERVICE

raise SystemExit(SERVICE.main())
