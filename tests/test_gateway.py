"""The gateway as a real process on loopback, serving the bundled SmolLM2 from the archive to the
official `openai` client: plain and streamed answers with lifecycle headers, the models a key may
see, every denial the client can meet, the application flow over HTTP, metrics, and exactly one
usage row per admitted request."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import openai
import pytest
import sqlalchemy as sa

from emeritus.access import Grants, Keys, Policies, Principals, check_terms
from emeritus.archive import Archive
from emeritus.lifecycle import Availability, Registry
from emeritus.runtime.bundled import BUNDLED
from emeritus.store import Settings, Store, utc_now
from gateway_server import ADMIN_KEY, gateway

OLD, NEW, GONE = "smollm2-135m-instruct", "gemma-3-270m", "gone-model"
pytestmark = pytest.mark.timeout(600)


@dataclass
class Served:
    base: str
    settings: Settings
    key: str  # rita: a live grant for OLD
    lapsed: str  # paul: a valid key, its grant expired
    tight: str  # tina: a grant whose quota one answer exhausts

    def client(self, key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.base, api_key=key, max_retries=0, timeout=120)

    def usage_rows(self) -> int:
        with Store.open(self.settings) as store, store.transaction() as session:
            return int(session.execute(sa.text("SELECT count(*) FROM access_usage")).scalar_one())


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home = tmp_path_factory.mktemp("gateway-home")
    settings = Settings(home=home, database_url=f"sqlite:///{home}/emeritus.db", actor="tester")
    with Store.open(settings) as store:
        registry, archive = Registry(store), Archive(store)
        for name in (OLD, NEW, GONE):
            registry.add(name)
        [smollm] = [b for b in BUNDLED if b.name == OLD]
        with tempfile.TemporaryDirectory() as scratch:
            archive.preserve(OLD, [smollm.locate(Path(scratch))])
        now = utc_now()
        registry.deprecate(OLD, retire_at=now + timedelta(days=90), successor=NEW, now=now)
        registry.deprecate(
            GONE,
            retire_at=now + timedelta(days=61),
            successor=NEW,
            availability_after=Availability.NONE,
            now=now,
        )
        registry.tick(now=now + timedelta(days=62))
        principals, grants, keys = Principals(store), Grants(store), Keys(store)
        for name in ("rita", "paul", "tina"):
            principals.add(name, tier="research")
        grants.grant("rita", OLD, terms=check_terms(30, 1_000_000, "day", 1000))
        grants.grant("rita", GONE, terms=check_terms(30, 1_000_000, "day", 1000))
        grants.grant("tina", OLD, terms=check_terms(30, 200, "day", 1000))
        month_ago = now - timedelta(days=31)
        grants.grant("paul", OLD, terms=check_terms(30, 1000, "day", 10), now=month_ago)
        key = keys.create("rita", [OLD, GONE]).key
        lapsed = keys.create("paul", [OLD], now=month_ago).key
        tight = keys.create("tina", [OLD]).key
        Policies(store).set(
            OLD, {"approval": "manual", "fields": [{"name": "why", "type": "text"}]}
        )
    with gateway(home) as base:
        yield Served(base, settings, key, lapsed, tight)


def test_the_official_client_gets_an_answer_with_lifecycle_headers(served: Served) -> None:
    before = served.usage_rows()
    raw = served.client(served.key).chat.completions.with_raw_response.create(
        model=OLD,
        messages=[{"role": "user", "content": "Say hello in five words."}],
        max_tokens=16,
    )
    completion = raw.parse()
    assert completion.choices[0].message.content
    assert completion.usage is not None and 0 < completion.usage.completion_tokens <= 16
    assert raw.headers["deprecation"].startswith("@")
    assert raw.headers["sunset"].endswith("GMT")
    assert raw.headers["link"].endswith(f'/v1/models/{NEW}>; rel="successor-version"')
    assert served.usage_rows() == before + 1


def test_streaming_through_the_official_client(served: Served) -> None:
    before = served.usage_rows()
    stream = served.client(served.key).chat.completions.create(
        model=OLD,
        messages=[{"role": "user", "content": "Count from one to five."}],
        max_tokens=24,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces, usage = [], None
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            pieces.append(chunk.choices[0].delta.content)
        if chunk.usage is not None:
            usage = chunk.usage
    assert "".join(pieces).strip()
    assert usage is not None and 0 < usage.completion_tokens <= 24 and usage.prompt_tokens > 0
    # A stream's last event is sent, then the request is settled: its row follows at once.
    deadline = time.monotonic() + 10
    while served.usage_rows() == before and time.monotonic() < deadline:
        time.sleep(0.05)
    assert served.usage_rows() == before + 1


def test_models_lists_only_the_keys_scope_with_lifecycle(served: Served) -> None:
    listed = {m.id: m for m in served.client(served.key).models.list()}
    assert set(listed) == {OLD, GONE}  # never NEW: outside the key's scope
    old = listed[OLD].model_dump()
    assert old["state"] == "deprecated" and old["successor"] == NEW and old["retire_at"]
    assert listed[GONE].model_dump()["availability"] == "none"
    with pytest.raises(openai.NotFoundError):
        served.client(served.key).models.retrieve(NEW)


def test_every_denial_reaches_the_client_as_the_right_error(served: Served) -> None:
    before = served.usage_rows()
    ask = [{"role": "user", "content": "hi"}]
    anonymous = httpx.post(
        f"{served.base}/chat/completions", json={"model": OLD, "messages": ask, "max_tokens": 4}
    )
    assert anonymous.status_code == 401 and anonymous.headers["www-authenticate"] == "Bearer"
    with pytest.raises(openai.AuthenticationError):
        served.client("emk_000000000000_" + "x" * 43).chat.completions.create(
            model=OLD, messages=ask, max_tokens=4
        )
    with pytest.raises(openai.PermissionDeniedError, match="expired"):
        served.client(served.lapsed).chat.completions.create(model=OLD, messages=ask, max_tokens=4)
    with pytest.raises(openai.NotFoundError):
        served.client(served.key).chat.completions.create(model=NEW, messages=ask, max_tokens=4)
    gone = httpx.post(
        f"{served.base}/chat/completions",
        headers={"Authorization": f"Bearer {served.key}"},
        json={"model": GONE, "messages": ask, "max_tokens": 4},
    )
    assert gone.status_code == 410 and gone.json()["error"]["successor"] == NEW
    with pytest.raises(openai.RateLimitError) as limited:
        served.client(served.tight).chat.completions.create(model=OLD, messages=ask, max_tokens=500)
    assert int(limited.value.response.headers["retry-after"]) >= 1
    bad = httpx.post(
        f"{served.base}/chat/completions",
        headers={"Authorization": f"Bearer {served.key}"},
        json={"model": OLD, "messages": [], "max_tokens": 4},
    )
    assert bad.status_code == 400 and "messages" in bad.json()["error"]["message"]
    assert served.usage_rows() == before  # nothing refused was metered


def test_applying_over_http_then_calling_with_the_new_key(served: Served) -> None:
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    body = {"model": OLD, "answers": {"why": "history of small models"}}
    anonymous = httpx.post(f"{served.base}/access/applications", json=body)
    assert anonymous.status_code == 401  # an applicant is the holder of the key it sends
    # Paul's grant ended: he applies again with his key, in his own name.
    applied = httpx.post(
        f"{served.base}/access/applications",
        json=body,
        headers={"Authorization": f"Bearer {served.lapsed}"},
    )
    assert applied.status_code == 201, applied.text
    uid = applied.json()["uid"]
    assert applied.json()["principal"] == "paul"
    assert httpx.get(f"{served.base}/access/applications/{uid}").json()["state"] == "pending"
    assert httpx.post(f"{served.base}/admin/applications/{uid}/approve", json={}).status_code == 401
    wrong = {"Authorization": f"Bearer {served.key}"}
    assert (
        httpx.post(
            f"{served.base}/admin/applications/{uid}/approve", json={}, headers=wrong
        ).status_code
        == 403
    )
    approved = httpx.post(f"{served.base}/admin/applications/{uid}/approve", json={}, headers=admin)
    assert approved.status_code == 200 and approved.json()["state"] == "approved"
    made = httpx.post(
        f"{served.base}/admin/keys", json={"principal": "paul", "models": [OLD]}, headers=admin
    )
    assert made.status_code == 201
    answer = served.client(made.json()["key"]).chat.completions.create(
        model=OLD, messages=[{"role": "user", "content": "Hello"}], max_tokens=8
    )
    assert answer.choices[0].message.content is not None
    metrics = httpx.get(served.base.removesuffix("/v1") + "/metrics", headers=admin)
    assert metrics.status_code == 200
    assert f'emeritus_requests_total{{model="{OLD}",status="200"}}' in metrics.text
    assert 'emeritus_denials_total{reason="grant_expired"}' in metrics.text
    assert httpx.get(served.base.removesuffix("/v1") + "/metrics").status_code == 401
