"""`create_app()`: the WSGI application gunicorn serves on port 8001."""

from flask import Flask

from identity import oauth
from identity.keys import DatabaseKeys
from identity.service import SERVICE
from lms_common.auth import KeySource
from lms_common.config import Settings


def create_app(settings: Settings | None = None, key_source: KeySource | None = None) -> Flask:
    """The identity API with its OAuth 2 server; it checks tokens against its own keys."""
    app = SERVICE.create_app(settings, key_source)
    runtime = app.extensions["lms"]
    if key_source is None:
        # identity is the issuer: read its keys from its database, not over HTTP from itself.
        runtime.verifier.keys = DatabaseKeys(runtime.session_factory)
    oauth.init_app(app)
    return app
