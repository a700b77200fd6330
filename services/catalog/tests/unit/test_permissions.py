"""Who sees and edits what: learner, course creator, moderator, and another tenant."""

import pytest
from catalog_helpers import CREATOR, LEARNER, MODERATOR, OTHER_ORG, build_course, ok, published_course, refused


@pytest.fixture()
def library(as_user):
    """Two creators' courses: A's draft and A's published course; the callers to try them."""
    alice = as_user(CREATOR)
    draft = build_course(alice, "Alice draft")
    published = published_course(alice, "Alice published")
    return {
        "alice": alice,
        "bob": as_user(CREATOR),
        "moderator": as_user(MODERATOR),
        "learner": as_user(LEARNER),
        "stranger": as_user(MODERATOR, org=OTHER_ORG),
        "draft": draft,
        "published": published,
    }


READ = [  # who, course, expected status of GET
    ("learner", "draft", 404),
    ("learner", "published", 200),
    ("alice", "draft", 200),
    ("bob", "draft", 404),
    ("bob", "published", 200),
    ("moderator", "draft", 200),
    ("stranger", "draft", 404),
    ("stranger", "published", 404),
]


@pytest.mark.parametrize(("who", "which", "status"), READ)
def test_reading_a_course(library, who, which, status):
    course = library[which] if which == "published" else library[which]["course"]
    assert library[who].get(f"/v1/courses/{course}").status_code == status
    assert library[who].get(f"/v1/courses/{course}/outline").status_code == status


EDIT = [  # who, course, expected status of PATCH
    ("learner", "published", 403),  # no catalog:write at all
    ("alice", "draft", 200),
    ("alice", "published", 200),
    ("bob", "draft", 404),  # cannot even see it
    ("bob", "published", 403),  # sees it, may not edit it
    ("moderator", "draft", 200),
    ("moderator", "published", 200),
    ("stranger", "published", 404),
]


@pytest.mark.parametrize(("who", "which", "status"), EDIT)
def test_editing_a_course(library, who, which, status):
    course = library[which] if which == "published" else library[which]["course"]
    response = library[who].patch(f"/v1/courses/{course}", json={"title": "Renamed"})
    assert response.status_code == status, response.get_json()
    if status == 403:
        assert response.get_json().get("code") in ("not_owner", None)


def test_lists_show_each_caller_what_it_may_see(library):
    def titles(who):
        return sorted(c["title"] for c in ok(library[who].get("/v1/courses"))["items"])

    assert titles("learner") == ["Alice published"]
    assert titles("bob") == ["Alice published"]
    assert titles("alice") == ["Alice draft", "Alice published"]
    assert titles("moderator") == ["Alice draft", "Alice published"]
    assert titles("stranger") == []


def test_learners_see_only_published_lessons(library, as_user):
    alice, learner = library["alice"], library["learner"]
    course = library["published"]
    module = ok(alice.get(f"/v1/courses/{course}/outline"))["modules"][0]["id"]
    draft = ok(alice.post(f"/v1/modules/{module}/lessons", json={"title": "Draft", "kind": "text"}), 201)["id"]
    outline = ok(learner.get(f"/v1/courses/{course}/outline"))
    assert [x["title"] for m in outline["modules"] for x in m["lessons"]] == ["text lesson"]
    refused(learner.get(f"/v1/lessons/{draft}"), 404)
    assert len(ok(alice.get(f"/v1/courses/{course}/outline"))["modules"][0]["lessons"]) == 2


def test_creators_edit_only_their_own_programs(library):
    alice, bob, moderator = library["alice"], library["bob"], library["moderator"]
    program = ok(alice.post("/v1/programs", json={"title": "Path", "course_ids": [library["published"]]}), 201)
    refused(bob.patch(f"/v1/programs/{program['id']}", json={"title": "Mine"}), 404)  # unpublished: hidden
    ok(alice.post(f"/v1/programs/{program['id']}/publish"))
    refused(bob.patch(f"/v1/programs/{program['id']}", json={"title": "Mine"}), 403, "not_owner")
    ok(moderator.patch(f"/v1/programs/{program['id']}", json={"title": "Renamed by moderator"}))


def test_tokens_are_required(app, library):
    response = app.test_client().get("/v1/courses")
    assert response.status_code == 401 and "Bearer" in response.headers["WWW-Authenticate"]
    refused(library["learner"].post("/v1/courses", json={"title": "Nope"}), 403)
