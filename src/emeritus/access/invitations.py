"""Invitations: the only way an existing principal gets a console account. An operator makes a
one-time code (`emeritus access invite`); whoever holds it chooses a password on the console's
invitation page, and the account is created bound to that principal. Only the code's sha256 is
stored; a code expires, is used once, and a newer one replaces it.
Spec: docs/design/console.md, "Invitations"."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from emeritus.access.accounts import (
    Role,
    SignedIn,
    check_password,
    check_role,
    start_session,
)
from emeritus.access.audit import audit, principal_subject
from emeritus.access.passwords import hash_password
from emeritus.access.policies import check_tier
from emeritus.access.principals import load_principal
from emeritus.access.tables import AccountRecord, InvitationRecord, PrincipalRecord
from emeritus.errors import Conflict, InvalidInput
from emeritus.store import Store, as_utc, iso, utc_now

CODE_PREFIX = "emi_"
MAX_INVITATION_DAYS = 30
# One answer for a code that is unknown, used, replaced or expired: no oracle for codes.
CODE_REFUSED = "that invitation code is unknown, used or expired; ask an operator for a new one"


@dataclass(frozen=True)
class NewInvitation:
    """An invitation just made: `code` is its only appearance anywhere."""

    code: str
    principal: str
    role: Role
    expires_at: datetime


def _code_hash(code: str) -> str:
    return "sha256:" + hashlib.sha256(code.encode()).hexdigest()


def _has_account(session: Session, name: str) -> bool:
    folded = name.lower()
    found = session.scalar(
        select(AccountRecord.id).where(func.lower(AccountRecord.name) == folded).limit(1)
    )
    return found is not None


def _usable(row: InvitationRecord | None, now: datetime) -> InvitationRecord:
    if row is None or row.used_at is not None or row.revoked_at is not None:
        raise InvalidInput(CODE_REFUSED)
    if now >= as_utc(row.expires_at):
        raise InvalidInput(CODE_REFUSED)
    return row


class Invitations:
    def __init__(self, store: Store) -> None:
        self.store = store

    def invite(
        self,
        principal: str,
        *,
        role: str = Role.APPLICANT.value,
        days: int = 7,
        tier: str | None = None,
        now: datetime | None = None,
        actor: str | None = None,
    ) -> NewInvitation:
        """A one-time code for a console account of `principal`; an earlier unused code of the
        same principal stops working. With `tier`, the principal moves to it when the code is
        used (a paid-tier invitation)."""
        chosen = check_role(role)
        if tier is not None:
            check_tier(tier)
        if not 1 <= days <= MAX_INVITATION_DAYS:
            raise InvalidInput(f"an invitation lives 1 to {MAX_INVITATION_DAYS} days, not {days}")
        now = now or utc_now()
        with self.store.transaction() as session:
            holder = load_principal(session, principal, lock=True)
            if _has_account(session, holder.name):
                raise Conflict(
                    f"principal {holder.name!r} already has a console account "
                    "(see `emeritus access users list`)"
                )
            for earlier in session.scalars(
                select(InvitationRecord).where(
                    InvitationRecord.principal_id == holder.id,
                    InvitationRecord.used_at.is_(None),
                    InvitationRecord.revoked_at.is_(None),
                )
            ):
                earlier.revoked_at = now
            code = CODE_PREFIX + secrets.token_urlsafe(32)
            record = InvitationRecord(
                code_hash=_code_hash(code),
                principal_id=holder.id,
                role=chosen.value,
                tier=tier,
                created_at=now,
                expires_at=now + timedelta(days=days),
                created_by=(actor or self.store.settings.actor)[:100],
            )
            session.add(record)
            session.flush()
            audit(
                session,
                self.store,
                "invited",
                principal_subject(holder.name),
                {
                    "invitation": record.id,
                    "role": chosen.value,
                    "tier": tier,
                    "expires_at": iso(record.expires_at),
                },
                actor=actor,
            )
            return NewInvitation(code, holder.name, chosen, record.expires_at)

    def redeem(self, code: str, password: str, *, now: datetime | None = None) -> SignedIn:
        """Create the invited principal's account with `password` and sign it in; the code is
        spent. Any code that cannot be used is refused with one message (`CODE_REFUSED`)."""
        check_password(password)
        now = now or utc_now()
        code = code.strip()
        if not code.startswith(CODE_PREFIX) or len(code) > 100:
            raise InvalidInput(CODE_REFUSED)
        wanted = _code_hash(code)
        query = select(InvitationRecord).where(InvitationRecord.code_hash == wanted)
        with self.store.transaction() as session:
            _usable(session.scalar(query), now)  # no password work for a code that cannot work
        password_hash = hash_password(password)
        try:
            with self.store.transaction() as session:
                invitation = _usable(session.scalar(query.with_for_update()), now)
                holder = session.get(PrincipalRecord, invitation.principal_id)
                if holder is None or _has_account(session, holder.name):
                    raise InvalidInput(CODE_REFUSED)
                account = AccountRecord(
                    name=holder.name,
                    role=invitation.role,
                    password_hash=password_hash,
                    created_at=now,
                )
                session.add(account)
                invitation.used_at = now
                if invitation.tier is not None and invitation.tier != holder.tier:
                    previous, holder.tier = holder.tier, invitation.tier
                    audit(
                        session,
                        self.store,
                        "tier_changed",
                        principal_subject(holder.name),
                        {"from": previous, "to": holder.tier, "via": "invitation"},
                        actor=holder.name,
                    )
                session.flush()
                audit(
                    session,
                    self.store,
                    "invitation_used",
                    principal_subject(holder.name),
                    {"invitation": invitation.id, "role": invitation.role},
                    actor=holder.name,
                )
                audit(
                    session,
                    self.store,
                    "account_added",
                    f"account:{holder.name}",
                    {"role": invitation.role, "via": "invitation"},
                    actor=holder.name,
                )
                return start_session(session, self.store, account, now)
        except IntegrityError:  # the account was made at the same moment by another process
            raise InvalidInput(CODE_REFUSED) from None
