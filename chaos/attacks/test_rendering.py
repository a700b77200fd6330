"""Stored hostile text where it is rendered: the certificate PDF and its public verification."""

from __future__ import annotations

import io
import time
from typing import Any

import pypdf
import requests
from attack_seed import call, login
from attack_world import Ledger, World

# HTML, and PDF string syntax: an unescaped ")" would end the text and let the rest be operators.
NAME = "<script>alert(1)</script>"
SURNAME = ") Tj /JavaScript (x"
TITLE = "<img src=x onerror=alert(1)> \\) Tj ("


def wait_for(get: Any, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = get()
        if found:
            return found
        time.sleep(1)
    return None


def test_a_certificate_renders_hostile_names_as_text(world: World, ledger: Ledger) -> None:
    password = "correct horse battery staple"
    body = {"email": "cert@attack.test", "first_name": NAME, "last_name": SURNAME, "password": password}
    user = call(world, "POST", "identity", "/v1/users", json=body)
    assert user.status_code == 201, user.text
    user_id = user.json()["id"]
    call(world, "POST", "identity", f"/v1/users/{user_id}/roles", json={"role": "student"})
    course = call(world, "POST", "catalog", "/v1/courses", json={"title": TITLE}).json()["id"]
    module = call(world, "POST", "catalog", f"/v1/courses/{course}/modules", json={"title": "M"}).json()["id"]
    lesson_body = {"title": "L", "kind": "text", "body": "b"}
    lesson = call(world, "POST", "catalog", f"/v1/modules/{module}/lessons", json=lesson_body).json()["id"]
    call(world, "POST", "catalog", f"/v1/lessons/{lesson}/publish")
    call(world, "POST", "catalog", f"/v1/courses/{course}/publish")

    def enrolled() -> str | None:
        answer = call(world, "POST", "enrollment", "/v1/enrollments", json={"user_id": user_id, "course_id": course})
        return str(answer.json()["id"]) if answer.status_code in (200, 201) else None

    enrollment = wait_for(enrolled)
    assert enrollment, "enrollment never learnt of the course"
    boot = world.bootstrap
    token = login(world.suite, str(boot["client_id"]), str(boot["client_secret"]), "cert@attack.test", password)
    learner = {"Authorization": f"Bearer {token['access_token']}"}
    path = f"/v1/enrollments/{enrollment}/lessons/{lesson}/complete"

    def completed() -> bool:
        answer = requests.post(world.suite.url("enrollment", path), headers=learner, timeout=30)
        return answer.status_code in (200, 201)

    assert wait_for(completed), "the lesson could not be completed"

    def certificate() -> dict[str, Any] | None:
        listing = call(world, "GET", "enrollment", "/v1/certificates", params={"user_id": user_id})
        items = listing.json().get("items", []) if listing.status_code == 200 else []
        return items[0] if items else None

    issued = wait_for(certificate)
    assert issued, "no certificate was issued"
    pdf = call(world, "GET", "enrollment", f"/v1/certificates/{issued['id']}", headers={"Accept": "application/pdf"})
    ledger.expect("escaping", "certificate PDF of a hostile name", 200, pdf.status_code)
    text = "".join(page.extract_text() for page in pypdf.PdfReader(io.BytesIO(pdf.content)).pages)
    literal = NAME in text and SURNAME in text and TITLE in text
    ledger.record(
        "escaping", "hostile name and title in the PDF", "literal text", "literal" if literal else text[:80], literal
    )
    active = [marker for marker in (b"/JavaScript", b"/JS", b"/OpenAction", b"/AA") if marker in _objects(pdf.content)]
    ledger.record(
        "escaping", "PDF actions or scripts", "none", ", ".join(m.decode() for m in active) or "none", not active
    )
    verify = requests.get(
        world.suite.url("enrollment", f"/v1/certificates/verify/{issued['verification_code']}"), timeout=30
    )
    kind = verify.headers.get("Content-Type", "")
    ledger.record(
        "escaping",
        "public verification answers JSON, not HTML",
        "application/json",
        kind,
        kind.startswith("application/json"),
    )
    sniff = verify.headers.get("X-Content-Type-Options", "")
    ledger.record(
        "escaping", "public verification forbids content sniffing", "nosniff", sniff or "absent", sniff == "nosniff"
    )


def _objects(pdf: bytes) -> bytes:
    """The PDF without its text streams' contents: markers there are only the learner's text."""
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    names = [str(key).encode() for obj in (reader.trailer["/Root"],) for key in obj]
    names += [str(key).encode() for page in reader.pages for key in page]
    return b" ".join(names)
