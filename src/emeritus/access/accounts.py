"""Console accounts (operator, reviewer, applicant) with argon2id password hashes, and the
sessions a sign-in creates, each with its CSRF token. Sign-up makes a new principal and its
account together, never an account for a principal that already exists (an operator invites
those: `invitations.py`); sign-in is throttled per name and address.
Spec: docs/design/console.md."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from emeritus.access import throttle
from emeritus.access.audit import audit, principal_subject
from emeritus.access.passwords import hash_password, hashing_slot, password_matches
from emeritus.access.policies import check_tier
from emeritus.access.principals import check_principal_name
from emeritus.access.tables import AccountRecord, PrincipalRecord, SessionRecord
from emeritus.errors import Conflict, InvalidInput, NotFound
from emeritus.store import Store, as_utc, utc_now

SESSION_HOURS = 12
MIN_PASSWORD = 12
# One answer for every name sign-up cannot take: an account's, a principal's, a variant in case.
NAME_TAKEN = "that name cannot be used; choose another"


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


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise InvalidInput(
            f"unknown role {role!r}: one of {', '.join(r.value for r in Role)}"
        ) from None


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def name_taken(session: Session, name: str) -> bool:
    """Whether an account or a principal has this name, in any case."""
    folded = name.lower()
    return any(
        session.scalar(select(table.id).where(func.lower(table.name) == folded).limit(1))
        is not None
        for table in (AccountRecord, PrincipalRecord)
    )


def start_session(
    session: Session, store: Store, account: AccountRecord, now: datetime
) -> SignedIn:
    """A new session for `account`, in the caller's transaction."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    session.add(
        SessionRecord(
            token_hash=_token_hash(token),
            account_id=account.id,
            csrf=csrf,
            created_at=now,
            expires_at=now + timedelta(hours=SESSION_HOURS),
        )
    )
    audit(session, store, "signed_in", f"account:{account.name}", {}, actor=account.name)
    return SignedIn(Account(account.name, Role(account.role)), csrf, token)


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
        """An account an operator creates (`emeritus access users add`)."""
        name = check_principal_name(name)
        chosen = check_role(role)
        password_hash = hash_password(check_password(password))
        now = now or utc_now()
        with self.store.transaction() as session:
            if session.scalar(select(AccountRecord.id).where(AccountRecord.name == name)):
                raise Conflict(f"account {name!r} already exists")
            session.add(
                AccountRecord(
                    name=name, role=chosen.value, password_hash=password_hash, created_at=now
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

    def sign_up(
        self,
        name: str,
        password: str,
        *,
        tier: str,
        contact: str = "",
        address: str | None = None,
        now: datetime | None = None,
    ) -> SignedIn:
        """A new principal and its applicant account, in one transaction, and a session; or
        `Conflict(NAME_TAKEN)` for any name already in use, said the same whoever uses it. The
        password is hashed first either way, so a taken name answers as slowly as a free one."""
        name = check_principal_name(name)
        check_tier(tier)
        if len(contact) > 200:
            raise InvalidInput("contact is longer than 200 characters")
        now = now or utc_now()
        counted = [throttle.sign_up_key(address)] if address else []
        with self.store.transaction() as session:
            throttle.check(session, counted, now)  # `Throttled`, before any password work
            throttle.failed(session, counted, now)  # every try counts, taken name or not
        password_hash = hash_password(check_password(password))
        try:
            with self.store.transaction() as session:
                if name_taken(session, name):
                    raise Conflict(NAME_TAKEN)
                session.add(PrincipalRecord(name=name, tier=tier, contact=contact, created_at=now))
                account = AccountRecord(
                    name=name,
                    role=Role.APPLICANT.value,
                    password_hash=password_hash,
                    created_at=now,
                )
                session.add(account)
                session.flush()
                audit(
                    session,
                    self.store,
                    "principal_added",
                    principal_subject(name),
                    {"tier": tier},
                    actor=name,
                )
                audit(
                    session,
                    self.store,
                    "account_added",
                    f"account:{name}",
                    {"role": Role.APPLICANT.value, "via": "sign-up"},
                    actor=name,
                )
                return start_session(session, self.store, account, now)
        except IntegrityError:  # the same name signed up at the same moment elsewhere
            raise Conflict(NAME_TAKEN) from None

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

    def sign_in(
        self,
        name: str,
        password: str,
        *,
        address: str | None = None,
        now: datetime | None = None,
    ) -> SignedIn | None:
        """A new session, or None for a wrong name or password (recorded, and said as one).

        Raises `Throttled` while the name or the client address is locked out (before any
        password work), and `Busy` when no hashing slot frees up in time."""
        name = name[:100]
        keys = [throttle.account_key(name)]
        if address:
            keys.append(throttle.address_key(address))
        now = now or utc_now()
        with self.store.transaction() as session:
            throttle.check(session, keys, now)
        with hashing_slot():
            with self.store.transaction() as session:  # tries that queued for a slot
                throttle.check(session, keys, now)
                row = session.scalar(select(AccountRecord).where(AccountRecord.name == name))
            good = password_matches(row.password_hash if row else None, password)
        with self.store.transaction() as session:
            if not good or row is None or row.disabled_at is not None:
                throttle.failed(session, keys, now)
                # An event only for a name that has an account: the throttle bounds those; a
                # flood of made-up names is counted by the caller's refusal rollup instead.
                if row is not None:
                    audit(
                        session,
                        self.store,
                        "sign_in_failed",
                        "access:console",
                        {"name": name},
                        actor="console",
                    )
                return None
            throttle.succeeded(session, throttle.account_key(name))
            return start_session(session, self.store, row, now)

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
