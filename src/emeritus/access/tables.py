"""Database tables of access control. Spec: docs/design/access.md."""

from datetime import datetime

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from emeritus.store import Base, UTCDateTime


class PrincipalRecord(Base):
    """Someone who may hold grants and keys: a customer, a researcher, a team."""

    __tablename__ = "access_principals"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    tier: Mapped[str] = mapped_column(String(32))
    contact: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class PolicyRecord(Base):
    """How one model is applied for: the form, the approval mode, the terms of a grant and the
    price used to estimate cost. A model without a policy takes no applications."""

    __tablename__ = "access_policies"
    __table_args__ = (CheckConstraint("approval IN ('auto', 'manual')", name="approval"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"), unique=True)
    approval: Mapped[str] = mapped_column(String(8))
    document: Mapped[str] = mapped_column(Text)  # canonical JSON: fields, tiers, grant, price
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ApplicationRecord(Base):
    __tablename__ = "access_applications"
    __table_args__ = (
        CheckConstraint("state IN ('pending', 'approved', 'rejected')", name="state"),
        Index("ix_access_applications_principal_model", "principal_id", "model_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("access_principals.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    state: Mapped[str] = mapped_column(String(16))
    answers: Mapped[str] = mapped_column(Text)  # canonical JSON object
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(100))
    reason: Mapped[str | None] = mapped_column(Text)
    # A rejection blocks new applications until an operator resets it.
    reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class GrantRecord(Base):
    """Principal x model, with expiry and limits; its counters are the quota state, updated under
    a row lock (docs/design/access.md, Quota accounting)."""

    __tablename__ = "access_grants"
    __table_args__ = (
        CheckConstraint("token_quota > 0", name="token_quota"),
        CheckConstraint("period_s > 0", name="period_s"),
        CheckConstraint("requests_per_minute > 0", name="requests_per_minute"),
        Index("ix_access_grants_principal_model", "principal_id", "model_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    uid: Mapped[str] = mapped_column(String(40), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("access_principals.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    application_id: Mapped[int | None] = mapped_column(ForeignKey("access_applications.id"))
    # The tier whose entitlement made this grant on first use; None for an applied-for grant.
    tier: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A revoked grant blocks applications for its principal and model until this is set.
    reset_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    token_quota: Mapped[int] = mapped_column(BigInteger)
    period_s: Mapped[int] = mapped_column(Integer)
    requests_per_minute: Mapped[int] = mapped_column(Integer)
    period_start: Mapped[int] = mapped_column(BigInteger, default=0)  # epoch seconds
    period_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    minute_start: Mapped[int] = mapped_column(BigInteger, default=0)  # epoch seconds
    minute_requests: Mapped[int] = mapped_column(Integer, default=0)


class KeyRecord(Base):
    """An API key: its public id and the sha256 of the whole key; the key itself is never stored."""

    __tablename__ = "access_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_id: Mapped[str] = mapped_column(String(16), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("access_principals.id"), index=True)
    label: Mapped[str] = mapped_column(String(100), default="")
    secret_hash: Mapped[str] = mapped_column(String(71))
    models: Mapped[str] = mapped_column(Text)  # canonical JSON list of model names
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class UsageRecord(Base):
    """One row per admitted request, written when the gateway reports how it went."""

    __tablename__ = "access_usage"
    __table_args__ = (
        Index("ix_access_usage_principal_id_time", "principal_id", "time"),
        Index("ix_access_usage_model_id_time", "model_id", "time"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(40), unique=True)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    principal_id: Mapped[int] = mapped_column(ForeignKey("access_principals.id"))
    # None for a chat message from the console: the account's session, not a key, carried it.
    key_id: Mapped[int | None] = mapped_column(ForeignKey("access_keys.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    grant_id: Mapped[int] = mapped_column(ForeignKey("access_grants.id"))
    status: Mapped[int] = mapped_column(Integer)
    prompt_tokens: Mapped[int] = mapped_column(Integer)
    completion_tokens: Mapped[int] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    cost_micros: Mapped[int] = mapped_column(BigInteger)  # millionths of the price's currency


class AccountRecord(Base):
    """A person who signs in to the console: an operator, a reviewer or an applicant."""

    __tablename__ = "access_accounts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    password_hash: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SessionRecord(Base):
    """A signed-in browser: the cookie's sha256 (never the cookie) and its CSRF token."""

    __tablename__ = "access_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(71), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("access_accounts.id"))
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class FeedbackRecord(Base):
    """A user's rating of one response the gateway served; one per response."""

    __tablename__ = "access_feedback"
    __table_args__ = (Index("ix_access_feedback_model_id_time", "model_id", "time"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[str] = mapped_column(String(40), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("access_principals.id"))
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id"))
    rating: Mapped[int] = mapped_column(Integer)
    comment: Mapped[str] = mapped_column(Text, default="")
    time: Mapped[datetime] = mapped_column(UTCDateTime)


class DenialRecord(Base):
    """Refusals of one minute and reason, as one gateway process counted them; `event_seq` is
    the `access.denials` event that logged them, None until the minute is closed
    (docs/design/access.md, Refusals)."""

    __tablename__ = "access_denials"
    __table_args__ = (
        CheckConstraint("count > 0", name="count"),
        Index("ix_access_denials_minute_reason", "minute", "reason"),
        Index("ix_access_denials_event_seq_minute", "event_seq", "minute"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    minute: Mapped[int] = mapped_column(BigInteger)  # epoch seconds of the minute's start
    reason: Mapped[str] = mapped_column(String(32))
    status: Mapped[int] = mapped_column(Integer)
    count: Mapped[int] = mapped_column(BigInteger)
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON: counts by key id and by model
    event_seq: Mapped[int | None] = mapped_column(Integer)


class InvitationRecord(Base):
    """An operator's one-time code for a console account bound to an existing principal: only
    the code's sha256 is kept; used once, before it expires (docs/design/console.md)."""

    __tablename__ = "access_invitations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(71), unique=True)
    principal_id: Mapped[int] = mapped_column(ForeignKey("access_principals.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    tier: Mapped[str | None] = mapped_column(String(32))  # set on the principal when used
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a newer invitation's
    created_by: Mapped[str] = mapped_column(String(100))


class SignInThrottleRecord(Base):
    """Failed sign-ins of one account name (`account:NAME`) or one client address
    (`address:IP`), and until when further tries are refused (docs/design/console.md)."""

    __tablename__ = "access_sign_in_throttles"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(160), unique=True)
    failures: Mapped[int] = mapped_column(Integer)
    last_failure_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
