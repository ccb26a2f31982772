"""Headers that keep the console and the essays from being turned against their readers: no
sniffing, no framing, no referrer, and no script on any page (a policy, not only escaping)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from emeritus.access import Accounts, Role
from emeritus.archive import ARCHIVE_OWN_OBJECTS, Anchor, Archive
from emeritus.gateway import create_app, mock_opener
from emeritus.runtime.pool import ModelPool
from emeritus.store import Settings, Store


@pytest.fixture
def http(tmp_path: Path) -> Iterator[TestClient]:
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/e.db", actor="t")
    with Store.open(settings) as store:
        app = create_app(store, ModelPool(mock_opener()), admin_key="emadmin_" + "h" * 40)
        with TestClient(app, follow_redirects=False) as client:
            yield client


@pytest.mark.parametrize("path", ["/console/sign-in", "/console/sign-up", "/v1/models"])
def test_every_response_forbids_sniffing_framing_and_referrers(http: TestClient, path: str) -> None:
    headers = http.get(path).headers
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"


def test_pages_run_no_script_and_cannot_be_framed(http: TestClient) -> None:
    policy = http.get("/console/sign-in").headers["content-security-policy"]
    directives = dict(d.strip().split(" ", 1) for d in policy.split(";"))
    assert directives["script-src"] == "'none'" and directives["default-src"] == "'none'"
    assert directives["frame-ancestors"] == "'none'" and directives["form-action"] == "'self'"


def test_the_schema_links_its_workflows(http: TestClient) -> None:
    schema = http.get("/openapi.json").json()
    links = schema["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["links"]
    assert links["RateTheAnswer"]["requestBody"]["response_id"] == "$response.body#/id"


def test_the_archives_own_objects_are_listed_without_a_model_page(tmp_path: Path) -> None:
    config = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path}/o.db", actor="t")
    with Store.open(config) as store:
        Anchor(Archive(store)).take()  # the event-log checkpoints: an object of the archive's own
        Accounts(store).add("olga", Role.OPERATOR.value, "correct horse battery", actor="t")
        me = Accounts(store).sign_in("olga", "correct horse battery")
        assert me is not None and me.token is not None
        app = create_app(store, ModelPool(mock_opener()), admin_key="emadmin_" + "h" * 40)
        with TestClient(app) as client:
            client.cookies.set("emeritus_session", me.token)
            page = client.get("/console/archive").text
    (own,) = ARCHIVE_OWN_OBJECTS
    assert own in page and f'href="/console/models/{own}"' not in page
