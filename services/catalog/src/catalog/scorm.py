"""Checking an uploaded SCORM 1.2 or 2004 package before anything of it is kept.

The zip is read from memory and never extracted here. Refused, each with 422 and the reason:
a file that is not a zip; too many entries; an absolute path or a ``..`` component (a later
extraction would write outside its folder); a symbolic link; a zip bomb (too many bytes once
inflated, or an entry inflating more than ``max_ratio`` times); a missing or unparsable
``imsmanifest.xml``; a manifest with no launchable resource, or naming a file not in the zip.
The manifest is parsed with defusedxml: no DTDs, entities or external references.
"""

from __future__ import annotations

import io
import stat
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from xml.etree.ElementTree import Element

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import ParseError, fromstring

from lms_common.errors import Unprocessable

MANIFEST = "imsmanifest.xml"


@dataclass(frozen=True)
class Limits:
    max_entries: int = 10_000
    max_total_bytes: int = 500 * 1024 * 1024
    max_ratio: int = 100
    max_manifest_bytes: int = 2 * 1024 * 1024


@dataclass(frozen=True)
class Package:
    """What the catalog records of a valid package."""

    scorm_version: str  # "1.2" or "2004"
    launch_path: str
    title: str
    file_count: int
    uncompressed_bytes: int


def refuse(reason: str, code: str) -> Unprocessable:
    return Unprocessable(f"the SCORM package is refused: {reason}", code=code)


def inspect(data: bytes, limits: Limits = Limits()) -> Package:
    """Validate a SCORM zip and describe it, or raise 422 with the reason."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, ValueError) as exc:
        raise refuse("the upload is not a zip file", "scorm_not_a_zip") from exc
    with archive:
        entries = archive.infolist()
        _check_entries(entries, limits)
        names = {entry.filename for entry in entries if not entry.is_dir()}
        root = _manifest(archive, limits)
        version = _version(root)
        launch = _launch_path(root)
        if launch not in names:
            raise refuse(f"the manifest launches '{launch}', which is not in the zip", "scorm_launch_missing")
        total = sum(entry.file_size for entry in entries)
        return Package(version, launch, _title(root), len(names), total)


def _check_entries(entries: list[zipfile.ZipInfo], limits: Limits) -> None:
    if len(entries) > limits.max_entries:
        raise refuse(f"it holds {len(entries)} entries, more than {limits.max_entries}", "scorm_too_many_files")
    total = 0
    for entry in entries:
        _check_path(entry.filename)
        if stat.S_ISLNK(entry.external_attr >> 16):
            raise refuse(f"'{entry.filename}' is a symbolic link", "scorm_symlink")
        total += entry.file_size
        if total > limits.max_total_bytes:
            raise refuse(f"it inflates to more than {limits.max_total_bytes} bytes", "scorm_zip_bomb")
        if entry.file_size > limits.max_ratio * max(entry.compress_size, 1):
            raise refuse(
                f"'{entry.filename}' inflates more than {limits.max_ratio} times (a zip bomb)", "scorm_zip_bomb"
            )


def _check_path(name: str) -> None:
    normalised = name.replace("\\", "/")
    if normalised.startswith("/") or (len(normalised) > 1 and normalised[1] == ":"):
        raise refuse(f"'{name}' is an absolute path", "scorm_absolute_path")
    if ".." in PurePosixPath(normalised).parts or "\x00" in name:
        raise refuse(f"'{name}' leaves the package folder (path traversal)", "scorm_path_traversal")


def _manifest(archive: zipfile.ZipFile, limits: Limits) -> Element:
    try:
        info = archive.getinfo(MANIFEST)
    except KeyError:
        raise refuse(f"{MANIFEST} is missing at the root of the zip", "scorm_manifest_missing") from None
    if info.file_size > limits.max_manifest_bytes:
        raise refuse(f"{MANIFEST} is larger than {limits.max_manifest_bytes} bytes", "scorm_manifest_invalid")
    try:
        return fromstring(archive.read(info))  # type: ignore[no-any-return]
    except (ParseError, DefusedXmlException, zipfile.BadZipFile, ValueError) as exc:
        raise refuse(f"{MANIFEST} is not well-formed, safe XML ({exc})", "scorm_manifest_invalid") from exc


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _children(element: Element, name: str) -> list[Element]:
    return [child for child in element if _local(child.tag) == name]


def _attribute(element: Element, name: str) -> str | None:
    for key, value in element.attrib.items():
        if _local(key).lower() == name.lower():
            return value
    return None


def _version(root: Element) -> str:
    if _local(root.tag) != "manifest":
        raise refuse(f"the root element of {MANIFEST} is not <manifest>", "scorm_manifest_invalid")
    schema_versions = [el.text or "" for el in root.iter() if _local(el.tag) == "schemaversion"]
    namespaces = " ".join([root.tag, *(str(v) for v in root.attrib.values())])
    if any("2004" in v or "CAM 1.3" in v for v in schema_versions) or "adlcp_v1p3" in namespaces:
        return "2004"
    return "1.2"


def _resources(root: Element) -> list[Element]:
    return [res for group in _children(root, "resources") for res in _children(group, "resource")]


def _launch_path(root: Element) -> str:
    """The href of the resource the default organization's first item points at (else the first SCO)."""
    resources = {_attribute(r, "identifier"): r for r in _resources(root)}
    for item in _items(root):
        resource = resources.get(_attribute(item, "identifierref"))
        if resource is not None and _attribute(resource, "href"):
            return _href(resource)
    for resource in resources.values():
        if (_attribute(resource, "scormtype") or "").lower() == "sco" and _attribute(resource, "href"):
            return _href(resource)
    raise refuse(f"{MANIFEST} names no launchable resource (an item or SCO with an href)", "scorm_no_launch")


def _href(resource: Element) -> str:
    href = (_attribute(resource, "href") or "").split("?", 1)[0].split("#", 1)[0]
    base = _attribute(resource, "base") or ""
    path = f"{base.rstrip('/')}/{href}" if base else href
    _check_path(path)
    return path


def _items(root: Element) -> list[Element]:
    organizations = _children(root, "organizations")
    if not organizations:
        return []
    default = _attribute(organizations[0], "default")
    orgs = _children(organizations[0], "organization")
    chosen = [o for o in orgs if _attribute(o, "identifier") == default] or orgs[:1]
    return [el for org in chosen for el in org.iter() if _local(el.tag) == "item"]


def _title(root: Element) -> str:
    for organizations in _children(root, "organizations"):
        for organization in _children(organizations, "organization"):
            for title in _children(organization, "title"):
                return (title.text or "").strip()[:200]
    return ""
