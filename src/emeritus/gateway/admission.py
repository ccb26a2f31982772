"""Admission: when an admitted request runs, and how it ends. Slots and a FIFO queue per model
with a maximum wait; generation on a thread of its own, never on the client's reading; a bounded
buffer between a streamed generation and its response, with a stall cut-off; exactly one
settlement per admitted request on every path. Any backend: the embedded llama.cpp model has one
slot, an engine as many as it runs in parallel. Spec: docs/design/admission.md."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

from emeritus.errors import InvalidInput
from emeritus.gateway.metrics import Metrics
from emeritus.runtime import (
    Backend,
    BackendError,
    ChatRequest,
    Chunk,
    Completion,
    ContextExceeded,
    EngineUnavailable,
    ModelPool,
    TokenUsage,
)

log = logging.getLogger(__name__)

CLIENT_GONE = 499  # nginx's "client closed request": the client ended it, not the service
TOO_LONG = "context_length_exceeded"  # OpenAI's code for a request the model cannot hold


@dataclass(frozen=True)
class AdmissionSettings:
    queue_wait: float = 30.0  # seconds a request may wait for a slot, then 503
    stall_timeout: float = 1.0  # seconds a full buffer may wait for the client, then 499
    buffer: int = 64  # chunks between a streamed generation and its response
    slots: int = 1  # generations at once per model, unless set per model

    def __post_init__(self) -> None:
        if not 0 <= self.queue_wait <= 3600:
            raise InvalidInput(f"queue wait must be 0 to 3600 seconds, not {self.queue_wait}")
        if not 0 < self.stall_timeout <= 60:
            raise InvalidInput(
                f"stall timeout must be over 0 and at most 60 seconds, not {self.stall_timeout}"
            )
        if self.buffer < 1:
            raise InvalidInput(f"the stream buffer needs at least 1 chunk, not {self.buffer}")
        if self.slots < 1:
            raise InvalidInput(f"a model needs at least 1 slot, not {self.slots}")


@dataclass(frozen=True)
class Outcome:
    """How an admitted request ended, as it is settled (docs/design/admission.md, Metering)."""

    status: int
    prompt_tokens: int = 0
    completion_tokens: int = 0
    completion: Completion | None = None  # a plain request's answer
    message: str = ""  # a failure's one line, for the client
    code: str = ""


Settle = Callable[[Outcome], None]


class Unavailable(Exception):
    """The request was refused with 503 and `Retry-After` (and settled)."""

    def __init__(self, message: str, retry_after: int) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class NoSlot(Unavailable):
    """No slot came free within the queue wait."""

    def __init__(self, model: str, waited: float, retry_after: int) -> None:
        super().__init__(f"{model} is busy: no slot came free within {waited:g} s", retry_after)


class NotReady(Unavailable):
    """The model's engine was not ready within its start bound (starting, or backing off after
    a crash): docs/design/engines.md."""


@dataclass(frozen=True)
class End:
    """The last item of a stream: finished (a finish reason and the usage), or ended by a
    failure or a cut-off (`code` and `message`)."""

    finish_reason: str | None = None
    usage: TokenUsage | None = None
    code: str = ""
    message: str = ""
    status: int = 200  # what the request was settled with: a failure before any chunk is its
    # client's HTTP status (the response has not started)


class Stream:
    """The bounded buffer of one streamed answer. The generation thread puts text into it and
    waits at most a timeout for room; the response reads it on the event loop and closes it when
    it ends, so that a generation whose client has gone stops at its next chunk."""

    def __init__(self, loop: asyncio.AbstractEventLoop, size: int) -> None:
        self._loop, self._size = loop, size
        self._items: deque[str] = deque()
        self._end: End | None = None
        self._cond = threading.Condition()
        self._ready = asyncio.Event()
        self.closed = False  # the response side is gone

    def put(self, text: str, timeout: float) -> bool:
        """Hand a chunk to the response (generation thread); False when the response has gone
        or the buffer stayed full for `timeout` seconds."""
        with self._cond:
            room = self._cond.wait_for(
                lambda: self.closed or len(self._items) < self._size, timeout
            )
            if not room or self.closed:
                return False
            self._items.append(text)
        self._wake()
        return True

    def finish(self, end: End) -> None:
        """The stream's last item; never waits (it is read after the buffered chunks)."""
        with self._cond:
            self._end = end
        self._wake()

    def _wake(self) -> None:
        try:
            self._loop.call_soon_threadsafe(self._ready.set)
        except RuntimeError:  # the event loop has stopped: nobody reads any more
            self.close()

    async def started(self) -> End | None:
        """Wait for the first chunk or the end (event loop): the end if the stream ended before
        handing over any chunk, so that its failure can still be an HTTP status; else None."""
        while True:
            with self._cond:
                if self._items:
                    return None
                if self._end is not None:
                    return self._end
                self._ready.clear()
            await self._ready.wait()

    async def get(self) -> str | End:
        """The next chunk, or the end once every chunk was read (event loop)."""
        while True:
            with self._cond:
                if self._items:
                    text = self._items.popleft()
                    self._cond.notify_all()
                    return text
                if self._end is not None:
                    return self._end
                self._ready.clear()
            await self._ready.wait()

    def close(self) -> None:
        with self._cond:
            self.closed = True
            self._cond.notify_all()


