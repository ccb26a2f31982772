"""Console accounts (operator, reviewer, applicant) with argon2id password hashes, and the
sessions a sign-in creates, each with its CSRF token. Spec: docs/design/console.md."""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select

from emeritus.access.audit import audit
from emeritus.access.principals import check_principal_name
from emeritus.access.tables import AccountRecord, SessionRecord
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.store import Store, as_utc, utc_now

SESSION_HOURS = 12
MIN_PASSWORD = 12
_HASHER = PasswordHasher()  # argon2id with the library's current defaults


@functools.cache
def _dummy_hash() -> str:
    """Verifying against this keeps a wrong name as slow as a wrong password (no name oracle).
    Made on first use: a hash costs ~0.1 s, which every command would pay at import."""
    return _HASHER.hash(secrets.token_urlsafe(16))


class Role(StrEnum):
    OPERATOR = "operator"
    REVIEWER = "reviewer"
    APPLICANT = "applicant"


@dataclass(frozen=True)
class Account:
    name: str
    role: Role


@dataclass(frozen=True)
class SignedIn:
    """A live session: the account, the cookie value (only at sign-in) and the CSRF token."""

    account: Account
    csrf: str
    token: str | None = None

    def csrf_matches(self, given: str | None) -> bool:
        return given is not None and hmac.compare_digest(given.encode(), self.csrf.encode())


def _token_hash(token: str) -> str:
    return "sha256:" + hashlib.sha256(token.encode()).hexdigest()


def new_password() -> str:
    return secrets.token_urlsafe(15)


class Accounts:
    def __init__(self, store: Store) -> None:
        self.store = store

    def add(
        self,
        name: str,
        role: str,
        password: str,
        *,
        now: datetime | None = None,
        actor: str | None = None,
    ) -> Account:
        name = check_principal_name(name)
        try:
            chosen = Role(role)
        except ValueError:
            raise InvalidInput(
                f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}"
            ) from None
        if len(password) < MIN_PASSWORD:
            raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
        now = now or utc_now()
        with self.store.transaction() as session:
            if session.scalar(select(AccountRecord.id).where(AccountRecord.name == name)):
                raise Conflict(f"account {name!r} already exists")
            session.add(
                AccountRecord(
                    name=name,
                    role=chosen.value,
                    password_hash=_HASHER.hash(password),
                    created_at=now,
                )
            )
            audit(
                session,
                self.store,
                "account_added",
                f"account:{name}",
                {"role": chosen.value},
                actor=actor,
            )
        return Account(name, chosen)

    def all(self) -> list[Account]:
        with self.store.transaction() as session:
            rows = session.scalars(select(AccountRecord).order_by(AccountRecord.name)).all()
            return [Account(r.name, Role(r.role)) for r in rows if r.disabled_at is None]

    def disable(self, name: str, *, now: datetime | None = None) -> None:
        now = now or utc_now()
        with self.store.transaction() as session:
            row = session.scalar(select(AccountRecord).where(AccountRecord.name == name))
            if row is None or row.disabled_at is not None:
                raise NotFound(f"no enabled account {name!r}")
            row.disabled_at = now
            for live in session.scalars(
                select(SessionRecord).where(
                    SessionRecord.account_id == row.id, SessionRecord.ended_at.is_(None)
                )
            ):
                live.ended_at = now
            audit(session, self.store, "account_disabled", f"account:{name}", {})

    def sign_in(self, name: str, password: str, *, now: datetime | None = None) -> SignedIn | None:
        """A new session, or None for a wrong name or password (recorded, and said as one)."""
        now = now or utc_now()
        with self.store.transaction() as session:
            row = session.scalar(select(AccountRecord).where(AccountRecord.name == name[:100]))
            try:
                _HASHER.verify(row.password_hash if row else _dummy_hash(), password)
                good = row is not None and row.disabled_at is None
            except (VerificationError, InvalidHashError):
                good = False
            if not good or row is None:
                audit(
                    session,
                    self.store,
                    "sign_in_failed",
                    "access:console",
                    {"name": name[:100]},
                    actor="console",
                )
                return None
            token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
            session.add(
                SessionRecord(
                    token_hash=_token_hash(token),
                    account_id=row.id,
                    csrf=csrf,
                    created_at=now,
                    expires_at=now + timedelta(hours=SESSION_HOURS),
                )
            )
            audit(session, self.store, "signed_in", f"account:{row.name}", {}, actor=row.name)
            return SignedIn(Account(row.name, Role(row.role)), csrf, token)

    def session(self, token: str | None, *, now: datetime | None = None) -> SignedIn | None:
        """The live session a cookie stands for, or None."""
        if not token:
            return None
        now = now or utc_now()
        with self.store.transaction() as session:
            found = session.execute(
                select(SessionRecord, AccountRecord)
                .join(AccountRecord, AccountRecord.id == SessionRecord.account_id)
                .where(SessionRecord.token_hash == _token_hash(token))
            ).first()
            if found is None:
                return None
            live, account = found
            if live.ended_at is not None or now >= as_utc(live.expires_at):
                return None
            if account.disabled_at is not None:
                return None
            return SignedIn(Account(account.name, Role(account.role)), live.csrf)

    def sign_out(self, token: str, *, now: datetime | None = None) -> None:
        now = now or utc_now()
        with self.store.transaction() as session:
            live = session.scalar(
                select(SessionRecord).where(SessionRecord.token_hash == _token_hash(token))
            )
            if live is not None and live.ended_at is None:
                live.ended_at = now
