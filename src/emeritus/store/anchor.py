"""Signing: the installation's Ed25519 key, signed checkpoints of the event chain, and signed
records (reviews). Spec: docs/design/event-log.md, "Anchoring".

The store signs and verifies; writing checkpoints into the archive belongs to the archive layer.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import os
import stat
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Integer, Text, column, select, table

from emeritus.errors import IntegrityError, InvalidInput
from emeritus.store.canonical import canonical_json
from emeritus.store.clock import iso, parse_when

if TYPE_CHECKING:  # cryptography loads when a key is first used, not with the store
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from sqlalchemy.orm import Session

KEY_DIR = "keys"
KEY_FILE = "signing.ed25519"
CHECKPOINT_TYPE = "emeritus.event-checkpoint"
ANCHOR_EVERY = timedelta(days=1)  # how old the newest checkpoint may be before a tick takes one
CHECKPOINT_VERSION = 1
KEY_PREFIX = "ed25519:"


class KeyRefused(IntegrityError):
    """The signing key file is unsafe to use (too open, not a file, another user's)."""


class SigningKey:
    """The home's Ed25519 key: signs checkpoints and reviews; verifies what it signed."""

    def __init__(self, private: Ed25519PrivateKey) -> None:
        from cryptography.hazmat.primitives import serialization

        self._private = private
        self._public: Ed25519PublicKey = private.public_key()
        raw = self._public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        self.public = KEY_PREFIX + base64.b64encode(raw).decode("ascii")

    @classmethod
    def open(cls, home: Path) -> SigningKey:
        """The key in `home`, created on first use; refuses a key file others may read."""
        path = home / KEY_DIR / KEY_FILE
        if not path.exists() and not path.is_symlink():
            _create(path)
        return cls(_load(path))

    def sign(self, value: dict[str, Any]) -> str:
        """The base64 signature over a JSON object's canonical form."""
        data = canonical_json(value).encode("utf-8")
        return base64.b64encode(self._private.sign(data)).decode("ascii")

    def verifies(self, value: dict[str, Any], signature: object, key: object) -> bool:
        """Whether `signature` is this key's over `value` (and `key` names this key)."""
        from cryptography.exceptions import InvalidSignature

        if key != self.public or not isinstance(signature, str):
            return False
        try:
            raw = base64.b64decode(signature, validate=True)
            self._public.verify(raw, canonical_json(value).encode("utf-8"))
        except (InvalidSignature, binascii.Error, ValueError, TypeError):
            return False
        return True


def _create(path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    staged = path.parent / f".{path.name}.{uuid.uuid4().hex}"
    descriptor = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        # Whole or not at all: a second process creating it at once keeps the first key.
        with contextlib.suppress(FileExistsError):
            os.link(staged, path)
    finally:
        staged.unlink(missing_ok=True)
    public = SigningKey(_load(path)).public
    pub = path.with_name(path.name + ".pub")
    if not pub.exists():
        pub.write_text(public + "\n")


def _load(path: Path) -> Ed25519PrivateKey:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    try:
        found = path.lstat()
    except FileNotFoundError:
        raise KeyRefused(f"the signing key {path} is missing") from None
    if not stat.S_ISREG(found.st_mode):
        raise KeyRefused(f"the signing key {path} is not a regular file")
    mode = stat.S_IMODE(found.st_mode)
    if mode & 0o077:
        raise KeyRefused(
            f"the signing key {path} has mode {mode:04o}: others may read or change it "
            "(chmod 600 it, or remove it to make a new key)"
        )
    if found.st_uid != os.geteuid():
        raise KeyRefused(f"the signing key {path} belongs to another user (uid {found.st_uid})")
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError:
        raise KeyRefused(f"the signing key {path} is not a PEM Ed25519 key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyRefused(f"the signing key {path} is not an Ed25519 key")
    return key


@dataclass(frozen=True)
class Checkpoint:
    """A signed statement: event `seq` of this log has `digest` (`seq` 0: the genesis)."""

    seq: int
    digest: str
    time: datetime
    key: str
    signature: str
    copies: tuple[str, ...] = ()

    def body(self) -> dict[str, Any]:
        return {
            "copies": list(self.copies),
            "digest": self.digest,
            "key": self.key,
            "seq": self.seq,
            "time": iso(self.time),
            "type": CHECKPOINT_TYPE,
            "v": CHECKPOINT_VERSION,
        }

    def to_line(self) -> str:
        return canonical_json({**self.body(), "signature": self.signature})

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "digest": self.digest, "time": iso(self.time), "key": self.key}

    @classmethod
    def sign(
        cls, key: SigningKey, seq: int, digest: str, time: datetime, copies: tuple[str, ...] = ()
    ) -> Checkpoint:
        unsigned = cls(seq, digest, time, key.public, "", tuple(copies))
        return cls(seq, digest, time, key.public, key.sign(unsigned.body()), tuple(copies))

    @classmethod
    def from_line(cls, line: str) -> Checkpoint:
        """Parse one line; raises ValueError naming what is wrong (signature not checked)."""
        try:
            value = json.loads(line)
        except ValueError:
            raise ValueError("not JSON") from None
        if not isinstance(value, dict) or value.get("type") != CHECKPOINT_TYPE:
            raise ValueError("not an event checkpoint")
        if value.get("v") != CHECKPOINT_VERSION:
            raise ValueError(f"unknown checkpoint version {value.get('v')!r}")
        seq, digest, copies = value.get("seq"), value.get("digest"), value.get("copies", [])
        if not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ValueError("a checkpoint's seq must be a whole number")
        if not isinstance(digest, str) or not isinstance(copies, list):
            raise ValueError("malformed checkpoint")
        try:
            when = parse_when(str(value.get("time")), what="checkpoint time")
        except InvalidInput as exc:
            raise ValueError(str(exc)) from None
        return cls(
            seq,
            digest,
            when,
            str(value.get("key")),
            str(value.get("signature")),
            tuple(str(c) for c in copies),
        )

    def problem(self, key: SigningKey) -> str | None:
        """Why this checkpoint is not to be trusted, or None."""
        if self.key != key.public:
            return f"checkpoint at event {self.seq} is signed by another key ({self.key})"
        if not key.verifies(self.body(), self.signature, self.key):
            return f"checkpoint at event {self.seq}: bad signature (edited or forged)"
        return None


# `VerifiedCheckpoint`'s table as Core reads it without the ORM (a test holds it to tables.py).
VERIFIED = table("event_chain_verified", column("id", Integer()), column("checkpoint", Text()))


def remember_checkpoint(session: Session, checkpoint: Checkpoint) -> None:
    """Keep `checkpoint` as the database's last verified one unless a newer one is kept."""
    from emeritus.store.tables import VerifiedCheckpoint

    row = session.get(VerifiedCheckpoint, 1, with_for_update=True)
    if row is None:
        session.add(
            VerifiedCheckpoint(
                id=1, seq=checkpoint.seq, digest=checkpoint.digest, checkpoint=checkpoint.to_line()
            )
        )
    elif row.seq <= checkpoint.seq:
        row.seq, row.digest, row.checkpoint = (
            checkpoint.seq,
            checkpoint.digest,
            checkpoint.to_line(),
        )
    session.flush()


def remembered_checkpoint(session: Session) -> str | None:
    """The signed line of the database's last verified checkpoint (unchecked), if any."""
    from emeritus.store.tables import VerifiedCheckpoint

    row = session.get(VerifiedCheckpoint, 1)
    return row.checkpoint if row is not None else None


def remembered_line(connection: Connection) -> str | None:
    """`remembered_checkpoint` by Core, for a reader that has not loaded the ORM."""
    line = connection.scalar(select(VERIFIED.c.checkpoint).where(VERIFIED.c.id == 1))
    return None if line is None else str(line)


def sign_record(key: SigningKey, value: dict[str, Any]) -> dict[str, str]:
    """`{"key", "value"}`: the signature of a record (a review) as it is stored in an event."""
    return {"key": key.public, "value": key.sign(value)}


def record_verifies(key: SigningKey, value: dict[str, Any], signature: object) -> bool:
    if not isinstance(signature, dict):
        return False
    return key.verifies(value, signature.get("value"), signature.get("key"))
