"""`POST /v1/feedback`: a user rates a response their key received; one rating per response,
never someone else's, always an event (issue 9, satisfaction)."""

from __future__ import annotations

import httpx
import openai

from emeritus.access import Grants, Keys, Principals, check_terms
from emeritus.gateway import mock_opener, new_admin_key, running
from emeritus.lifecycle import Registry
from emeritus.store import Store, list_events


def test_feedback_on_a_served_response(store: Store) -> None:
    Registry(store).add("m")
    principals, grants, keys = Principals(store), Grants(store), Keys(store)
    for name in ("rita", "paul"):
        principals.add(name, tier="research")
        grants.grant(name, "m", terms=check_terms(30, 100_000, "day", 100))
    rita, paul = keys.create("rita", ["m"]).key, keys.create("paul", ["m"]).key
    admin = new_admin_key()
    with running(store, admin_key=admin, opener=mock_opener()) as base:
        client = openai.OpenAI(base_url=base, api_key=rita, max_retries=0)
        answer = client.chat.completions.create(
            model="m", messages=[{"role": "user", "content": "Hi"}], max_tokens=8
        )

        def rate(key: str | None, **body: object) -> httpx.Response:
            headers = {"Authorization": f"Bearer {key}"} if key else {}
            return httpx.post(f"{base}/feedback", json=body, headers=headers)

        assert rate(None, response_id=answer.id, rating=5).status_code == 401
        assert rate(rita, response_id=answer.id, rating=9).status_code == 400
        assert rate(paul, response_id=answer.id, rating=2).status_code == 404  # not paul's
        assert rate(rita, response_id="chatcmpl-unknown", rating=2).status_code == 404
        done = rate(rita, response_id=answer.id, rating=4, comment="Clear and short.")
        assert done.status_code == 201 and done.json()["rating"] == 4
        assert rate(rita, response_id=answer.id, rating=1).status_code == 409
        metrics = httpx.get(
            base.removesuffix("/v1") + "/metrics", headers={"Authorization": f"Bearer {admin}"}
        )
        assert 'emeritus_feedback_total{model="m",rating="4"} 1.0' in metrics.text
    with store.transaction() as session:
        rated = list_events(session, kind="access.feedback")
    assert len(rated) == 1 and rated[0].actor == "rita" and rated[0].payload["rating"] == 4
