"""Schemathesis hooks (loaded through SCHEMATHESIS_HOOKS by fuzz/run.py): every request carries
a bearer token of the bootstrap client, fetched with client credentials and renewed before it
expires (tokens live 15 minutes)."""

from __future__ import annotations

import os
import time
from typing import Any

import requests
import schemathesis


@schemathesis.auth(refresh_interval=600)
class BootstrapClientToken:
    def get(self, case: Any, context: Any) -> str:
        for _ in range(10):
            response = requests.post(
                os.environ["LMS_FUZZ_TOKEN_URL"],
                data={"grant_type": "client_credentials"},
                auth=(os.environ["LMS_FUZZ_CLIENT_ID"], os.environ["LMS_FUZZ_CLIENT_SECRET"]),
                timeout=30,
            )
            if response.status_code != 429:  # fuzzing the token endpoint spends its rate limit
                break
            time.sleep(float(response.headers.get("Retry-After", "10")))
        response.raise_for_status()
        return str(response.json()["access_token"])

    def set(self, case: Any, data: str, context: Any) -> None:
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {data}"}
