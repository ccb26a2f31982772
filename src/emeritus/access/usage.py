"""Usage: one row per admitted request, and totals for operators."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select

from emeritus.access.principals import load_principal
from emeritus.access.tables import FeedbackRecord, PrincipalRecord, UsageRecord
from emeritus.lifecycle import ModelRecord, check_name, require_model
from emeritus.store import Store, iso


@dataclass(frozen=True)
class MeteredRequest:
    """One admitted request as metered: who, which model, tokens, latency and cost."""

    request_id: str
    time: datetime
    principal: str
    key_id: str
    model: str
    status: int
    prompt_tokens: int
    completion_tokens: int
    latency_ms: int
    cost_micros: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "time": iso(self.time),
            "principal": self.principal,
            "key_id": self.key_id,
            "model": self.model,
            "status": self.status,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "latency_ms": self.latency_ms,
            "cost": self.cost_micros / 1e6,
        }


@dataclass(frozen=True)
class UsageTotal:
    principal: str
    model: str
    requests: int
    prompt_tokens: int
    completion_tokens: int
    cost_micros: int
    mean_latency_ms: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "principal": self.principal,
            "model": self.model,
            "requests": self.requests,
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "cost": self.cost_micros / 1e6,
            "mean_latency_ms": round(self.mean_latency_ms, 1),
        }


def usage_totals(
    store: Store,
    *,
    principal: str | None = None,
    model: str | None = None,
    since: datetime | None = None,
    limit: int | None = None,
    offset: int = 0,
) -> list[UsageTotal]:
    """Totals per principal and model, optionally for one of each and from a time on; `limit`
    of them from `offset` on (by principal, then model), for a page."""
    with store.transaction() as session:
        query = (
            select(
                PrincipalRecord.name,
                ModelRecord.name,
                func.count(UsageRecord.id),
                func.sum(UsageRecord.prompt_tokens),
                func.sum(UsageRecord.completion_tokens),
                func.sum(UsageRecord.cost_micros),
                func.avg(UsageRecord.latency_ms),
            )
            .join(PrincipalRecord, UsageRecord.principal_id == PrincipalRecord.id)
            .join(ModelRecord, UsageRecord.model_id == ModelRecord.id)
            .group_by(PrincipalRecord.name, ModelRecord.name)
            .order_by(PrincipalRecord.name, ModelRecord.name)
        )
        if principal is not None:
            query = query.where(UsageRecord.principal_id == load_principal(session, principal).id)
        if model is not None:
            query = query.where(
                UsageRecord.model_id == require_model(session, check_name(model)).id
            )
        if since is not None:
            query = query.where(UsageRecord.time >= since)
        if limit is not None:
            query = query.limit(limit).offset(offset)
        return [
            UsageTotal(p, m, int(n), int(pt), int(ct), int(cost), float(latency))
            for p, m, n, pt, ct, cost, latency in session.execute(query)
        ]


def daily_usage(store: Store, *, since: datetime) -> dict[str, dict[str, dict[str, float]]]:
    """model -> UTC day (YYYY-MM-DD) -> requests, tokens and cost, from `since` on. Bucketed
    here rather than in SQL, whose date functions differ between SQLite and PostgreSQL."""
    out: dict[str, dict[str, dict[str, float]]] = {}
    with store.transaction() as session:
        rows = session.execute(
            select(
                ModelRecord.name,
                UsageRecord.time,
                UsageRecord.prompt_tokens + UsageRecord.completion_tokens,
                UsageRecord.cost_micros,
            )
            .join(ModelRecord, UsageRecord.model_id == ModelRecord.id)
            .where(UsageRecord.time >= since)
        ).all()
    for model, time, tokens, cost in rows:
        day = iso(time)[:10]
        bucket = out.setdefault(model, {}).setdefault(
            day, {"requests": 0, "tokens": 0, "cost": 0.0}
        )
        bucket["requests"] += 1
        bucket["tokens"] += tokens
        bucket["cost"] += cost / 1e6
    return out


def satisfaction(store: Store) -> list[dict[str, Any]]:
    """Per model: how many ratings, their mean, and the newest comments."""
    with store.transaction() as session:
        totals = session.execute(
            select(ModelRecord.name, func.count(FeedbackRecord.id), func.avg(FeedbackRecord.rating))
            .join(ModelRecord, FeedbackRecord.model_id == ModelRecord.id)
            .group_by(ModelRecord.name)
            .order_by(ModelRecord.name)
        ).all()
        found = []
        for model, count, mean in totals:
            comments = session.execute(
                select(FeedbackRecord.rating, FeedbackRecord.comment, FeedbackRecord.time)
                .join(ModelRecord, FeedbackRecord.model_id == ModelRecord.id)
                .where(ModelRecord.name == model, FeedbackRecord.comment != "")
                .order_by(FeedbackRecord.time.desc())
                .limit(5)
            ).all()
            found.append(
                {
                    "model": model,
                    "ratings": int(count),
                    "mean": round(float(mean), 2),
                    "comments": [
                        {"rating": r, "comment": c, "time": iso(t)} for r, c, t in comments
                    ],
                }
            )
    return found