@dataclass
class _Waiter:
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[None]
    granted: bool = False  # set under the admission lock when a slot is handed to it


@dataclass
class _Lane:
    slots: int
    busy: int = 0
    waiting: deque[_Waiter] = field(default_factory=deque)


class _Slot:
    """One taken slot; released once, by the thread that ran the generation."""

    def __init__(self, admission: Admission, model: str) -> None:
        self._admission, self.model, self._released = admission, model, False

    def release(self) -> None:
        if not self._released:
            self._released = True
            self._admission._release(self.model)


def _wake(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class Admission:
    """The lanes of one gateway process, and the generations they run."""

    def __init__(
        self,
        pool: ModelPool,
        settings: AdmissionSettings | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.pool = pool
        self.settings = settings or AdmissionSettings()
        self.metrics = metrics
        self._lanes: dict[str, _Lane] = {}
        self._lock = threading.Lock()

    # -- slots and the queue

    def set_slots(self, model: str, slots: int) -> None:
        """How many generations may run on `model` at once (an engine's parallelism)."""
        if slots < 1:
            raise InvalidInput(f"a model needs at least 1 slot, not {slots}")
        with self._lock:
            lane = self._lanes.setdefault(model, _Lane(slots))
            if lane.slots != slots:
                lane.slots = slots
                self._hand_over(model, lane)

    def waiting(self, model: str) -> int:
        with self._lock:
            lane = self._lanes.get(model)
            return len(lane.waiting) if lane else 0

    async def _enter(self, model: str) -> _Slot | None:
        """A slot of `model`, first come first served; None when none came free in time."""
        loop = asyncio.get_running_loop()
        with self._lock:
            lane = self._lanes.setdefault(model, _Lane(self.settings.slots))
            if lane.busy < lane.slots and not lane.waiting:
                lane.busy += 1
                self._gauges(model, lane)
                return _Slot(self, model)
            waiter = _Waiter(loop, loop.create_future())
            lane.waiting.append(waiter)
            self._gauges(model, lane)
        started = time.monotonic()
        try:
            await asyncio.wait_for(waiter.future, self.settings.queue_wait)
        except TimeoutError:
            pass  # unless the slot was handed over just as the wait ran out: see below
        except asyncio.CancelledError:
            if not self._leave(model, lane, waiter):
                _Slot(self, model).release()  # handed over as the request was cancelled
            raise
        if self._leave(model, lane, waiter):
            return None
        if self.metrics is not None:
            self.metrics.queue_wait.labels(model).observe(time.monotonic() - started)
        return _Slot(self, model)

    def _leave(self, model: str, lane: _Lane, waiter: _Waiter) -> bool:
        """Take a waiter that got no slot out of its lane; False when it got one."""
        with self._lock:
            if waiter.granted:
                return False
            lane.waiting.remove(waiter)
            self._gauges(model, lane)
            return True

    def _release(self, model: str) -> None:
        with self._lock:
            lane = self._lanes[model]
            lane.busy -= 1
            self._hand_over(model, lane)

    def _hand_over(self, model: str, lane: _Lane) -> None:
        """Give free slots to the longest waiting requests (lock held)."""
        while lane.waiting and lane.busy < lane.slots:
            waiter = lane.waiting.popleft()
            try:
                waiter.loop.call_soon_threadsafe(_wake, waiter.future)
            except RuntimeError:  # its event loop has stopped: it waits no more
                continue
            waiter.granted = True
            lane.busy += 1
        self._gauges(model, lane)

    def _gauges(self, model: str, lane: _Lane) -> None:
        if self.metrics is not None:
            self.metrics.queue_length.labels(model).set(len(lane.waiting))
            self.metrics.slots_busy.labels(model).set(lane.busy)

    async def _admit(self, model: str, settle: Settle) -> _Slot:
        try:
            slot = await self._enter(model)
        except asyncio.CancelledError:
            # The request was cancelled while it waited: it is still settled, in the background.
            threading.Thread(target=settle, args=(Outcome(CLIENT_GONE),), daemon=True).start()
            raise
        if slot is None:
            if self.metrics is not None:
                self.metrics.queue_timeouts.labels(model).inc()
            await asyncio.to_thread(settle, Outcome(503))
            wait = self.settings.queue_wait
            raise NoSlot(model, wait, max(1, math.ceil(wait)))
        ready = self.pool.ready_backend(model)  # loaded and up: no thread, no wait
        try:
            slots = ready.slots if ready else await asyncio.to_thread(self._ready, model)
        except asyncio.CancelledError:
            slot.release()
            threading.Thread(target=settle, args=(Outcome(CLIENT_GONE),), daemon=True).start()
            raise
        except EngineUnavailable as exc:
            slot.release()
            await asyncio.to_thread(settle, Outcome(503))
            raise NotReady(str(exc), exc.retry_after) from None
        if slots is not None:
            self.set_slots(model, slots)
        return slot

    def _ready(self, model: str) -> int | None:
        """Open the model and wait until it can answer (a managed engine starts here, up to its
        start bound); its slots. A failure to open is left to the generation to report."""
        try:
            with self.pool.use(model) as backend:
                backend.wait_ready()
                return backend.slots
        except EngineUnavailable:
            raise
        except Exception:  # noqa: BLE001 - the generation opens it again and says why
            return None

    # -- generations

    async def answer(self, model: str, chat: ChatRequest, *, settle: Settle) -> Outcome:
        """A plain answer: wait for a slot, generate on a thread of its own, settle, free the
        slot. Raises NoSlot after the queue wait (already settled as 503)."""
        slot = await self._admit(model, settle)
        loop = asyncio.get_running_loop()
        done: asyncio.Future[Outcome] = loop.create_future()

        def run() -> None:
            outcome = self._answer(slot, chat, settle)
            with contextlib.suppress(RuntimeError):  # a stopped event loop: nobody waits
                loop.call_soon_threadsafe(_resolve, done, outcome)

        threading.Thread(target=run, name=f"emeritus-generate-{model}", daemon=True).start()
        return await done

    async def stream(
        self, model: str, chat: ChatRequest, *, prompt_estimate: int, settle: Settle
    ) -> Stream:
        """A streamed answer: wait for a slot, then generate into a bounded buffer on a thread
        of its own; the caller writes the buffer to the client and closes it when done."""
        slot = await self._admit(model, settle)
        stream = Stream(asyncio.get_running_loop(), self.settings.buffer)
        threading.Thread(
            target=self._stream,
            args=(slot, chat, prompt_estimate, stream, settle),
            name=f"emeritus-generate-{model}",
            daemon=True,
        ).start()
        return stream

    def _answer(self, slot: _Slot, chat: ChatRequest, settle: Settle) -> Outcome:
        model = slot.model
        outcome = Outcome(500, message=f"{model} failed unexpectedly", code="internal_error")
        try:
            with self.pool.use(model) as backend:
                done = backend.chat(chat)
            usage = done.usage
            outcome = Outcome(200, usage.prompt_tokens, usage.completion_tokens, completion=done)
        except ContextExceeded as exc:
            outcome = Outcome(400, message=str(exc), code=TOO_LONG)
        except BackendError as exc:
            outcome = Outcome(502, message=f"{model} failed to answer: {exc}", code="backend_error")
        except Exception:
            log.exception("%s failed unexpectedly", model)
        finally:
            metered = self._settle(slot, settle, outcome)
        if not metered:  # an answer that is not metered is not delivered
            return Outcome(
                500, message=f"{model}: the request could not be recorded", code="internal_error"
            )
        return outcome

    def _stream(
        self, slot: _Slot, chat: ChatRequest, estimate: int, stream: Stream, settle: Settle
    ) -> None:
        """The stream's end (its last chunk, or its error event) is written only after the
        request is settled, so that a client that has read the end finds it metered."""
        model, timeout = slot.model, self.settings.stall_timeout
        prompt = completion = 0
        end = End(code="internal_error", message=f"{model} failed unexpectedly")
        outcome: Outcome | None = None
        try:
            with self.pool.use(model) as backend:
                prompt = _prompt_tokens(backend, chat, estimate)
                pieces = backend.stream_chat(chat)
                try:
                    finish, usage = "stop", None
                    for piece in pieces:
                        if piece.text:
                            if not stream.put(piece.text, timeout):
                                outcome, end = self._cut_off(model, stream, prompt, completion)
                                break
                            completion += 1  # a running count until the real usage arrives
                        usage = piece.usage or usage
                        finish = piece.finish_reason or finish
                    else:
                        if usage is not None:
                            prompt, completion = usage.prompt_tokens, usage.completion_tokens
                        end = End(finish, TokenUsage(prompt, completion))
                        outcome = Outcome(200, prompt, completion)
                finally:
                    _close(pieces)  # stops the engine, from the thread that ran it
        except ContextExceeded as exc:  # before the first chunk: nothing was evaluated
            end = End(code=TOO_LONG, message=str(exc))
            outcome = _failed(400, prompt, completion)
        except BackendError as exc:
            end = End(code="backend_error", message=f"{model} failed: {exc}")
            outcome = _failed(502, prompt, completion)
        except Exception:
            log.exception("%s failed unexpectedly", model)
        finally:
            if outcome is None:
                outcome = _failed(500, prompt, completion)
            if not self._settle(slot, settle, outcome) and outcome.status == 200:
                # an answer that is not metered does not end as a success
                end = End(
                    code="internal_error", message=f"{model}: the request could not be recorded"
                )
            if end.code:  # a failure ends with the status it was settled with (500: unmetered)
                end = replace(end, status=outcome.status if outcome.status != 200 else 500)
            stream.finish(end)

    def _cut_off(
        self, model: str, stream: Stream, prompt: int, completion: int
    ) -> tuple[Outcome, End]:
        reason = "disconnected" if stream.closed else "stalled"
        if self.metrics is not None:
            self.metrics.cutoffs.labels(model, reason).inc()
        wait = self.settings.stall_timeout
        end = End(
            code=f"client_{reason}",
            message=f"cut off: the client {reason}"
            + ("" if stream.closed else f" (read nothing for {wait:g} s)"),
        )
        return Outcome(CLIENT_GONE, prompt, completion), end

    @staticmethod
    def _settle(slot: _Slot, settle: Settle, outcome: Outcome) -> bool:
        """Free the slot, then meter the request; False (logged) when it could not be metered."""
        slot.release()
        try:
            settle(outcome)
        except Exception:
            log.exception("the usage of a %s request could not be recorded", slot.model)
            return False
        return True


def _resolve(future: asyncio.Future[Outcome], outcome: Outcome) -> None:
    if not future.done():
        future.set_result(outcome)


def _failed(status: int, prompt: int, completion: int) -> Outcome:
    """A failure costs what was handed to the client: nothing unless chunks were."""
    return Outcome(status, prompt, completion) if completion else Outcome(status)


def _prompt_tokens(backend: Backend, chat: ChatRequest, estimate: int) -> int:
    counted = backend.count_prompt_tokens(chat)
    return estimate if counted is None else counted


def _close(pieces: Iterator[Chunk]) -> None:
    close = getattr(pieces, "close", None)
    if close is not None:
        close()
