"""SCORM uploads: a valid package is accepted; each unsafe or broken one is refused with 422."""

import io
import stat
import zipfile

import pytest
from catalog_helpers import build_course, ok, refused

from catalog import scorm

MANIFEST_12 = """<?xml version="1.0"?>
<manifest identifier="m" version="1" xmlns="http://www.imsproject.org/xsd/imscp_rootv1p1p2"
  xmlns:adlcp="http://www.adlnet.org/xsd/adlcp_rootv1p2">
  <metadata><schema>ADL SCORM</schema><schemaversion>1.2</schemaversion></metadata>
  <organizations default="org1"><organization identifier="org1"><title>Fire drill</title>
    <item identifier="i1" identifierref="r1"><title>Start</title></item></organization></organizations>
  <resources><resource identifier="r1" type="webcontent" adlcp:scormtype="sco" href="content/index.html">
    <file href="content/index.html"/></resource></resources>
</manifest>"""

MANIFEST_2004 = MANIFEST_12.replace(
    "<schemaversion>1.2</schemaversion>", "<schemaversion>2004 4th Edition</schemaversion>"
)


def make_zip(files, symlink=None):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            archive.writestr(info, "/etc/passwd")
    return buffer.getvalue()


VALID = {"imsmanifest.xml": MANIFEST_12, "content/index.html": "<html>hi</html>"}


@pytest.fixture()
def scorm_lesson(moderator):
    return build_course(moderator, kinds=("scorm", "text"))["lessons"]


def upload(caller, lesson, data):
    return caller.post(f"/v1/lessons/{lesson}/scorm", data={"package": (io.BytesIO(data), "pkg.zip")},
                       content_type="multipart/form-data")  # fmt: skip


def test_a_valid_package_is_recorded_and_the_lesson_can_be_published(moderator, scorm_lesson, settings):
    lesson = ok(upload(moderator, scorm_lesson[0], make_zip(VALID)))
    assert lesson["scorm"] == {"scorm_version": "1.2", "launch_path": "content/index.html", "title": "Fire drill",
                               "file_count": 2}  # fmt: skip
    assert list((settings.var_dir / "scorm").glob("*.zip"))
    assert ok(moderator.post(f"/v1/lessons/{scorm_lesson[0]}/publish"))["status"] == "published"
    again = ok(upload(moderator, scorm_lesson[0], make_zip({**VALID, "imsmanifest.xml": MANIFEST_2004})))
    assert again["scorm"]["scorm_version"] == "2004"


REFUSALS = [
    ("traversal", make_zip({**VALID, "../../evil.sh": "rm -rf /"}), "scorm_path_traversal"),
    ("absolute", make_zip({**VALID, "/etc/cron.d/x": "x"}), "scorm_absolute_path"),
    ("symlink", make_zip(VALID, symlink="content/link"), "scorm_symlink"),
    ("bomb", make_zip({**VALID, "content/zeros.bin": b"\0" * 5_000_000}), "scorm_zip_bomb"),
    ("no manifest", make_zip({"content/index.html": "<html/>"}), "scorm_manifest_missing"),
    ("not a zip", b"this is not a zip", "scorm_not_a_zip"),
    ("bad xml", make_zip({**VALID, "imsmanifest.xml": "<manifest><unclosed></manifest>"}), "scorm_manifest_invalid"),
    (
        "entities",
        make_zip({**VALID, "imsmanifest.xml": '<!DOCTYPE m [<!ENTITY a "aaaa">]><manifest>&a;</manifest>'}),
        "scorm_manifest_invalid",
    ),
    ("launch file absent", make_zip({"imsmanifest.xml": MANIFEST_12}), "scorm_launch_missing"),
]


@pytest.mark.parametrize(("case", "data", "code"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_unsafe_or_broken_packages_are_refused(moderator, scorm_lesson, case, data, code):
    problem = refused(upload(moderator, scorm_lesson[0], data), 422, code)
    assert problem["detail"].startswith("the SCORM package is refused:")
    assert ok(moderator.get(f"/v1/lessons/{scorm_lesson[0]}"))["scorm"] is None


def test_total_size_limit(scorm_lesson):
    data = make_zip({**VALID, "content/big.bin": bytes(range(256)) * 400})
    with pytest.raises(scorm.Unprocessable) as refusal:
        scorm.inspect(data, scorm.Limits(max_total_bytes=50_000))
    assert refusal.value.code == "scorm_zip_bomb"


def test_only_scorm_lessons_take_packages(moderator, scorm_lesson):
    refused(upload(moderator, scorm_lesson[1], make_zip(VALID)), 409, "lesson_not_scorm")
    refused(moderator.post(f"/v1/lessons/{scorm_lesson[0]}/scorm", data={}, content_type="multipart/form-data"), 422)
