"""`create_app()`: the WSGI application gunicorn serves on port 8004."""

from flask import Flask

from automation.service import SERVICE
from lms_common.auth import KeySource
from lms_common.config import Settings


def create_app(settings: Settings | None = None, key_source: KeySource | None = None) -> Flask:
    return SERVICE.create_app(settings, key_source)
