"""First start (CONTRACT section 1): the organization ``default``, a super admin, a client.

Values the environment does not give are generated once and kept in ``var/bootstrap.json``.
Running it again changes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from identity import keys, services
from identity.models import Organization
from identity.passwords import new_secret
from identity.permissions import PERMISSIONS
from identity.services import grant_role
from lms_common.config import Settings
from lms_common.db import session_scope

DEFAULT_ORG = "default"
FILE_NAME = "bootstrap.json"


def values_from(env: Mapping[str, str]) -> dict[str, str]:
    """The bootstrap values: the environment's, else strong generated ones."""
    return {
        "admin_email": env.get("LMS_BOOTSTRAP_ADMIN_EMAIL") or "admin@lms.local",
        "admin_password": env.get("LMS_BOOTSTRAP_ADMIN_PASSWORD") or new_secret(18),
        "client_id": env.get("LMS_BOOTSTRAP_CLIENT_ID") or "lms-bootstrap",
        "client_secret": env.get("LMS_BOOTSTRAP_CLIENT_SECRET") or new_secret(),
    }


def bootstrap(
    session_factory: sessionmaker[Session], settings: Settings, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """Create the default organization, its super admin and its client unless they exist."""
    path = Path(settings.var_dir) / FILE_NAME
    with session_scope(session_factory) as session:
        keys.active_key(session)
        org = session.scalars(select(Organization).where(Organization.slug == DEFAULT_ORG)).first()
        if org is not None:
            return {"created": False, **_read(path)}
        values = values_from(os.environ if env is None else env)
        org_id = _create(session, values)
    result = {"org_id": org_id, "issuer": settings.issuer, **values}
    _write(path, result)
    return {"created": True, **result}


def _create(session: Session, values: Mapping[str, str]) -> str:
    org = services.create_organization(session, "Default organization", slug=DEFAULT_ORG)
    admin = services.create_user(
        session,
        org.id,
        {
            "email": values["admin_email"],
            "first_name": "Super",
            "last_name": "Admin",
            "kind": "staff",
            "password": values["admin_password"],
        },
    )
    grant_role(session, admin, "super_admin")
    client = {
        "name": "Bootstrap client",
        "scopes": list(PERMISSIONS),
        "grant_types": ["client_credentials", "authorization_code", "refresh_token"],
        "redirect_uris": [os.environ.get("LMS_BOOTSTRAP_REDIRECT_URI", "http://127.0.0.1:8001/oauth/callback")],
        "trusted": True,
    }
    services.create_oauth_client(session, org.id, client, client_id=values["client_id"], secret=values["client_secret"])
    return org.id


def _write(path: Path, values: Mapping[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)


def _read(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text()) if path.exists() else {}
