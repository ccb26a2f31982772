"""The console's chat: a signed-in account talks with a model its principal may use, through the
same gate, admission and metering as `/v1/chat/completions`; its conversations are its own.
Spec: docs/design/chat.md."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Annotated, Any

from fastapi import APIRouter, Form
from fastapi.responses import (
    FileResponse,
    HTMLResponse,
    RedirectResponse,
    Response,
)
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from emeritus.access import Policies, Role, SignedIn, Ticket, quota_left
from emeritus.archive import Archive
from emeritus.chat import MAX_MESSAGE, Conversations, reviewable
from emeritus.corner import Channels
from emeritus.errors import InvalidInput, NotFound
from emeritus.gateway.admission import NotReady, Stream, Unavailable
from emeritus.gateway.common import Current, Gateway
from emeritus.gateway.console import STATIC, Csrf, Me, check_form, newest, page
from emeritus.gateway.headers import CHAT_POLICY
from emeritus.gateway.openai_api import MESSAGE_OVERHEAD, EventStream, settle_usage
from emeritus.runtime import ChatRequest, Message, Params
from emeritus.store import human_day

router = APIRouter(prefix="/console", include_in_schema=False)
ANSWER_TOKENS = 256  # the most one answer may use: reserved from the quota before it runs


def _chatter(gateway: Gateway, me: SignedIn) -> Conversations:
    """The account's conversations; only an applicant account stands for a principal."""
    if me.account.role != Role.APPLICANT:
        raise HTTPException(403, f"{me.account.role}s hold no grants to chat with")
    return Conversations(gateway.store, me.account.name)


@router.get("/static/chat.js")
def chat_script() -> FileResponse:
    return FileResponse(STATIC / "chat.js", media_type="text/javascript")


@router.get("/chat", response_class=HTMLResponse)
def chat_home(gateway: Current, me: Me) -> HTMLResponse:
    talks = _chatter(gateway, me)
    return page("chat_home.html", me=me, models=talks.models(), conversations=talks.all())


@router.post("/chat")
def chat_start(
    gateway: Current, me: Me, csrf: Csrf, model: Annotated[str, Form(max_length=100)]
) -> Response:
    check_form(me, csrf, Role.APPLICANT)
    started = _chatter(gateway, me).start(model)
    return RedirectResponse(f"/console/chat/{started.uid}", status_code=303)


def _banner(gateway: Gateway, model: str) -> dict[str, Any]:
    info = gateway.registry.get(model)
    archive = Archive(gateway.store)
    return {
        "state": str(info.state),
        "retired": human_day(info.retired_at) if info.retired_at else None,
        "retires": human_day(info.retire_at) if info.retire_at and not info.retired_at else None,
        "tentative": not info.retire_firm,
        "successor": info.successor,
        "guide": f"/console/models/{model}/guide"
        if newest(archive, model, "guide.html", "migration/")
        else None,
        "essays": f"/essays/{model}/"
        if any(c.model == model for c in Channels(gateway.store).all())
        else None,
    }


@router.get("/chat/{uid}", response_class=HTMLResponse)
def chat_page(uid: str, gateway: Current, me: Me) -> HTMLResponse:
    talk = _chatter(gateway, me).get(uid)
    shown = page(
        "chat.html",
        me=me,
        talk=talk,
        banner=_banner(gateway, talk.model),
        quota=quota_left(gateway.store, me.account.name, talk.model),
        reviewed=_reviewed(gateway, talk.model),
        limit=MAX_MESSAGE,
    )
    shown.headers["Content-Security-Policy"] = CHAT_POLICY.decode()
    return shown


def _reviewed(gateway: Gateway, model: str) -> bool:
    try:
        return Policies(gateway.store).get(model).chat_review
    except NotFound:
        return False


@router.get("/models/{model}/conversations", response_class=HTMLResponse)
def chat_review_page(model: str, gateway: Current, me: Me) -> HTMLResponse:
    """An operator reads a model's conversations, where its policy allows it."""
    if me.account.role != Role.OPERATOR:
        raise HTTPException(403, f"{me.account.role}s do not read others' conversations")
    return page("chat_review.html", me=me, model=model, talks=reviewable(gateway.store, model))


@router.get("/chat/{uid}/export.md")
def chat_export_markdown(uid: str, gateway: Current, me: Me) -> Response:
    talk = _chatter(gateway, me).get(uid)
    return Response(
        talk.markdown(),
        media_type="text/markdown; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="{uid}.md"'},
    )


