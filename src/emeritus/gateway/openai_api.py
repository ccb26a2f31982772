"""The OpenAI-compatible routes: chat completions (plain and streamed) and the models a key may
use, with their lifecycle. Every request passes the gate first and is metered exactly once."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from emeritus.access import Decision, Ticket
from emeritus.errors import NotFound
from emeritus.gateway.common import Current, Gateway, bearer, error
from emeritus.gateway.lifecycle_headers import lifecycle_headers, model_entry
from emeritus.gateway.schemas import ChatCompletionRequest, FeedbackRequest
from emeritus.lifecycle import ModelInfo
from emeritus.runtime import BackendError, ChatRequest, LoadError, Message, Params

MESSAGE_OVERHEAD = 16  # tokens a chat template may add per message, for the reservation

router = APIRouter()


@router.post("/v1/chat/completions", response_model=None)
def chat_completions(body: ChatCompletionRequest, request: Request, gateway: Current) -> Response:
    reserve = body.limit + sum(len(m.content) + MESSAGE_OVERHEAD for m in body.messages)
    decision = gateway.gate.authorize(bearer(request), body.model, reserve_tokens=reserve)
    if not decision.allowed or decision.ticket is None:
        return _refusal(gateway, decision)
    ticket = decision.ticket
    info = ticket.info
    headers = lifecycle_headers(info, base_url=str(request.base_url).rstrip("/"))
    chat = ChatRequest(
        tuple(Message(m.role, m.content) for m in body.messages),
        Params(
            max_tokens=body.limit,
            temperature=body.temperature,
            top_p=body.top_p,
            seed=body.seed or 0,
            stop=body.stops,
        ),
    )
    if body.stream:
        include_usage = bool(body.stream_options and body.stream_options.include_usage)
        return StreamingResponse(
            _stream(gateway, ticket, info, chat, include_usage),
            media_type="text/event-stream",
            headers={**headers, "Cache-Control": "no-cache"},
        )
    started = time.perf_counter()
    try:
        with gateway.pool.use(body.model) as backend:
            done = backend.chat(chat)
    except (BackendError, LoadError) as exc:
        _settle(gateway, ticket, 0, 0, started, 502)
        return error(502, f"{body.model} failed to answer: {exc}", "backend_error")
    _settle(gateway, ticket, done.usage.prompt_tokens, done.usage.completion_tokens, started)
    return JSONResponse(
        {
            "id": "chatcmpl-" + ticket.request_id.removeprefix("req_"),
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.model,
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
        return _refusal(gateway, scope)
    entries = []
    for name in scope:
        try:
            entries.append(model_entry(gateway.registry.get(name)))
        except NotFound:
            continue
    return JSONResponse({"object": "list", "data": entries})


@router.get("/v1/models/{model}", response_model=None)
def get_model(model: str, request: Request, gateway: Current) -> Response:
    scope = gateway.gate.visible_models(bearer(request))
    if isinstance(scope, Decision):
        return _refusal(gateway, scope)
    if model not in scope:
        return error(404, f"model {model!r} does not exist", "model_not_found")
    return JSONResponse(model_entry(gateway.registry.get(model)))


@router.post("/v1/feedback", response_model=None, status_code=201)
def feedback(body: FeedbackRequest, request: Request, gateway: Current) -> Response:
    """Rate a response the key's holder received (1-5), with an optional comment."""
    done = gateway.gate.feedback(bearer(request), body.response_id, body.rating, body.comment)
    if isinstance(done, Decision):
        return _refusal(gateway, done)
    gateway.metrics.feedback.labels(done["model"], str(body.rating)).inc()
    return JSONResponse(done, status_code=201)


def _refusal(gateway: Gateway, decision: Decision) -> JSONResponse:
    assert decision.reason is not None
    gateway.metrics.denials.labels(str(decision.reason)).inc()
    headers = {}
    if decision.retry_after is not None:
        headers["Retry-After"] = str(decision.retry_after)
    if decision.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return JSONResponse(decision.error_body(), status_code=decision.status, headers=headers)


def _settle(
    gateway: Gateway,
    ticket: Ticket,
    prompt_tokens: int,
    completion_tokens: int,
    started: float,
    status: int = 200,
) -> None:
    elapsed = time.perf_counter() - started
    gateway.gate.record_usage(
        ticket,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        latency_s=elapsed,
        status=status,
    )
    m = gateway.metrics
    m.requests.labels(ticket.model, str(status)).inc()
    m.tokens.labels(ticket.model, "prompt").inc(prompt_tokens)
    m.tokens.labels(ticket.model, "completion").inc(completion_tokens)
    m.latency.labels(ticket.model).observe(elapsed)


def _stream(
    gateway: Gateway, ticket: Ticket, info: ModelInfo, chat: ChatRequest, include_usage: bool
) -> Iterator[str]:
    """Server-sent events in OpenAI's chunk format; the usage is recorded once, however the
    stream ends (finished, failed, or the client gone)."""
    ident = "chatcmpl-" + ticket.request_id.removeprefix("req_")
    created = int(time.time())

    def event(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> str:
        chunk = {
            "id": ident,
            "object": "chat.completion.chunk",
            "created": created,
            "model": info.name,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
            **extra,
        }
        return f"data: {json.dumps(chunk)}\n\n"

    started = time.perf_counter()
    prompt_tokens = completion_tokens = 0
    status = 200
    try:
        with gateway.pool.use(info.name) as backend:
            yield event({"role": "assistant", "content": ""})
            finish = "stop"
            for piece in backend.stream_chat(chat):
                if piece.usage is None and piece.text:
                    completion_tokens += 1  # a running count until the real usage arrives
                if piece.text:
                    yield event({"content": piece.text})
                if piece.usage is not None:
                    prompt_tokens = piece.usage.prompt_tokens
                    completion_tokens = piece.usage.completion_tokens
                if piece.finish_reason:
                    finish = piece.finish_reason
            yield event({}, finish)
            if include_usage:
                usage = {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                }
                chunk = {
                    "id": ident,
                    "object": "chat.completion.chunk",
                    "created": created,
                    "model": info.name,
                    "choices": [],
                    "usage": usage,
                }
                yield f"data: {json.dumps(chunk)}\n\n"
    except (BackendError, LoadError) as exc:
        status = 502
        failure = {"error": {"message": f"{info.name} failed: {exc}", "code": "backend_error"}}
        yield f"data: {json.dumps(failure)}\n\n"
    except GeneratorExit:
        status = 499  # the client went away: what was generated is still metered
        raise
    finally:
        _settle(gateway, ticket, prompt_tokens, completion_tokens, started, status)
    yield "data: [DONE]\n\n"
