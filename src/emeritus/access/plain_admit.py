"""The common admission, read and written as plain SQL (docs/design/access.md, The decision
procedure): a good key in scope, a model that answers, an applied-for live grant with room.

This path only ever admits, and only what the ORM path (`Gate._admit`) admits: every other case,
refusals included, it declines (None), and the ORM path decides it from the start in the same
transaction, so the refusals and their messages are written once. It exists because the ORM's
work per statement cost about ten times SQLite's on this path (`bench/metering.py`).
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Table

from emeritus.access.keys_format import key_matches
from emeritus.access.quota import admit, tokens_left
from emeritus.access.tables import GrantRecord, KeyRecord, PrincipalRecord
from emeritus.lifecycle import CHAIN_LIMIT, Availability, ModelInfo, ModelRecord, State
from emeritus.store import DriverSQL

_KEYS, _MODELS, _GRANTS = (
    cast(Table, record.__table__) for record in (KeyRecord, ModelRecord, GrantRecord)
)


def admit_plain(
    sql: DriverSQL, key_id: str, key: str, model: str, now: datetime, reserve: int
) -> dict[str, Any] | None:
    """The ticket's fields for an admitted request, its reservation taken; or None (nothing
    written) for every case the ORM path must decide."""
    keys = sql.rows(_KEYS, f"SELECT * FROM {_KEYS.name} WHERE key_id = :key_id", {"key_id": key_id})
    if len(keys) != 1:
        return None
    row = keys[0]
    if not key_matches(key, row.secret_hash) or row.revoked_at is not None:
        return None
    if now >= row.expires_at or model not in json.loads(row.models):
        return None
    chain = _model_chain(sql, model)
    if not chain:
        return None
    record = chain[0]
    if record.state == State.RETIRED.value and record.availability == Availability.NONE:
        return None
    grants = sql.rows(
        _GRANTS,
        f"SELECT * FROM {_GRANTS.name} WHERE principal_id = :principal AND model_id = :model "
        "AND revoked_at IS NULL AND expires_at > :now ORDER BY id DESC LIMIT 1" + sql.for_update,
        {"principal": row.principal_id, "model": record.id, "now": sql.time(now)},
    )
    if not grants or grants[0].tier is not None:  # none, or a tier's: its entitlement decides
        return None
    grant = grants[0]
    if admit(grant, now, reserve) is not None:
        return None
    sql.run(
        f"UPDATE {_GRANTS.name} SET minute_start = :minute_start, "
        "minute_requests = :minute_requests, period_start = :period_start, "
        "period_tokens = :period_tokens WHERE id = :id",
        {
            "minute_start": grant.minute_start,
            "minute_requests": grant.minute_requests,
            "period_start": grant.period_start,
            "period_tokens": grant.period_tokens,
            "id": grant.id,
        },
    )
    [(principal,)] = sql.run(
        f"SELECT name FROM {PrincipalRecord.__tablename__} WHERE id = :id",
        {"id": row.principal_id},
    ).fetchall()
    return {
        "request_id": f"req_{uuid.uuid4().hex}",
        "principal": principal,
        "key_id": row.key_id,
        "model": record.name,
        "admitted_at": now,
        "reserved_tokens": reserve,
        "tokens_left": tokens_left(grant),
        "info": ModelInfo.from_row(record, {r.id: r for r in chain}),
        "_grant_id": grant.id,
        "_key_row": row.id,
        "_principal_row": row.principal_id,
        "_model_row": record.id,
        "_period_start": grant.period_start,
    }


def _model_chain(sql: DriverSQL, model: str) -> list[Any]:
    """The model's row and its successors' (as far as `successor_chain` goes), by name first."""
    found = sql.rows(_MODELS, f"SELECT * FROM {_MODELS.name} WHERE name = :name", {"name": model})
    chain, seen = list(found), {r.id for r in found}
    while chain and chain[-1].successor_id is not None and len(chain) < CHAIN_LIMIT:
        successor_id = chain[-1].successor_id
        if successor_id in seen:
            break
        chain += sql.rows(
            _MODELS, f"SELECT * FROM {_MODELS.name} WHERE id = :id", {"id": successor_id}
        )
        seen.add(successor_id)
    return chain