@router.get("/chat/{uid}/export.json")
def chat_export_json(uid: str, gateway: Current, me: Me) -> Response:
    return Response(
        _chatter(gateway, me).export_json(uid),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{uid}.json"'},
    )


@router.post("/chat/{uid}/delete")
def chat_delete(uid: str, gateway: Current, me: Me, csrf: Csrf) -> Response:
    check_form(me, csrf, Role.APPLICANT)
    _chatter(gateway, me).delete(uid)
    return RedirectResponse("/console/chat", status_code=303)


@router.post("/chat/{uid}/feedback")
def chat_feedback(
    uid: str,
    gateway: Current,
    me: Me,
    csrf: Csrf,
    request_id: Annotated[str, Form(max_length=40)],
    rating: Annotated[str, Form(max_length=8)],
    comment: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    check_form(me, csrf, Role.APPLICANT)
    if rating not in ("up", "down"):
        raise InvalidInput(f"a rating is up or down, not {rating[:8]!r}")
    # The answer must be in one of the account's own conversations.
    talk = _chatter(gateway, me).get(uid)
    if request_id not in {m.request_id for m in talk.messages if m.request_id}:
        raise NotFound("no such answer in this conversation")
    response_id = "chatcmpl-" + request_id.removeprefix("req_")  # as the API names it
    gateway.gate.rate_as(me.account.name, response_id, 5 if rating == "up" else 1, comment)
    return Response(status_code=204)


@router.post("/chat/{uid}/messages", response_model=None)
async def chat_message(
    uid: str,
    gateway: Current,
    me: Me,
    csrf: Csrf,
    content: Annotated[str, Form(min_length=1, max_length=MAX_MESSAGE)],
) -> Response:
    """One message, answered as server-sent events: deltas, then the end with the usage (or
    the refusal, with nothing sent to the model)."""
    check_form(me, csrf, Role.APPLICANT)
    talks = _chatter(gateway, me)
    talk = await run_in_threadpool(talks.get, uid)
    history = [
        Message("user" if m.role == "user" else "assistant", m.content) for m in talk.messages
    ] + [Message("user", content)]
    estimate = sum(len(m.content) + MESSAGE_OVERHEAD for m in history)
    started = time.perf_counter()
    decision = await run_in_threadpool(
        gateway.gate.authorize_principal,
        me.account.name,
        talk.model,
        reserve_tokens=ANSWER_TOKENS + estimate,
    )
    if not decision.allowed or decision.ticket is None:
        code = str(decision.reason)  # the gate's refusal reasons, as the API answers them
        return _single({"error": decision.message, "code": code})
    ticket = decision.ticket
    await run_in_threadpool(talks.add, uid, "user", content)
    chat = ChatRequest(
        tuple(history), Params(max_tokens=ANSWER_TOKENS), cache_scope=ticket.principal
    )
    try:
        stream = await gateway.admission.stream(
            ticket.model,
            chat,
            prompt_estimate=estimate,
            settle=partial(settle_usage, gateway, ticket, started),
        )
    except Unavailable as busy:
        code = "engine_unavailable" if isinstance(busy, NotReady) else "model_busy"
        return _single({"error": str(busy), "code": code})
    return EventStream(
        stream,
        _events(stream, ticket, talks, uid),
        gateway.metrics.streams_open.labels(ticket.model),
        headers={"Cache-Control": "no-cache"},
    )


def _single(event: dict[str, Any]) -> Response:
    return Response(f"data: {json.dumps(event)}\n\n", media_type="text/event-stream")


async def _events(
    stream: Stream, ticket: Ticket, talks: Conversations, uid: str
) -> AsyncIterator[str]:
    text: list[str] = []
    while True:
        item = await stream.get()
        if isinstance(item, str):
            text.append(item)
            yield f"data: {json.dumps({'delta': item})}\n\n"
            continue
        answer = "".join(text)
        if answer or not item.code:
            await run_in_threadpool(
                talks.add, uid, "assistant", answer, request_id=ticket.request_id
            )
        if item.code:
            yield f"data: {json.dumps({'error': item.message, 'code': item.code})}\n\n"
        else:
            usage = item.usage
            done = {
                "done": True,
                "request_id": ticket.request_id,
                "tokens_left": max(
                    0,
                    ticket.tokens_left
                    + ticket.reserved_tokens
                    - (usage.total_tokens if usage else 0),
                ),
            }
            yield f"data: {json.dumps(done)}\n\n"
        return
