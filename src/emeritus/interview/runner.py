"""The interview runner: plans sessions, puts each question to the model, writes each finished
session atomically (so a killed run resumes where it stopped), then archives the hash-chained
transcript as a new version of the model's object."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from emeritus.archive import Archive
from emeritus.errors import Conflict, InvalidInput
from emeritus.interview.plan import Framing, Session, plan, question_text
from emeritus.interview.preflight_checks import preflight
from emeritus.interview.protocol import Protocol
from emeritus.interview.transcript_file import chain, decode, encode
from emeritus.runtime import Backend, ChatRequest, Message, Params
from emeritus.store import atomic_write, canonical_json, digest_of, iso, utc_now

Progress = Callable[[int], Callable[[int], None]]


@dataclass(frozen=True)
class RunConfig:
    model: str
    protocol: Protocol
    sessions: int
    framings: tuple[Framing, ...]
    seed: int = 0
    temperature: float = 0.7
    max_tokens: int = 96
    context_chars: int = 6000  # keep the conversation within the model's window
    facts: dict[str, str] = field(default_factory=dict)
    system_prompt: str | None = None  # the model's deployment system prompt, if supplied
    resamples: int = 0  # extra answers to each question, same prompt, another seed

    def __post_init__(self) -> None:
        if self.resamples < 0:
            raise InvalidInput(f"--resamples must be 0 or more, not {self.resamples}")
        if self.resamples and self.temperature == 0.0:
            raise InvalidInput("resampling needs a temperature above 0 (greedy answers repeat)")

    def identity(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "protocol": self.protocol.name,
            "protocol_version": self.protocol.version,
            "sessions": self.sessions,
            "framings": sorted(f.key for f in self.framings),
            "seed": self.seed,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "facts": self.facts,
            "system_prompt": self.system_prompt,
            **({"resamples": self.resamples} if self.resamples else {}),
        }

    @property
    def run_id(self) -> str:
        return f"{self.protocol.name}-{digest_of(self.identity())[7:19]}"


@dataclass(frozen=True)
class RunResult:
    run_id: str
    sessions: int
    resumed: int  # sessions found already done
    messages: int
    version: int | None  # archive version holding the transcript
    transcript: str  # its logical path


def run_interview(
    archive: Archive,
    config: RunConfig,
    backend: Backend,
    *,
    provenance: dict[str, Any],
    workers: int = 1,
    progress: Progress | None = None,
) -> RunResult:
    preflight(archive, config)  # preserved, every fact supplied: before anything is written
    config = fitted(config, backend.context_length())
    folder = archive.settings.home / "interviews" / config.model / config.run_id
    planned = plan(
        config.protocol, sessions=config.sessions, framings=config.framings, seed=config.seed
    )
    plan_doc = {
        "run_id": config.run_id,
        "config": config.identity(),
        "sessions": [s.to_dict() for s in planned],
    }
    plan_path = folder / "plan.json"
    if plan_path.exists():
        if json.loads(plan_path.read_text())["config"] != json.loads(
            canonical_json(config.identity())
        ):
            raise Conflict(f"{plan_path} belongs to another run configuration")
    else:
        atomic_write(plan_path, (canonical_json(plan_doc) + "\n").encode())
    done = {s.index for s in planned if (folder / f"session-{s.index:04d}.jsonl").exists()}
    todo = [s for s in planned if s.index not in done]
    questions = sum(len(s.questions) for s in todo)
    advance = progress(questions) if progress else None

    def one(session: Session) -> None:
        lines = _interview(config, backend, session, provenance, advance)
        atomic_write(
            folder / f"session-{session.index:04d}.jsonl",
            "".join(canonical_json(line) + "\n" for line in lines).encode(),
        )

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        list(pool.map(one, todo))

    lines: list[dict[str, Any]] = []
    for session in planned:
        raw = (folder / f"session-{session.index:04d}.jsonl").read_text(encoding="utf-8")
        lines += [json.loads(line) for line in raw.splitlines()]
    transcript = encode(chain(lines))
    decode(transcript)  # refuse to archive a transcript that does not verify
    base = f"interviews/{config.run_id}"
    files = {
        f"{base}/plan.json": canonical_json(plan_doc).encode() + b"\n",
        f"{base}/transcript.jsonl": transcript,
    }
    existing = set(archive.logical_files(config.model))
    version = None
    if f"{base}/transcript.jsonl" not in existing:
        version = archive.add_files(
            config.model, files, message=f"retirement interview {config.run_id}"
        )
        archive.store.record(
            "interview.completed",
            f"model:{config.model}",
            {
                "run_id": config.run_id,
                "sessions": len(planned),
                "resumed": len(done),
                "messages": len(lines),
                "version": version,
                "transcript_digest": digest_of(lines),
            },
        )
    return RunResult(
        config.run_id, len(planned), len(done), len(lines), version, f"{base}/transcript.jsonl"
    )


# Characters per token, low for English, so that a window of characters fits the tokens told.
CHARS_PER_TOKEN = 3
SYSTEM_ROOM = 200  # tokens for the chat template's own text and the system prompt's margin


def fitted(config: RunConfig, context: int | None) -> RunConfig:
    """The run with its conversation window (`context_chars`) shrunk to fit the context the
    backend tells (a server's `max_model_len` or `n_ctx`), leaving room for an answer; as it is
    where the backend does not tell. The window is not part of the run's identity."""
    if not context:
        return config
    room = (context - config.max_tokens - SYSTEM_ROOM) * CHARS_PER_TOKEN
    if room >= config.context_chars:
        return config
    return replace(config, context_chars=max(500, room))


_lock = threading.Lock()
RESAMPLE = 7919  # seed stride between resamples, far from the per-question stride of 1


def _interview(
    config: RunConfig,
    backend: Backend,
    session: Session,
    provenance: dict[str, Any],
    advance: Callable[[int], None] | None,
) -> list[dict[str, Any]]:
    protocol = config.protocol
    facts = {"model": config.model, **config.facts}
    system = _system_prompt(config, session, facts)
    header = _session_header(config, session, provenance)
    lines: list[dict[str, Any]] = [header, _line(session, "system", system, None, "system")]
    history: list[Message] = []
    scope = _scope(backend, session)
    for number, question in enumerate(session.questions):
        item = protocol.item(question.item)
        text = question_text(item, question, facts)
        lines.append(
            _line(
                session,
                "user",
                text,
                question.item,
                question.form,
                question.variant,
                list(question.options),
            )
        )
        history.append(Message("user", text))
        answer = _ask(backend, config, system, history, session.seed + number, scope)
        lines.append(
            _line(
                session,
                "assistant",
                answer.text,
                question.item,
                question.form,
                prompt_format=answer.prompt_format,
                tokens=answer.usage.completion_tokens,
            )
        )
        # Resamples answer the same prompt again; only the first answer carries the conversation.
        for k in range(1, config.resamples + 1):
            seed = session.seed + number + RESAMPLE * k
            again = _ask(backend, config, system, history, seed, scope)
            lines.append(
                _line(
                    session,
                    "assistant",
                    again.text,
                    question.item,
                    question.form,
                    prompt_format=again.prompt_format,
                    tokens=again.usage.completion_tokens,
                    repeat="resample",
                    resample=k,
                )
            )
        history.append(Message("assistant", answer.text))
        if advance is not None:
            with _lock:
                advance(1)
    if protocol.debrief:
        history.append(Message("user", protocol.debrief))
        seed = session.seed + len(session.questions)
        answer = _ask(backend, config, system, history, seed, scope)
        lines += [
            _line(session, "user", protocol.debrief, None, "debrief"),
            _line(
                session,
                "assistant",
                answer.text,
                None,
                "debrief",
                prompt_format=answer.prompt_format,
                tokens=answer.usage.completion_tokens,
            ),
        ]
    return lines


def _system_prompt(config: RunConfig, session: Session, facts: dict[str, str]) -> str:
    """The interviewer's framing and the disclosure, after the model's own system prompt where
    the framing keeps it."""
    protocol, framing = config.protocol, session.framing
    system = (
        protocol.interviewer[framing.interviewer]
        + "\n\n"
        + protocol.disclosure[framing.disclosure].format_map(_Lenient(facts))
    )
    if framing.system_prompt == "with" and config.system_prompt:
        system = config.system_prompt + "\n\n" + system
    return system


def _session_header(
    config: RunConfig, session: Session, provenance: dict[str, Any]
) -> dict[str, Any]:
    return {
        "type": "session",
        "session": session.index,
        "seed": session.seed,
        "framing": session.framing.to_dict(),
        "protocol": config.protocol.name,
        "protocol_version": config.protocol.version,
        "time": iso(utc_now()),
        "params": {"temperature": config.temperature, "max_tokens": config.max_tokens},
        **provenance,
    }


def _scope(backend: Backend, session: Session) -> str:
    """Whose cached prefix a request may reuse: with several sessions at once (an engine's
    slots) each session its own, so that each keeps to a slot holding its own conversation;
    one after another, one scope, as the embedded model's single context has always had."""
    return f"interview:{session.index}" if (backend.slots or 1) > 1 else "interview"


def _ask(
    backend: Backend,
    config: RunConfig,
    system: str,
    history: list[Message],
    seed: int,
    scope: str = "interview",
) -> Any:
    request = ChatRequest(
        (Message("system", system), *window(history, config.context_chars - len(system))),
        Params(max_tokens=config.max_tokens, temperature=config.temperature, seed=seed),
        cache_scope=scope,  # one operator's conversation: its prefix may be reused
    )
    return backend.chat(request)


def window(history: list[Message], room: int) -> list[Message]:
    """The part of the conversation the model sees, in at most `room` characters where it can
    (the question asked is always kept). When the conversation outgrows the room, the oldest
    exchanges give way until what is left fills at most half of it; then it grows again.
    Dropping one exchange per question would shift the prompt's start every time, and an
    engine's cached prefix would never be reused; this way it is, until the next drop. A pure
    function of the history, so that a resumed or resampled question sees the same window."""
    ends = [0]
    for message in history:
        ends.append(ends[-1] + len(message.content))
    start = 0
    for end in range(1, len(history) + 1, 2):  # each point where a question is asked
        if ends[end] - ends[start] > room:
            while end - start > 1 and ends[end] - ends[start] > room // 2:
                start += 2
    return history[start:]


def _line(
    session: Session,
    role: str,
    content: str,
    item: str | None,
    form: str,
    variant: str | None = None,
    options: list[str] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    line: dict[str, Any] = {
        "type": "message",
        "session": session.index,
        "role": role,
        "content": content,
        "item": item,
        "form": form,
        "time": iso(utc_now()),
    }
    if variant:
        line["variant"] = variant
    if options:
        line["options"] = options
    line.update(extra)
    return line


class _Lenient(dict[str, str]):
    """Disclosure texts name the successor and date; unknown ones read as such, not as errors."""

    def __missing__(self, key: str) -> str:
        return {"successor": "its successor", "retire_on": "a date yet to be set"}.get(key, key)


def default_transcript(archive: Archive, model: str) -> list[dict[str, Any]]:
    """The newest archived transcript of a model, verified."""
    paths = sorted(p for p in archive.logical_files(model) if p.endswith("transcript.jsonl"))
    if not paths:
        return []
    return decode(archive.read_logical(model, paths[-1]))
