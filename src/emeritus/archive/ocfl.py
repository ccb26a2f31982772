"""OCFL 1.1 vocabulary: identifiers, the 0004 storage layout, inventories and their sidecars.

Only what emeritus needs to write and check objects; ocfl-py serves as the independent validator
in the tests. Spec: https://ocfl.io/1.1/spec/ and docs/design/archive-format.md.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from emeritus.archive.storage.base import check_path
from emeritus.errors import IntegrityError

ARCHIVE_FORMAT = 1
ROOT_NAMASTE = ("0=ocfl_1.1", "ocfl_1.1\n")
OBJECT_NAMASTE = ("0=ocfl_object_1.1", "ocfl_object_1.1\n")
INVENTORY = "inventory.json"
SIDECAR = "inventory.json.sha512"
INVENTORY_TYPE = "https://ocfl.io/1.1/spec/#inventory"
CONTENT = "content"
LAYOUT = "0004-hashed-n-tuple-storage-layout"
LAYOUT_CONFIG = {
    "extensionName": LAYOUT,
    "digestAlgorithm": "sha256",
    "tupleSize": 3,
    "numberOfTuples": 3,
    "shortObjectRoot": False,
}
OCFL_LAYOUT = {
    "extension": LAYOUT,
    "description": "Hashed Truncated N-tuple Trees with Object ID Encapsulating Directory",
}
EMERITUS_EXTENSION = "emeritus-archive"
STAGING = "extensions/emeritus-staging"
LOCKS = "extensions/emeritus-locks"


def _json(value: object) -> bytes:
    return (json.dumps(value, indent=2, sort_keys=True) + "\n").encode()


def root_declaration() -> dict[str, bytes]:
    """The files that make a directory or bucket an emeritus OCFL storage root."""
    return {
        ROOT_NAMASTE[0]: ROOT_NAMASTE[1].encode(),
        "ocfl_layout.json": _json(OCFL_LAYOUT),
        f"extensions/{LAYOUT}/config.json": _json(LAYOUT_CONFIG),
        f"extensions/{EMERITUS_EXTENSION}/config.json": _json(
            {"extensionName": EMERITUS_EXTENSION, "format": ARCHIVE_FORMAT}
        ),
    }


def check_format(config: bytes, where: str) -> None:
    """Refuse a storage root written in a format this emeritus does not know."""
    try:
        found = json.loads(config).get("format")
    except (ValueError, AttributeError):
        raise IntegrityError(f"{where}: unreadable emeritus-archive config") from None
    if found != ARCHIVE_FORMAT:
        raise IntegrityError(
            f"{where} has archive format {found!r}; this emeritus reads format {ARCHIVE_FORMAT}"
        )


_VERSION = re.compile(r"v([1-9][0-9]*)")


def object_id(model: str) -> str:
    return f"urn:emeritus:model:{model}"


def object_root(oid: str) -> str:
    """The object's path under the storage root (extension 0004, full digest as the leaf)."""
    digest = hashlib.sha256(oid.encode("utf-8")).hexdigest()
    return f"{digest[0:3]}/{digest[3:6]}/{digest[6:9]}/{digest}"


def version_name(number: int) -> str:
    return f"v{number}"


def version_number(name: str) -> int:
    match = _VERSION.fullmatch(name)
    if match is None:
        raise IntegrityError(f"bad version directory name {name!r}")
    return int(match.group(1))


def check_logical_path(path: str) -> str:
    """Refuse a path in an object that could escape its directory or that OCFL forbids: the same
    rule as for storage paths."""
    return check_path(path, what="path in the object")


def sha512_hex(data: bytes) -> str:
    """The digest OCFL names files and inventories by: sha512, lower-case hex."""
    return hashlib.sha512(data).hexdigest()


def sidecar_text(inventory_bytes: bytes) -> str:
    return f"{sha512_hex(inventory_bytes)} {INVENTORY}\n"


def parse_sidecar(text: str) -> str:
    parts = text.split()
    if len(parts) != 2 or parts[1] != INVENTORY or not re.fullmatch(r"[0-9a-f]{128}", parts[0]):
        raise IntegrityError("inventory sidecar is malformed")
    return parts[0]


