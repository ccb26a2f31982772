"""Schemathesis against the gateway's own OpenAPI schema: over a thousand generated requests
(valid and malformed bodies, paths and queries, without a key, with a wrong key), none answered
with a 5xx, and none with a 2xx where a key or the operator key is required."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emeritus.access import Grants, Keys, Policies, Principals, check_terms
from emeritus.gateway import create_app, mock_opener
from emeritus.lifecycle import Registry
from emeritus.runtime.pool import ModelPool
from emeritus.store import Settings, Store

EXAMPLES = 100  # per operation; 12 operations
# Reading an application's state needs only its unguessable id; applying needs a key.
PUBLIC = {("GET", "/v1/access/applications/{uid}"), ("GET", "/v1/deprecations")}
pytestmark = pytest.mark.timeout(900)


def test_generated_requests_never_fail_the_server(tmp_path: Path) -> None:
    settings_ = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/e.db", actor="t")
    with Store.open(settings_) as store:
        Registry(store).add("served-model")
        Policies(store).set("served-model", {"fields": [{"name": "why", "type": "text"}]})
        Principals(store).add("rita", tier="research")
        Grants(store).grant("rita", "served-model", terms=check_terms(30, 10**9, "day", 10**5))
        real_key = Keys(store).create("rita", ["served-model"]).key
        app = create_app(store, ModelPool(mock_opener()), admin_key="emadmin_" + "s" * 40)
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        seen: Counter[int] = Counter()
        failures: list[str] = []
        operations = [result.ok() for result in schema.get_all_operations()]
        assert len(operations) >= 10
        # No key, a malformed key, or a well-formed key the server does not know: never the
        # real one, so a 2xx on a protected route would be a breach.
        keys = st.sampled_from([None, "Bearer nonsense", "Bearer emk_0123456789ab_" + "x" * 43])
        for operation in operations:

            @given(case=operation.as_strategy(), auth=keys)
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def check(case: schemathesis.Case, auth: str | None) -> None:
                headers = dict(case.headers or {})
                headers.pop("Authorization", None)
                if auth is not None:
                    headers["Authorization"] = auth
                case.headers = headers
                response = case.call()
                seen[response.status_code] += 1
                route = (case.method.upper(), case.operation.path)
                if response.status_code >= 500:
                    failures.append(f"{response.status_code} {route}: {response.text[:200]}")
                if 200 <= response.status_code < 300 and route not in PUBLIC:
                    failures.append(f"{response.status_code} without a valid key on {route}")

            check()
        assert real_key not in str(failures)
    assert not failures, failures[:5]
    assert sum(seen.values()) >= 1000, seen
    assert seen[401] > 0 and seen[400] > 0  # both refusals were exercised
