"""The paid tier's chat page (docs/design/chat.md) in Debian's chromium: a paid account talks
with a retired model it is entitled to, sees the answer stream in, keeps, exports and deletes its
conversation; another account cannot open it; model output stays text; over quota or revoked,
nothing is sent. The conversations service on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest
from playwright.sync_api import Page, expect, sync_playwright

from browser import CHROMIUM, FLAGS, axe_violations
from emeritus.access import Accounts, Grants, Policies, Principals, usage_totals
from emeritus.chat import Conversations
from emeritus.errors import NotFound
from emeritus.gateway import new_admin_key, running
from emeritus.lifecycle import Availability, Registry
from emeritus.runtime import ChatRequest, Chunk, MockBackend
from emeritus.store import Store, list_events, utc_now

MODEL, HEIR = "old-model", "new-model"
PASSWORD = "correct horse battery"
REPLY = "I remember <script>window.pwned = 1</script> the questions people asked me most."


class SlowMock(MockBackend):
    """Scripted words, a tenth of a second apart: slow enough to watch them arrive."""

    def stream_chat(self, request: ChatRequest) -> Iterator[Chunk]:
        for chunk in super().stream_chat(request):
            time.sleep(0.1)
            yield chunk


def _world(store: Store, tokens: int = 100000) -> None:
    registry = Registry(store)
    registry.add(MODEL)
    registry.add(HEIR)
    now = utc_now()
    registry.deprecate(
        MODEL,
        retire_at=now + timedelta(days=61),
        successor=HEIR,
        availability_after=Availability.RESTRICTED,
        now=now,
    )
    registry.tick(now=now + timedelta(days=62))
    policy = {"tiers": {"paid": {"tokens": tokens, "period": "month"}}, "fields": []}
    Policies(store).set(MODEL, policy)
    accounts = Accounts(store)
    for name, tier in [("paula", "paid"), ("peter", "paid"), ("rita", "research")]:
        Principals(store).add(name, tier=tier)
        accounts.add(name, "applicant", PASSWORD, actor="operator")


@pytest.fixture
def console(store: Store) -> Iterator[str]:
    _world(store)
    opener = lambda _model: (SlowMock({"default": REPLY}), 0)  # noqa: E731
    with running(store, admin_key=new_admin_key(), opener=opener) as base:
        yield base.removesuffix("/v1") + "/console"


@pytest.fixture
def tab() -> Iterator[Page]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS)
        try:
            # CSP bypassed: axe-core is injected, and the text-not-HTML check cannot lean on
            # the policy (a script element put in as HTML would run here).
            yield browser.new_page(viewport={"width": 1024, "height": 900}, bypass_csp=True)
        finally:
            browser.close()


def _sign_in(page: Page, console: str, name: str) -> None:
    page.goto(f"{console}/sign-in")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def _start(page: Page, console: str) -> str:
    page.goto(f"{console}/chat")
    page.get_by_role("button", name="Start a conversation").click()
    expect(page.get_by_role("heading", name=f"Chat with {MODEL}")).to_be_visible()
    return page.url


def _send(page: Page, text: str) -> None:
    # Disabled while an answer streams in (a disabled button is skipped by Tab).
    expect(page.get_by_role("button", name="Send")).to_be_enabled(timeout=20_000)
    page.get_by_label("Your message").fill(text)
    page.keyboard.press("Tab")  # to the Send button, by keyboard
    page.keyboard.press("Enter")


def test_a_paid_account_chats_and_sees_the_answer_stream_in(
    console: str, tab: Page, store: Store
) -> None:
    _sign_in(tab, console, "paula")
    url = _start(tab, console)
    expect(tab.get_by_text(f"{MODEL} was retired on")).to_be_visible()
    expect(tab.get_by_text(f"its successor is {HEIR}")).to_be_visible()
    expect(tab.locator("#quota")).to_contain_text("100000 of 100000 tokens left this month")
    _send(tab, "What do you remember?")
    answer = tab.locator("li.message.assistant .text").last
    # Part of the answer is on the page while the rest is still being written.
    tab.wait_for_function(
        "() => { const li = [...document.querySelectorAll('li.message.assistant')].pop();"
        " return li && li.getAttribute('aria-busy') === 'true'"
        " && li.querySelector('.text').textContent.length > 0; }",
        timeout=10_000,
    )
    expect(answer).to_have_text(REPLY, timeout=20_000)
    # Shown as text: the script element is characters, never run.
    assert tab.evaluate("() => window.pwned") is None
    assert tab.locator("li.message.assistant script").count() == 0
    expect(tab.locator("#quota")).not_to_contain_text("100000 of")
    assert axe_violations(tab) == []

    tab.reload()  # kept
    expect(tab.locator("li.message")).to_have_count(2)
    expect(tab.locator("li.message.assistant .text")).to_have_text(REPLY)

    cookies = {c["name"]: c["value"] for c in tab.context.cookies()}
    with httpx.Client(cookies=cookies, timeout=10) as client:
        markdown = client.get(url + "/export.md")
        assert markdown.status_code == 200 and "What do you remember?" in markdown.text
        exported = client.get(url + "/export.json").json()
        assert [m["role"] for m in exported["messages"]] == ["user", "assistant"]
        assert exported["messages"][1]["content"] == REPLY

    # A thumbs up lands in the feedback records under paula.
    tab.get_by_role("button", name="Good answer").click()
    expect(tab.get_by_role("status")).to_contain_text("rating was recorded")
    with store.transaction() as session:
        rated = list_events(session, kind="access.feedback")
    assert [e.payload["rating"] for e in rated] == [5] and rated[0].actor == "paula"
    (total,) = [t for t in usage_totals(store) if t.principal == "paula"]
    assert total.requests == 1  # metered like an API request

    tab.get_by_role("button", name="Delete this conversation").click()
    expect(tab.get_by_role("heading", name="Chat")).to_be_visible()
    assert tab.goto(url).status == 404
    assert [t.requests for t in usage_totals(store) if t.principal == "paula"] == [1]


def test_another_account_cannot_open_a_conversation(console: str, tab: Page, store: Store) -> None:
    _sign_in(tab, console, "paula")
    url = _start(tab, console)
    tab.context.clear_cookies()
    _sign_in(tab, console, "peter")
    assert tab.goto(url).status == 404
    assert tab.goto(url + "/export.json").status == 404


def test_over_quota_the_page_says_why_and_sends_nothing(store: Store, tab: Page) -> None:
    _world(store, tokens=60)  # less than one message's reservation
    opener = lambda _model: (SlowMock({"default": REPLY}), 0)  # noqa: E731
    with running(store, admin_key=new_admin_key(), opener=opener) as base:
        console = base.removesuffix("/v1") + "/console"
        _sign_in(tab, console, "paula")
        _start(tab, console)
        _send(tab, "Hello?")
        expect(tab.get_by_role("status")).to_contain_text("token quota")
        expect(tab.locator("li.message.assistant")).to_have_count(0)
    assert not [t for t in usage_totals(store) if t.principal == "paula"]


def test_a_revoked_entitlement_stops_the_next_message(
    console: str, tab: Page, store: Store
) -> None:
    _sign_in(tab, console, "paula")
    _start(tab, console)
    _send(tab, "First.")
    expect(tab.locator("li.message.assistant .text")).to_have_text(REPLY, timeout=20_000)
    Grants(store).revoke("paula", MODEL, reason="chargeback")
    _send(tab, "Second.")
    expect(tab.get_by_role("status")).to_contain_text("revoked")
    expect(tab.locator("li.message.assistant")).to_have_count(1)


def test_the_whole_chat_works_by_keyboard(console: str, tab: Page, store: Store) -> None:
    _sign_in(tab, console, "paula")
    tab.goto(f"{console}/chat")
    tab.get_by_label("Talk with").focus()
    tab.keyboard.press("Tab")  # to "Start a conversation"
    tab.keyboard.press("Enter")
    expect(tab.get_by_role("heading", name=f"Chat with {MODEL}")).to_be_visible()
    tab.get_by_label("Your message").focus()
    tab.keyboard.type("Tell me something.")
    tab.keyboard.press("Tab")
    tab.keyboard.press("Enter")
    expect(tab.locator("li.message.assistant .text")).to_have_text(REPLY, timeout=20_000)
    comment = tab.get_by_label("Comment (optional)")
    comment.focus()
    tab.keyboard.type("just as I remembered")
    tab.keyboard.press("Tab")  # to the thumbs up
    tab.keyboard.press("Enter")
    expect(tab.get_by_role("status")).to_contain_text("rating was recorded")
    with store.transaction() as session:
        (rated,) = list_events(session, kind="access.feedback")
    assert rated.payload["commented"] is True


@pytest.mark.parametrize("width", [390, 1024, 1920])
def test_the_chat_page_fits_every_width(console: str, tab: Page, width: int) -> None:
    tab.set_viewport_size({"width": width, "height": 900})
    _sign_in(tab, console, "paula")
    _start(tab, console)
    overflow = tab.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"{width}: scrolls sideways by {overflow}px"
    assert axe_violations(tab) == []


def test_conversations_belong_to_their_owner(store: Store) -> None:
    _world(store)
    mine, theirs = Conversations(store, "paula"), Conversations(store, "peter")
    assert mine.models() == [MODEL] and Conversations(store, "rita").models() == []
    talk = mine.start(MODEL)
    mine.add(talk.uid, "user", "a question about " + "words " * 20)
    assert mine.all()[0].title.endswith("...")
    with pytest.raises(NotFound):
        theirs.get(talk.uid)
    with pytest.raises(NotFound):
        theirs.delete(talk.uid)
    with pytest.raises(NotFound):
        Conversations(store, "rita").start(MODEL)  # not entitled: the model does not exist
    assert mine.delete(talk.uid) == 1
    with pytest.raises(NotFound):
        mine.get(talk.uid)
    with store.transaction() as session:
        (deleted,) = list_events(session, kind="chat.deleted")
    assert deleted.payload == {"conversation": talk.uid, "messages": 1}
    assert "question" not in json.dumps(deleted.payload)


def test_chat_use_makes_a_principal_a_recipient_of_notices(store: Store) -> None:
    """A chat message is metered like an API request (no key), so the account that chatted is
    told of the model's notices, with its figures."""
    from emeritus.access import Gate
    from emeritus.lifecycle import ModelRecord, require_model
    from emeritus.notify import affected_principals, usage_figures

    _world(store)
    Policies(store).set(MODEL, {"tiers": ["research"], "fields": []})  # no entitlement now
    gate = Gate(store)
    try:
        refused = gate.authorize_principal("paula", MODEL, reserve_tokens=10)
        assert not refused.allowed  # no grant and no entitlement: deny by default
        Policies(store).set(MODEL, {"tiers": {"paid": {"tokens": 1000, "period": "day"}}})
        admitted = gate.authorize_principal("paula", MODEL, reserve_tokens=10)
        assert admitted.allowed and admitted.ticket is not None
        gate.record_usage(admitted.ticket, prompt_tokens=4, completion_tokens=6, latency_s=0.1)
    finally:
        gate.close()
    with store.transaction() as session:
        model: ModelRecord = require_model(session, MODEL)
        told = affected_principals(session, model.id, utc_now(), 30)
        assert "paula" in {p.name for p in told}
        paula = next(p for p in told if p.name == "paula")
        figures = usage_figures(session, paula.id, model.id, utc_now())
    assert figures["requests_7d"] == 1 and figures["tokens_30d"] == 10


def test_operators_read_conversations_only_where_the_policy_says_so(
    console: str, store: Store
) -> None:
    from console_forms import sign_in

    Accounts(store).add("olga", "operator", PASSWORD, actor="test")
    talks = Conversations(store, "paula")
    talk = talks.start(MODEL)
    talks.add(talk.uid, "user", "a private question")
    with httpx.Client(base_url=console, timeout=10) as operator:
        sign_in(operator, "olga", PASSWORD)
        assert operator.get(f"/models/{MODEL}/conversations").status_code == 409
        assert operator.get(f"/chat/{talk.uid}").status_code == 403  # not the owner's route
        policy = Policies(store).get(MODEL).document()
        Policies(store).set(MODEL, {**policy, "chat_review": True})
        shown = operator.get(f"/models/{MODEL}/conversations")
        assert shown.status_code == 200 and "a private question" in shown.text
    with httpx.Client(base_url=console, timeout=10) as owner:
        sign_in(owner, "paula", PASSWORD)
        page = owner.get(f"/chat/{talk.uid}")
        assert "Operators of this service may read conversations" in page.text
