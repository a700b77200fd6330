"""`python -m identity api|worker|relay|migrate|topology|revision`."""

from identity.service import SERVICE

raise SystemExit(SERVICE.main())
