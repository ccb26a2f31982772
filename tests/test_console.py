"""The console in a real browser: Playwright driving Debian's chromium against the gateway on
loopback (docs/design/console.md)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from browser import CHROMIUM, FLAGS
from console_forms import sign_in as sign_in_form
from emeritus.access import Accounts
from emeritus.corner import Channels, DraftState, Review, write_draft
from emeritus.errors import Conflict, InvalidInput
from emeritus.gateway import mock_opener, new_admin_key, running
from emeritus.lifecycle import Registry
from emeritus.store import Store, list_events
from test_corner import ESSAY, MODEL, OTHER, Scripted, opened, site_files

PASSWORD = "correct horse battery"
ARTIFACTS = Path("test-artifacts")


@pytest.fixture
def console(store: Store) -> Iterator[str]:
    Registry(store).add(MODEL, family="SmolLM2")
    opened(Channels(store))
    accounts = Accounts(store)
    accounts.add("rae", "reviewer", PASSWORD)
    accounts.add("otto", "operator", PASSWORD)
    accounts.add("app", "applicant", PASSWORD)
    with running(store, admin_key=new_admin_key(), opener=mock_opener()) as base:
        yield base.removesuffix("/v1") + "/console"


@pytest.fixture
def page() -> Iterator[tuple[Page, list[str]]]:
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            # The console runs no script (its policy says so); axe-core is injected past it.
            tab = browser.new_page(viewport={"width": 1100, "height": 900}, bypass_csp=True)
            tab.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            tab.on("pageerror", lambda exc: errors.append(str(exc)))
            yield tab, errors
        finally:
            browser.close()


def sign_in(page: Page, console: str, name: str, password: str = PASSWORD) -> None:
    page.goto(f"{console}/sign-in")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_accounts_refuse_bad_input(store: Store) -> None:
    accounts = Accounts(store)
    with pytest.raises(InvalidInput, match="unknown role"):
        accounts.add("x", "admin", PASSWORD)
    with pytest.raises(InvalidInput, match="at least 12"):
        accounts.add("x", "reviewer", "short")
    accounts.add("x", "reviewer", PASSWORD)
    with pytest.raises(Conflict):
        accounts.add("x", "operator", PASSWORD)
    assert accounts.sign_in("x", "wrong password!") is None
    assert accounts.sign_in("nobody", PASSWORD) is None
    me = accounts.sign_in("x", PASSWORD)
    assert me is not None and me.token is not None
    assert accounts.session(me.token) is not None
    accounts.disable("x")
    assert accounts.session(me.token) is None and accounts.sign_in("x", PASSWORD) is None
    with store.transaction() as session:
        kinds = [e.kind for e in list_events(session, kind="access.sign_in_failed")]
    assert len(kinds) == 2  # a name without an account is counted, not logged one by one


def test_a_reviewer_vetoes_one_approves_another(
    store: Store, console: str, page: tuple[Page, list[str]]
) -> None:
    tab, errors = page
    review = Review(store)
    first = write_draft(store, MODEL, Scripted(ESSAY))
    second = write_draft(store, MODEL, Scripted(OTHER))
    assert first is not None and second is not None
    tab.goto(f"{console}/essays")
    assert tab.url.endswith("/console/sign-in")  # not signed in: sent to sign in
    sign_in(tab, console, "rae", "not the password")
    assert "Wrong name or password" in tab.content()
    sign_in(tab, console, "rae")
    tab.get_by_role("link", name="Essays to review").click()
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "console-essays.png"), full_page=True)
    assert tab.get_by_role("textbox").count() == 2  # a reason per draft, and nothing to edit
    drafted = tab.locator(f"#draft-{second.id}")
    drafted.get_by_label("Ground for a veto").select_option("impersonation")
    drafted.get_by_label("Reason").fill("Claims to speak for a real person.")
    drafted.get_by_role("button", name=f"Veto draft {second.id}").click()
    tab.get_by_role("button", name=f"Approve draft {first.id}").click()
    assert "No essays await review" in tab.content()
    tab.get_by_role("button", name=f"Publish approved essays of {MODEL}").click()
    assert "Published 1 new essay(s)" in tab.content()
    assert review.get(first.id).state is DraftState.PUBLISHED
    vetoed = review.get(second.id)
    assert vetoed.state is DraftState.VETOED and vetoed.reviewer == "rae"
    files = site_files(Channels(store).get(MODEL).site)
    assert any(ESSAY.encode() == data for data in files.values())
    assert not any(b"A Second Essay" in data for data in files.values())
    tab.get_by_role("link", name="Models").click()
    tab.get_by_role("link", name=MODEL).click()
    assert "Retirement checklist" in tab.content() and "corner.opened" in tab.content()
    tab.screenshot(path=str(ARTIFACTS / "console-model.png"), full_page=True)
    tab.get_by_role("link", name="Essay channel").click()
    # The channel is a static site on another path: wait for its page, not the console's.
    expect(tab.get_by_role("link", name="On Being Kept")).to_be_visible()
    assert "A Second Essay" not in tab.content()
    tab.get_by_role("link", name="On Being Kept").click()
    expect(tab.locator("body")).to_contain_text("published unedited")
    assert errors == []
    with store.transaction() as session:
        actors = {e.kind: e.actor for e in list_events(session, kind="corner.")}
    assert actors["corner.vetoed"] == "rae" and actors["corner.published"] == "rae"


def test_forms_need_the_session_and_its_csrf_token(store: Store, console: str) -> None:
    draft = write_draft(store, MODEL, Scripted(ESSAY))
    assert draft is not None
    with httpx.Client(base_url=console, follow_redirects=False) as client:
        assert client.post(f"/essays/{draft.id}/approve", data={"csrf": "x"}).status_code == 303
        signed = sign_in_form(client, "rae", PASSWORD)
        assert signed.status_code == 303
        cookie = signed.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie
        forged = client.post(f"/essays/{draft.id}/approve", data={"csrf": "forged"})
        assert forged.status_code == 403
    with httpx.Client(base_url=console, follow_redirects=False) as client:
        assert sign_in_form(client, "app", PASSWORD).status_code == 303
        assert client.get("/essays").status_code == 403  # applicants do not review
        assert client.get("/access").status_code == 403
    site = console.removesuffix("/console") + f"/essays/{MODEL}"
    for escape in ("..%2F..%2Femeritus.db", "%2e%2e/%2e%2e/emeritus.db", "/etc/passwd"):
        assert httpx.get(f"{site}/{escape}").status_code == 404
    assert Review(store).get(draft.id).state is DraftState.PENDING


def test_an_applicant_applies_the_operator_approves_the_key_works(
    store: Store, console: str, page: tuple[Page, list[str]]
) -> None:
    import openai

    from emeritus.access import Policies

    Policies(store).set(
        MODEL,
        {
            "approval": "manual",
            "fields": [
                {"name": "purpose", "label": "What will you study?", "type": "text"},
                {"name": "terms", "label": "I accept the terms of use", "type": "checkbox"},
            ],
        },
    )
    tab, errors = page
    tab.goto(f"{console}/sign-up")
    tab.get_by_label("Name (lower-case").fill("ada")
    tab.get_by_label("Contact").fill("ada@example.org")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Create account").click()
    tab.get_by_role("link", name="Models").click()
    tab.get_by_role("link", name=f"Apply for access to {MODEL}").click()
    tab.get_by_label("What will you study?").fill("How small models describe themselves.")
    tab.get_by_label("I accept the terms of use").check()
    tab.get_by_role("button", name="Apply").click()
    assert "pending" in tab.locator("table").inner_text()
    assert tab.get_by_role("button", name=f"Create an API key for {MODEL}").count() == 0
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / "console-applicant.png"), full_page=True)
    tab.get_by_role("button", name="Sign out").click()

    sign_in(tab, console, "otto")
    tab.get_by_role("link", name="Applications").click()
    assert "How small models describe themselves." in tab.content()
    tab.screenshot(path=str(ARTIFACTS / "console-applications.png"), full_page=True)
    tab.get_by_role("button", name="Approve ada").click()
    assert "No applications await a decision" in tab.content()
    tab.get_by_role("button", name="Sign out").click()

    sign_in(tab, console, "ada", PASSWORD)
    tab.get_by_role("link", name="Your applications").click()
    assert "approved" in tab.locator("table").inner_text()
    tab.get_by_role("button", name=f"Create an API key for {MODEL}").click()
    key = tab.locator("#new-key").inner_text()
    assert errors == []
    client = openai.OpenAI(
        base_url=console.removesuffix("/console") + "/v1", api_key=key, max_retries=0
    )
    answer = client.chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=8
    )
    assert answer.choices[0].message.content
    tab.get_by_role("button", name="Sign out").click()

    # A second applicant is rejected; then the operator revokes ada's key.
    tab.goto(f"{console}/sign-up")
    tab.get_by_label("Name (lower-case").fill("bo")
    tab.get_by_label("Contact").fill("bo@example.org")
    tab.get_by_label("Password").fill(PASSWORD)
    tab.get_by_role("button", name="Create account").click()
    tab.goto(f"{console}/apply/{MODEL}")
    tab.get_by_label("What will you study?").fill("Nothing in particular.")
    tab.get_by_label("I accept the terms of use").check()
    tab.get_by_role("button", name="Apply").click()
    tab.get_by_role("button", name="Sign out").click()
    sign_in(tab, console, "otto")
    tab.get_by_role("link", name="Applications").click()
    tab.get_by_label("Reason for a rejection").fill("The purpose is not research.")
    tab.get_by_role("button", name="Reject bo").click()
    assert "No applications await a decision" in tab.content()
    tab.get_by_role("link", name="Grants and keys").click()
    tab.screenshot(path=str(ARTIFACTS / "console-access.png"), full_page=True)
    key_id = key.split("_")[1]  # emk_<id>_<secret>
    revoke = tab.locator("form", has=tab.get_by_role("button", name=f"Revoke key {key_id}"))
    revoke.get_by_label("Reason").fill("Shared in a public notebook.")
    revoke.get_by_role("button").click()
    assert "Revoked key" in tab.content()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "Hello"}], max_tokens=8
        )
    assert errors == []
    with store.transaction() as session:
        by_kind = {e.kind: e for e in list_events(session, kind="access.")}
    assert by_kind["access.approved"].actor == "otto"
    assert by_kind["access.rejected"].actor == "otto"
    assert by_kind["access.key_revoked"].actor == "otto"
    assert by_kind["access.key_created"].actor == "ada"
    assert by_kind["access.key_revoked"].payload["key_id"] == key_id


def test_the_watch_pages_show_archive_usage_and_signals(
    store: Store, console: str, page: tuple[Page, list[str]], tmp_path: Path
) -> None:
    import openai

    from emeritus.access import Grants, Keys, Principals, check_terms
    from emeritus.archive import Archive
    from helpers import make_model

    Archive(store).preserve(MODEL, [make_model(tmp_path / "model")])
    Principals(store).add("rita", tier="research")
    Grants(store).grant("rita", MODEL, terms=check_terms(30, 100_000, "day", 100))
    key = Keys(store).create("rita", [MODEL]).key
    api = console.removesuffix("/console") + "/v1"
    answer = openai.OpenAI(base_url=api, api_key=key, max_retries=0).chat.completions.create(
        model=MODEL, messages=[{"role": "user", "content": "Hi"}], max_tokens=8
    )
    rated = httpx.post(
        f"{api}/feedback",
        json={"response_id": answer.id, "rating": 4, "comment": "Quick and kind."},
        headers={"Authorization": f"Bearer {key}"},
    )
    assert rated.status_code == 201
    stolen = httpx.post(
        f"{api}/chat/completions",
        json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
        headers={"Authorization": "Bearer emk_notakey_0000"},
    )
    assert stolen.status_code == 401
    tab, errors = page
    sign_in(tab, console, "otto")
    ARTIFACTS.mkdir(exist_ok=True)
    tab.get_by_role("link", name="Archive").click()
    assert MODEL in tab.locator("table").inner_text()
    tab.screenshot(path=str(ARTIFACTS / "console-archive.png"), full_page=True)
    tab.get_by_role("link", name="Usage").click()
    tab.wait_for_function("Array.from(document.images).every(i => i.complete)")
    widths = tab.evaluate("Array.from(document.images).map(i => i.naturalWidth)")
    assert len(widths) == 2 and all(w > 0 for w in widths)  # requests and cost per day
    assert "rita" in tab.locator("table").first.inner_text()
    assert "unknown_key" in tab.content()
    tab.screenshot(path=str(ARTIFACTS / "console-usage.png"), full_page=True)
    tab.get_by_role("link", name="Signals").click()
    assert "Quick and kind." in tab.content() and "unknown_key" in tab.content()
    tab.screenshot(path=str(ARTIFACTS / "console-signals.png"), full_page=True)
    assert errors == []


def test_every_console_page_passes_axe(
    store: Store, console: str, page: tuple[Page, list[str]]
) -> None:
    """Accessibility basics (labels, headings, contrast, landmarks) on each page, by axe-core."""
    from browser import axe_violations
    from emeritus.access import Policies

    Policies(store).set(MODEL, {"fields": [{"name": "why", "label": "Why?", "type": "text"}]})
    assert write_draft(store, MODEL, Scripted(ESSAY)) is not None
    tab, errors = page
    found: dict[str, list[str]] = {}
    tab.goto(f"{console}/sign-in")
    found["sign-in"] = axe_violations(tab)
    tab.goto(f"{console}/sign-up")
    found["sign-up"] = axe_violations(tab)
    sign_in(tab, console, "otto")
    for path in (
        "/",
        f"/models/{MODEL}",
        "/essays",
        "/archive",
        "/usage",
        "/signals",
        "/applications/review",
    ):
        tab.goto(console + path)
        found[path] = axe_violations(tab)
    tab.get_by_role("button", name="Sign out").click()
    sign_in(tab, console, "app")
    for path in (f"/apply/{MODEL}", "/applications"):
        tab.goto(console + path)
        found[path] = axe_violations(tab)
    assert {p: v for p, v in found.items() if v} == {}
    assert errors == []
