"""Per-model access policies: the application form, approval mode, grant terms and price.

A policy is operator input (YAML): every field is checked here and a bad document is refused with
one line naming what is wrong. Spec: docs/design/access.md, Policies and forms.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from emeritus.access.audit import audit, model_subject
from emeritus.access.tables import PolicyRecord
from emeritus.errors import InvalidInput, NotFound
from emeritus.lifecycle import ModelRecord, check_name, require_model
from emeritus.store import DriverSQL, Store, canonical_json, iso, utc_now

PERIODS = {"hour": 3600, "day": 86400, "week": 7 * 86400, "month": 30 * 86400}
FIELD_TYPES = ("text", "checkbox", "select", "date")
_FIELD_NAME = re.compile(r"[a-z][a-z0-9_]{0,49}")
_TIER = re.compile(r"[a-z][a-z0-9_-]{0,31}")
# Not text that can be stored or sent back: a lone surrogate (JSON's \ud800 escapes make one,
# UTF-8 cannot encode it) or a NUL character (PostgreSQL's text refuses it).
_NOT_TEXT = re.compile("[\x00\ud800-\udfff]")


def check_text(value: str, what: str) -> str:
    """`value`, or InvalidInput naming `what` if it holds a lone surrogate or a NUL."""
    if _NOT_TEXT.search(value):
        raise InvalidInput(f"{what} is not valid text: it holds a lone surrogate or a NUL")
    return value


class Approval(StrEnum):
    AUTO = "auto"
    MANUAL = "manual"

    @classmethod
    def parse(cls, text: str) -> Approval:
        try:
            return cls(text)
        except ValueError:
            raise InvalidInput(f"unknown approval mode {text!r}: choose auto or manual") from None


def check_tier(tier: str) -> str:
    if not isinstance(tier, str) or not _TIER.fullmatch(tier):
        raise InvalidInput(
            f"bad tier {tier!r}: lower-case letters, digits, '_' and '-' (at most 32)"
        )
    return tier


def period_seconds(period: str) -> int:
    if period not in PERIODS:
        raise InvalidInput(f"unknown quota period {period!r}: choose {', '.join(PERIODS)}")
    return PERIODS[period]


@dataclass(frozen=True)
class Field:
    """One question of an application form."""

    name: str
    label: str
    type: str
    required: bool = True
    options: tuple[str, ...] = ()
    max_length: int = 2000

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "name": self.name,
            "label": self.label,
            "type": self.type,
            "required": self.required,
        }
        if self.type == "select":
            out["options"] = list(self.options)
        if self.type == "text":
            out["max_length"] = self.max_length
        return out

    @classmethod
    def parse(cls, raw: Any, position: int) -> Field:
        where = f"form field {position + 1}"
        if not isinstance(raw, dict):
            raise InvalidInput(f"{where} must be a mapping with name, label and type")
        unknown = set(raw) - {"name", "label", "type", "required", "options", "max_length"}
        if unknown:
            raise InvalidInput(f"{where} has unknown keys: {', '.join(sorted(unknown))}")
        name = raw.get("name")
        if not isinstance(name, str) or not _FIELD_NAME.fullmatch(name):
            raise InvalidInput(f"{where}: bad name {name!r} (lower-case letters, digits, '_')")
        kind = raw.get("type")
        if kind not in FIELD_TYPES:
            raise InvalidInput(f"field {name!r}: type must be one of {', '.join(FIELD_TYPES)}")
        label = raw.get("label", name)
        required = raw.get("required", True)
        if not isinstance(label, str) or not isinstance(required, bool):
            raise InvalidInput(f"field {name!r}: label must be text and required a boolean")
        options: tuple[str, ...] = ()
        if kind == "select":
            given = raw.get("options")
            if (
                not isinstance(given, list)
                or not given
                or not all(isinstance(o, str) and o for o in given)
            ):
                raise InvalidInput(f"select field {name!r} needs a non-empty list of options")
            options = tuple(given)
        elif "options" in raw:
            raise InvalidInput(f"field {name!r}: only select fields have options")
        max_length = raw.get("max_length", 2000)
        if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 1:
            raise InvalidInput(f"field {name!r}: max_length must be a positive integer")
        return cls(name, label, kind, required, options, max_length)

    def check(self, value: Any) -> str | bool | None:
        """The answer in canonical form, or InvalidInput naming the field."""
        if value is None or value == "":
            if self.required and self.type != "checkbox":
                raise InvalidInput(f"field {self.name!r} is required")
            if self.type != "checkbox":
                return None
            value = False
        if self.type == "checkbox":
            if not isinstance(value, bool):
                raise InvalidInput(f"field {self.name!r} is a checkbox: answer true or false")
            if self.required and not value:
                raise InvalidInput(f"field {self.name!r} must be checked")
            return value
        if not isinstance(value, str):
            raise InvalidInput(f"field {self.name!r} takes text")
        check_text(value, f"field {self.name!r}")
        if self.type == "text" and len(value) > self.max_length:
            raise InvalidInput(f"field {self.name!r} is longer than {self.max_length} characters")
        if self.type == "select" and value not in self.options:
            raise InvalidInput(
                f"field {self.name!r}: {value!r} is not one of {', '.join(self.options)}"
            )
        if self.type == "date":
            try:
                date.fromisoformat(value)
            except ValueError:
                raise InvalidInput(f"field {self.name!r} takes a date, YYYY-MM-DD") from None
            if len(value) != 10:
                raise InvalidInput(f"field {self.name!r} takes a date, YYYY-MM-DD")
        return value


@dataclass(frozen=True)
class Terms:
    """What an approval grants: validity, tokens per period, requests per minute."""

    days: int = 90
    tokens: int = 1_000_000
    period: str = "day"
    requests_per_minute: int = 60

    def to_dict(self) -> dict[str, Any]:
        return {
            "days": self.days,
            "tokens": self.tokens,
            "period": self.period,
            "requests_per_minute": self.requests_per_minute,
        }


@dataclass(frozen=True)
class Price:
    """Price in currency units per million tokens, kept as integer millionths."""

    prompt_micros: int = 0
    completion_micros: int = 0

    def cost_micros(self, prompt_tokens: int, completion_tokens: int) -> int:
        total = prompt_tokens * self.prompt_micros + completion_tokens * self.completion_micros
        return (total + 500_000) // 1_000_000

    def to_dict(self) -> dict[str, Any]:
        return {"prompt": self.prompt_micros / 1e6, "completion": self.completion_micros / 1e6}


@dataclass(frozen=True)
class Policy:
    model: str
    approval: Approval
    fields: tuple[Field, ...]
    tiers: tuple[str, ...]  # empty: every tier may apply
    terms: Terms
    price: Price
    updated_at: datetime | None = None
    # Tiers whose every principal may use the model without applying (docs/design/chat.md).
    entitlements: tuple[tuple[str, Terms], ...] = ()
    # Operators may read the chat conversations with this model; the chat page says so.
    chat_review: bool = False

    def entitlement(self, tier: str) -> Terms | None:
        return dict(self.entitlements).get(tier)

    def _tiers_document(self) -> list[str] | dict[str, Any]:
        if not self.entitlements:
            return list(self.tiers)
        return {
            **{t: "apply" for t in self.tiers},
            **{t: _entitlement_dict(terms) for t, terms in self.entitlements},
        }

    def document(self) -> dict[str, Any]:
        return {
            "approval": str(self.approval),
            "fields": [f.to_dict() for f in self.fields],
            "tiers": self._tiers_document(),
            "grant": self.terms.to_dict(),
            "price": self.price.to_dict(),
            **({"chat_review": True} if self.chat_review else {}),
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            **self.document(),
            "updated_at": iso(self.updated_at) if self.updated_at else None,
        }

    def check_answers(self, answers: Any) -> dict[str, Any]:
        if not isinstance(answers, dict):
            raise InvalidInput("answers must be a mapping of field names to values")
        known = {f.name for f in self.fields}
        # ascii(): an unknown name is echoed escaped, whatever characters it holds.
        unknown = sorted(ascii(k) for k in answers if k not in known)
        if unknown:
            raise InvalidInput(f"unknown form fields: {', '.join(unknown)}")
        checked = {f.name: f.check(answers.get(f.name)) for f in self.fields}
        return {k: v for k, v in checked.items() if v is not None}

    @classmethod
    def parse(cls, model: str, raw: Any, *, approval: Approval | None = None) -> Policy:
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise InvalidInput("a policy must be a mapping (approval, fields, tiers, grant, price)")
        unknown = set(raw) - {"approval", "fields", "tiers", "grant", "price", "chat_review"}
        if unknown:
            raise InvalidInput(f"unknown policy keys: {', '.join(sorted(unknown))}")
        mode = approval or Approval.parse(str(raw.get("approval", "manual")))
        given_fields = raw.get("fields", [])
        if not isinstance(given_fields, list):
            raise InvalidInput("policy 'fields' must be a list")
        fields = tuple(Field.parse(f, i) for i, f in enumerate(given_fields))
        names = [f.name for f in fields]
        if len(set(names)) != len(names):
            raise InvalidInput("form field names must be unique")
        applying, entitled = _parse_tiers(raw.get("tiers", []))
        review = raw.get("chat_review", False)
        if not isinstance(review, bool):
            raise InvalidInput(f"policy 'chat_review' is true or false, not {review!r}")
        return cls(
            model,
            mode,
            fields,
            applying,
            _parse_terms(raw.get("grant", {})),
            _parse_price(raw.get("price", {})),
            entitlements=entitled,
            chat_review=review,
        )


ENTITLEMENT_DAYS = 365  # an entitlement's grant lasts this long, and is renewed on use after


def _entitlement_dict(terms: Terms) -> dict[str, Any]:
    return {
        "tokens": terms.tokens,
        "period": terms.period,
        "requests_per_minute": terms.requests_per_minute,
    }


def _parse_tiers(raw: Any) -> tuple[tuple[str, ...], tuple[tuple[str, Terms], ...]]:
    """A list: the tiers that may apply. A mapping: tier -> `apply`, or tier -> entitlement
    terms (tokens per period, requests per minute) for a tier that needs no application."""
    if isinstance(raw, list):
        return tuple(check_tier(t) for t in raw), ()
    if not isinstance(raw, dict):
        raise InvalidInput("policy 'tiers' must be a list of tiers or a mapping of tier to terms")
    applying, entitled = [], []
    for tier, value in raw.items():
        check_tier(tier)
        if value == "apply":
            applying.append(tier)
            continue
        if not isinstance(value, dict) or "tokens" not in value:
            raise InvalidInput(
                f"tier {tier!r}: 'apply', or entitlement terms such as "
                "{tokens: 200000, period: month}"
            )
        if "days" in value:
            raise InvalidInput(
                f"tier {tier!r}: an entitlement has no 'days' (it lasts while the tier is entitled)"
            )
        terms = _parse_terms({**value, "days": ENTITLEMENT_DAYS})
        entitled.append((tier, terms))
    return tuple(applying), tuple(entitled)


def _positive(raw: dict[str, Any], key: str, default: int, where: str) -> int:
    value = raw.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise InvalidInput(f"{where} {key} must be a positive integer, not {value!r}")
    return value


def _parse_terms(raw: Any) -> Terms:
    if not isinstance(raw, dict):
        raise InvalidInput("policy 'grant' must be a mapping (days, tokens, period, ...)")
    unknown = set(raw) - {"days", "tokens", "period", "requests_per_minute"}
    if unknown:
        raise InvalidInput(f"unknown grant keys: {', '.join(sorted(unknown))}")
    default = Terms()
    period = str(raw.get("period", default.period))
    period_seconds(period)
    return Terms(
        _positive(raw, "days", default.days, "grant"),
        _positive(raw, "tokens", default.tokens, "grant"),
        period,
        _positive(raw, "requests_per_minute", default.requests_per_minute, "grant"),
    )


def _parse_price(raw: Any) -> Price:
    if not isinstance(raw, dict) or set(raw) - {"prompt", "completion"}:
        raise InvalidInput("policy 'price' must be a mapping with prompt and completion")
    values = []
    for key in ("prompt", "completion"):
        value = raw.get(key, 0)
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise InvalidInput(f"price {key} must be a non-negative number per million tokens")
        values.append(round(value * 1_000_000))
    return Price(values[0], values[1])


def price_of(sql: DriverSQL, model_id: int) -> Price:
    """The price in a model's stored policy (none: free), read without parsing the rest: it is
    asked on every metered request, and a stored policy was checked whole when it was set."""
    row = sql.run(
        f"SELECT document FROM {PolicyRecord.__tablename__} WHERE model_id = :model",
        {"model": model_id},
    ).fetchone()
    if row is None:
        return Price()
    return _parse_price(json.loads(row[0]).get("price", {}))


def policy_of(session: Session, model: ModelRecord) -> Policy | None:
    row = session.scalar(select(PolicyRecord).where(PolicyRecord.model_id == model.id))
    if row is None:
        return None
    policy = Policy.parse(model.name, json.loads(row.document))
    return dataclasses.replace(policy, updated_at=row.updated_at)


class Policies:
    """Set and read per-model access policies."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, model: str) -> Policy:
        with self.store.transaction() as session:
            policy = policy_of(session, require_model(session, check_name(model)))
        if policy is None:
            raise NotFound(f"{model} has no access policy (set one with `emeritus access policy`)")
        return policy

    def set(
        self,
        model: str,
        document: Any,
        *,
        approval: Approval | None = None,
        now: datetime | None = None,
    ) -> Policy:
        parsed = Policy.parse(model, document, approval=approval)
        now = now or utc_now()
        with self.store.transaction() as session:
            record = require_model(session, check_name(model), lock=True)
            row = session.scalar(select(PolicyRecord).where(PolicyRecord.model_id == record.id))
            if row is None:
                row = PolicyRecord(model_id=record.id)
                session.add(row)
            row.approval = str(parsed.approval)
            row.document = canonical_json(parsed.document())
            row.updated_at = now
            audit(session, self.store, "policy_set", model_subject(model), parsed.document())
        return dataclasses.replace(parsed, updated_at=now)
