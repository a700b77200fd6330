"""`python -m enrollment api|worker|relay|migrate|topology|revision`."""

from enrollment.service import SERVICE

raise SystemExit(SERVICE.main())
