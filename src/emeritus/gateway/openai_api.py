"""The OpenAI-compatible routes: chat completions (plain and streamed) and the models a key may
use, with their lifecycle. Every request passes the gate first, then the admission layer (a slot
of the model, generation decoupled from the client), and is metered exactly once however it ends
(docs/design/admission.md)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from functools import partial
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response, StreamingResponse
from prometheus_client import Gauge
from starlette.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from emeritus.access import Decision, Ticket
from emeritus.errors import NotFound
from emeritus.gateway.admission import End, NotReady, Outcome, Stream, Unavailable
from emeritus.gateway.common import (
    Current,
    EncodableJSONResponse,
    Gateway,
    bearer,
    error,
    refusal,
)
from emeritus.gateway.lifecycle_headers import lifecycle_headers, model_entry
from emeritus.gateway.schemas import ChatCompletionRequest, FeedbackRequest
from emeritus.runtime import ChatRequest, Message, Params

MESSAGE_OVERHEAD = 16  # tokens a chat template may add per message, for the reservation

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, gateway: Current
) -> Response:
    """Async: a request waiting for a slot holds no thread, so that the routes served by the
    thread pool (the console, the access endpoints) never wait behind a busy model."""
    started = time.perf_counter()
    messages = tuple(Message(m.role, m.content) for m in body.messages)
    params = Params(
        max_tokens=body.limit,
        temperature=body.temperature,
        top_p=body.top_p,
        seed=body.seed or 0,
        stop=body.stops,
    )
    estimate = sum(len(m.content) + MESSAGE_OVERHEAD for m in body.messages)
    decision = await run_in_threadpool(
        gateway.gate.authorize, bearer(request), body.model, reserve_tokens=body.limit + estimate
    )
    if not decision.allowed or decision.ticket is None:
        return refusal(gateway, decision)
    ticket = decision.ticket
    headers = lifecycle_headers(ticket.info, base_url=str(request.base_url).rstrip("/"))
    chat = ChatRequest(messages, params, cache_scope=ticket.principal)
    settle = partial(settle_usage, gateway, ticket, started)
    try:
        if body.stream:
            stream = await gateway.admission.stream(
                ticket.model, chat, prompt_estimate=estimate, settle=settle
            )
        else:
            outcome = await gateway.admission.answer(ticket.model, chat, settle=settle)
    except Unavailable as busy:  # no slot in time, or its engine not ready: already settled
        code = "engine_unavailable" if isinstance(busy, NotReady) else "model_busy"
        refused = error(503, str(busy), code)
        refused.headers["Retry-After"] = str(busy.retry_after)
        return refused
    if body.stream:
        early = await _first_chunk(stream, request)
        if early is not None and early.code:  # failed before any chunk: still an HTTP error
            return error(early.status, early.message, early.code)
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return EventStream(
            stream,
            _events(stream, ticket, include_usage),
            gateway.metrics.streams_open.labels(ticket.model),
            headers={**headers, "Cache-Control": "no-cache"},
        )
    done = outcome.completion
    if done is None:
        return error(outcome.status, outcome.message, outcome.code)
    return EncodableJSONResponse(
        {
            "id": _response_id(ticket),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": ticket.model,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": done.text},
                    "finish_reason": done.finish_reason,
                }
            ],
            "usage": {
                "prompt_tokens": done.usage.prompt_tokens,
                "completion_tokens": done.usage.completion_tokens,
                "total_tokens": done.usage.total_tokens,
            },
        },
        headers=headers,
    )


@router.get("/v1/models", response_model=None)
def list_models(request: Request, gateway: Current) -> Response:
    scope = gateway.gate.visible_models(bearer(request))
    if isinstance(scope, Decision):
        return refusal(gateway, scope)
    entries = []
    for name in scope:
        try:
            entries.append(model_entry(gateway.registry.get(name)))
        except NotFound:
            continue
    return EncodableJSONResponse({"object": "list", "data": entries})


@router.get("/v1/models/{model}", response_model=None)
def get_model(model: str, request: Request, gateway: Current) -> Response:
    scope = gateway.gate.visible_models(bearer(request))
    if isinstance(scope, Decision):
        return refusal(gateway, scope)
    if model not in scope:
        return error(404, f"model {model!r} does not exist", "model_not_found")
    return EncodableJSONResponse(model_entry(gateway.registry.get(model)))


@router.post("/v1/feedback", response_model=None, status_code=201)
def feedback(body: FeedbackRequest, request: Request, gateway: Current) -> Response:
    """Rate a response the key's holder received (1-5), with an optional comment."""
    done = gateway.gate.feedback(bearer(request), body.response_id, body.rating, body.comment)
    if isinstance(done, Decision):
        return refusal(gateway, done)
    gateway.metrics.feedback.labels(done["model"], str(body.rating)).inc()
    return EncodableJSONResponse(done, status_code=201)


