"""The identity service as the shared runtime sees it: its API, its handlers, its migrations.

``python -m identity`` has the runtime's commands (``api``, ``worker``, ``relay``, ``migrate``,
``topology``, ``revision``); ``migrate`` also bootstraps the first organization. identity adds
``rotate-keys`` (a new signing key; the old one stays published while its tokens live) and
``send-mail`` (send the mail outbox through SMTP once).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from identity import keys, mail
from identity.api import directory, oauth, users
from identity.bootstrap import bootstrap
from identity.handlers import HANDLERS
from identity.provisioning import BATCH_HANDLERS, KEEPER
from lms_common.db import make_engine, make_session_factory, session_scope
from lms_common.service import ServiceDefinition

SERVICE = ServiceDefinition(
    name="identity",
    title="LMS identity: people, organizations, roles and OAuth 2",
    migrations=str(Path(__file__).parent / "migrations"),
    blueprints=(oauth.blp, users.blp, directory.blp),
    handlers=HANDLERS,
    batch_handlers=BATCH_HANDLERS,
    statistics=KEEPER,
)

EXTRA_COMMANDS = ("rotate-keys", "send-mail")


def main(argv: Sequence[str] | None = None) -> int:
    """The command line: the runtime's commands plus identity's own."""
    args = list(sys.argv[1:] if argv is None else argv)
    command = args[0] if args else ""
    if command not in EXTRA_COMMANDS:
        code = SERVICE.main(args)
        if command == "migrate":
            _bootstrap()
        return code
    settings = SERVICE.settings()
    factory = make_session_factory(make_engine(settings.database_url))
    with session_scope(factory) as session:
        if command == "rotate-keys":
            print(f"new signing key {keys.rotate(session)}; the previous one stays published as retiring")
        else:
            print(f"sent {mail.send_pending(session)} mails")
    return 0


def _bootstrap() -> None:
    settings = SERVICE.settings()
    result = bootstrap(make_session_factory(make_engine(settings.database_url)), settings)
    state = "created" if result.pop("created") else "already present"
    print(f"bootstrap {state} ({Path(settings.var_dir) / 'bootstrap.json'}):")
    print(json.dumps(result, indent=2))
