"""Human annotations: a person overrides a record (stance, strength, conditions, or excludes it),
with their name and a reason. Annotations are rows that are never changed; the newest applies,
and the record as the rule or judge made it stays in the archive untouched."""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import select

from emeritus.errors import InvalidInput, NotFound
from emeritus.interview.records import check_changes
from emeritus.interview.tables import AnnotationRecord
from emeritus.lifecycle import ModelRecord, require_model
from emeritus.store import Store, append_event, canonical_json, iso, utc_now


def annotate(
    store: Store,
    model: str,
    record_id: str,
    changes: Mapping[str, Any],
    *,
    author: str,
    reason: str,
    known: Collection[str],
) -> dict[str, Any]:
    """Record one override of one of the model's records (`known`: the ids that exist)."""
    clean = check_changes(changes)
    if not author.strip():
        raise InvalidInput("an annotation needs an author")
    if not reason.strip():
        raise InvalidInput("an annotation needs a reason (--reason)")
    if record_id not in known:
        raise NotFound(f"{model} has no record {record_id!r} (see emeritus analyze {model})")
    now = utc_now()
    with store.transaction() as session:
        model_id = require_model(session, model).id
        row = AnnotationRecord(
            model_id=model_id,
            record_id=record_id,
            changes=canonical_json(clean),
            author=author.strip(),
            reason=reason.strip(),
            created_at=now,
        )
        session.add(row)
        session.flush()
        annotation = _as_dict(row)
        append_event(
            session,
            kind="interview.annotated",
            subject=f"model:{model}",
            actor=store.settings.actor,
            payload={k: v for k, v in annotation.items() if k != "id"},
        )
    return annotation


def list_annotations(store: Store, model: str) -> list[dict[str, Any]]:
    """Every annotation of the model's records, oldest first."""
    with store.transaction() as session:
        query = (
            select(AnnotationRecord)
            .join(ModelRecord, ModelRecord.id == AnnotationRecord.model_id)
            .where(ModelRecord.name == model)
            .order_by(AnnotationRecord.id)
        )
        return [_as_dict(row) for row in session.scalars(query)]


def _as_dict(row: AnnotationRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "record_id": row.record_id,
        "changes": json.loads(row.changes),
        "author": row.author,
        "reason": row.reason,
        "time": iso(row.created_at),
    }
