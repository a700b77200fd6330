"""`create_app()`: the WSGI application gunicorn serves on port 8003."""

from flask import Flask

from enrollment.service import SERVICE
from lms_common.auth import KeySource
from lms_common.config import Settings


def create_app(settings: Settings | None = None, key_source: KeySource | None = None) -> Flask:
    return SERVICE.create_app(settings, key_source)