@dataclass
class Version:
    created: str
    message: str
    user: str
    state: dict[str, list[str]] = field(default_factory=dict)  # sha512 -> logical paths

    def to_json(self) -> dict[str, Any]:
        return {
            "created": self.created,
            "message": self.message,
            "user": {"name": self.user},
            "state": {d: sorted(p) for d, p in sorted(self.state.items())},
        }

    def logical_paths(self) -> dict[str, str]:
        return {path: digest for digest, paths in self.state.items() for path in paths}


@dataclass
class Inventory:
    """An OCFL inventory: every content file with its sha512 (and sha256 as fixity)."""

    id: str
    head: int = 0
    manifest: dict[str, list[str]] = field(default_factory=dict)  # sha512 -> content paths
    sha256: dict[str, list[str]] = field(default_factory=dict)  # sha256 -> content paths
    versions: dict[int, Version] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        document = {
            "id": self.id,
            "type": INVENTORY_TYPE,
            "digestAlgorithm": "sha512",
            "head": version_name(self.head),
            "contentDirectory": CONTENT,
            "manifest": {d: sorted(p) for d, p in sorted(self.manifest.items())},
            "fixity": {"sha256": {d: sorted(p) for d, p in sorted(self.sha256.items())}},
            "versions": {version_name(n): v.to_json() for n, v in sorted(self.versions.items())},
        }
        return (json.dumps(document, indent=1, sort_keys=True, ensure_ascii=False) + "\n").encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> Inventory:
        try:
            doc = json.loads(data)
            if doc.get("type") != INVENTORY_TYPE or doc.get("digestAlgorithm") != "sha512":
                raise IntegrityError("inventory is not an OCFL 1.1 sha512 inventory")
            if doc.get("contentDirectory", CONTENT) != CONTENT:
                raise IntegrityError("inventory uses an unexpected content directory")
            versions = {
                version_number(name): Version(
                    created=v["created"],
                    message=v.get("message", ""),
                    user=v.get("user", {}).get("name", ""),
                    state={d: list(p) for d, p in v["state"].items()},
                )
                for name, v in doc["versions"].items()
            }
            inventory = cls(
                id=doc["id"],
                head=version_number(doc["head"]),
                manifest={d: list(p) for d, p in doc["manifest"].items()},
                sha256={d: list(p) for d, p in doc.get("fixity", {}).get("sha256", {}).items()},
                versions=versions,
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"inventory is malformed: {exc}") from None
        if sorted(inventory.versions) != list(range(1, inventory.head + 1)):
            raise IntegrityError("inventory versions are not v1..head")
        return inventory

    # -- queries --------------------------------------------------------------------------

    def content_paths(self) -> dict[str, str]:
        """content path -> sha512."""
        return {path: digest for digest, paths in self.manifest.items() for path in paths}

    def sha256_of(self) -> dict[str, str]:
        """content path -> sha256."""
        return {path: digest for digest, paths in self.sha256.items() for path in paths}

    def head_state(self) -> dict[str, str]:
        """logical path -> sha512, in the head version."""
        return self.versions[self.head].logical_paths() if self.head else {}

    def content_path_of(self, digest: str) -> str:
        return sorted(self.manifest[digest])[0]

    def new_version(self, *, created: datetime, message: str, user: str) -> Version:
        """Start the next version, carrying the head's state forward (OCFL versions are full
        states; unchanged files point at their existing content)."""
        state = {d: list(p) for d, p in self.versions[self.head].state.items()} if self.head else {}
        version = Version(
            created=created.strftime("%Y-%m-%dT%H:%M:%SZ"), message=message, user=user, state=state
        )
        self.head += 1
        self.versions[self.head] = version
        return version

    def add_file(self, logical: str, sha512: str, sha256: str, content_path: str) -> bool:
        """Record a file in the head version; returns False when its content is already stored."""
        version = self.versions[self.head]
        for paths in version.state.values():
            if logical in paths:
                paths.remove(logical)
        version.state = {d: p for d, p in version.state.items() if p}
        version.state.setdefault(sha512, []).append(logical)
        if sha512 in self.manifest:
            return False
        self.manifest[sha512] = [content_path]
        self.sha256.setdefault(sha256, []).append(content_path)
        return True


def root_files(content_paths: list[str], head: int) -> list[str]:
    """Every file an object with these content paths and versions must hold."""
    expected = [OBJECT_NAMASTE[0], INVENTORY, SIDECAR]
    for number in range(1, head + 1):
        expected += [f"{version_name(number)}/{INVENTORY}", f"{version_name(number)}/{SIDECAR}"]
    return sorted(expected + content_paths)