def settle_usage(gateway: Gateway, ticket: Ticket, started: float, outcome: Outcome) -> None:
    """The request's one usage row (Gate.record_usage settles the reservation) and its metrics;
    called by the admission layer once, however the request ended."""
    elapsed = time.perf_counter() - started
    gateway.gate.record_usage(
        ticket,
        prompt_tokens=outcome.prompt_tokens,
        completion_tokens=outcome.completion_tokens,
        latency_s=elapsed,
        status=outcome.status,
    )
    m = gateway.metrics
    m.requests.labels(ticket.model, str(outcome.status)).inc()
    m.tokens.labels(ticket.model, "prompt").inc(outcome.prompt_tokens)
    m.tokens.labels(ticket.model, "completion").inc(outcome.completion_tokens)
    m.latency.labels(ticket.model).observe(elapsed)


async def _first_chunk(stream: Stream, request: Request) -> End | None:
    """Hold the response until the stream's first chunk (or its end), as vLLM and OpenAI do, so
    that a request that fails before answering gets its HTTP status, not an error event after a
    200. A client that hangs up meanwhile closes the stream: the generation stops at its next
    chunk and is cut off, having handed nothing over."""
    first = asyncio.ensure_future(stream.started())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait((first, gone), return_when=asyncio.FIRST_COMPLETED)
    finally:
        gone.cancel()
    if not first.done():
        stream.close()
        return await first  # the generation's end: cut off, and settled
    return first.result()


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _response_id(ticket: Ticket) -> str:
    return "chatcmpl-" + ticket.request_id.removeprefix("req_")


class EventStream(StreamingResponse):
    """Writes a stream's buffer to the client, and closes the buffer however the response ends
    (finished, or cancelled when the client disconnects), so that the generation stops at its
    next chunk instead of whenever the garbage collector runs."""

    def __init__(
        self,
        stream: Stream,
        events: AsyncIterator[str],
        open_streams: Gauge,
        headers: dict[str, str],
    ) -> None:
        super().__init__(events, media_type="text/event-stream", headers=headers)
        self._stream, self._open = stream, open_streams

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._open.inc()
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._stream.close()
            self._open.dec()


async def _events(stream: Stream, ticket: Ticket, include_usage: bool) -> AsyncIterator[str]:
    """Server-sent events in OpenAI's chunk format, read from the stream's buffer."""
    ident, created = _response_id(ticket), int(time.time())

    def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
        body = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": ticket.model,
            "choices": choices,
            **extra,
        }
        return f"data: {json.dumps(body)}\n\n"

    def delta(content: dict[str, Any], finish: str | None = None) -> str:
        return chunk([{"index": 0, "delta": content, "finish_reason": finish}])

    yield delta({"role": "assistant", "content": ""})
    while True:
        item = await stream.get()
        if isinstance(item, str):
            yield delta({"content": item})
            continue
        if item.code:  # failed or cut off: the status the request was settled with
            failure = {"error": {"message": item.message, "code": item.code}}
            yield f"data: {json.dumps(failure)}\n\n"
        else:
            yield delta({}, item.finish_reason)
            if include_usage and item.usage is not None:
                usage = {
                    "prompt_tokens": item.usage.prompt_tokens,
                    "completion_tokens": item.usage.completion_tokens,
                    "total_tokens": item.usage.total_tokens,
                }
                yield chunk([], usage=usage)
        yield "data: [DONE]\n\n"
        return
