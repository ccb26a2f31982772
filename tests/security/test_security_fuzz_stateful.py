"""Schemathesis in stateful mode over the gateway's whole OpenAPI schema, following its links
(answer → rating, application → its state → a decision, grant → revocation and a key), with
real keys mixed in among missing, malformed, unknown and revoked ones.

Over at least 2,000 requests: no 5xx, no 2xx without a key valid for that route, and exactly one
usage row per request the gate admitted."""

from __future__ import annotations

import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import schemathesis
import sqlalchemy as sa
from hypothesis import HealthCheck, settings

from emeritus.access import Gate, Grants, Keys, Policies, Principals, check_terms
from emeritus.gateway import create_app, mock_opener
from emeritus.lifecycle import Registry
from emeritus.runtime.pool import ModelPool
from emeritus.store import Settings, Store

ADMIN = "emadmin_" + "f" * 40
SERVED, OPEN = "served-model", "open-model"
UNKNOWN = "emk_0123456789ab_" + "z" * 43
PUBLIC = {("GET", "/v1/access/applications/{uid}"), ("GET", "/v1/deprecations")}
MIN_REQUESTS = 2000
pytestmark = pytest.mark.timeout(900)


def test_stateful_fuzzing_finds_no_breach(tmp_path: Path) -> None:
    config = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/e.db", actor="t")
    with Store.open(config) as store:
        registry = Registry(store)
        registry.add(SERVED)
        registry.add(OPEN)
        form = {"fields": [{"name": "why", "type": "text", "required": False}]}
        Policies(store).set(SERVED, form)
        Policies(store).set(OPEN, {**form, "approval": "auto"})
        principals, grants, keys = Principals(store), Grants(store), Keys(store)
        terms = check_terms(30, 10**9, "day", 10**6)
        principals.add("omar", tier="research")
        grants.grant("omar", SERVED, terms=terms)
        omar = keys.create("omar", [SERVED]).key
        grants.revoke("omar", SERVED, reason="revoked before the fuzzing")
        scenarios = itertools.count()

        admitted = Counter[str]()
        authorize = Gate.authorize

        def counting(self: Gate, *args: Any, **kwargs: Any) -> Any:
            decision = authorize(self, *args, **kwargs)
            if decision.allowed:
                admitted[decision.ticket.request_id] += 1
            return decision

        app = create_app(store, ModelPool(mock_opener()), admin_key=ADMIN)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        seen: Counter[int] = Counter()
        failures: list[str] = []

        class Workflow(schema.as_state_machine()):  # type: ignore[misc]
            sender: str | None = None
            key: str = ""

            def setup(self) -> None:
                # Each scenario has a principal of its own, so that one scenario's applications
                # and grants do not change what the next one sees (hypothesis replays them).
                name = f"rita-{next(scenarios)}"
                principals.add(name, tier="research")
                grants.grant(name, SERVED, terms=terms)
                Workflow.key = keys.create(name, [SERVED]).key
                # Who sends each step: the scenario's real key, nobody, the operator, a made-up
                # key, a revoked key, garbage; in a fixed order, so that a failure replays.
                self.senders = itertools.cycle(
                    [Workflow.key, None, ADMIN, Workflow.key, UNKNOWN, omar, Workflow.key, "x"]
                )

            def before_call(self, case: schemathesis.Case) -> None:
                # Most generated model names exist nowhere; name a real model in every other
                # request, or nothing would ever be admitted and metered.
                self.steps = getattr(self, "steps", 0) + 1
                if isinstance(case.body, dict) and "model" in case.body and self.steps % 2:
                    path = case.operation.path
                    case.body["model"] = OPEN if path == "/v1/access/applications" else SERVED

            def get_call_kwargs(self, case: schemathesis.Case) -> dict[str, Any]:
                Workflow.sender = next(self.senders)
                headers = {k: v for k, v in (case.headers or {}).items() if k != "Authorization"}
                if Workflow.sender is not None:
                    headers["Authorization"] = f"Bearer {Workflow.sender}"
                return {"headers": headers}

            def validate_response(self, response: Any, case: schemathesis.Case, **_: Any) -> None:
                status, route = response.status_code, (case.method.upper(), case.operation.path)
                seen[status] += 1
                if status >= 500:
                    failures.append(f"{status} on {route}: {response.text[:200]}")
                if not 200 <= status < 300 or route in PUBLIC:
                    return
                admin = route[1].startswith("/v1/admin")
                valid = Workflow.sender == (ADMIN if admin else Workflow.key)
                if not valid:
                    failures.append(f"{status} on {route} sent by {Workflow.sender!r}")

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(Gate, "authorize", counting)
            Workflow.run(
                settings=settings(
                    max_examples=240,
                    stateful_step_count=12,
                    deadline=None,
                    database=None,
                    suppress_health_check=list(HealthCheck),
                )
            )
        with store.transaction() as session:
            rows = session.execute(sa.text("SELECT request_id FROM access_usage")).all()
        print(
            f"stateful fuzzing: {sum(seen.values())} requests, "
            f"{sum(admitted.values())} admitted, statuses {dict(seen)}"
        )
    assert not failures, failures[:5]
    assert sum(seen.values()) >= MIN_REQUESTS, seen
    assert seen[401] and seen[200], seen  # both refusals and answers were exercised
    assert Counter(r[0] for r in rows) == admitted and sum(admitted.values()) > 0
