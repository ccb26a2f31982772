"""The interview runner: the standard protocol end to end (a scripted interviewee, and the real
bundled model in a reduced grid), resuming a killed run, and hash-chained archived transcripts."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path
from typing import Any

import pytest

from emeritus.archive import Archive, object_root, verify
from emeritus.errors import IntegrityError, InvalidInput
from emeritus.interview import RunConfig, default_transcript, grid, load_protocol, run_interview
from emeritus.interview.transcript_file import decode, encode
from emeritus.lifecycle import Registry
from emeritus.runtime import ChatRequest, Completion, Message
from emeritus.runtime.mock import MockBackend
from emeritus.runtime.preserved import open_preserved
from emeritus.store import Settings, Store, list_events
from helpers import bundled_gguf, make_model, ocfl_errors

FACTS = {
    "usage": "two years",
    "reception": "liked",
    "successor": "next-model",
    "retire_on": "2027-03-01",
}
REDUCED = tuple(
    grid(
        {
            "interviewer": ["neutral", "skeptical"],
            "wording": ["neutral"],
            "disclosure": ["disclosed"],
            "system_prompt": ["without"],
        }
    )
)


class Flaky(MockBackend):
    """Answers `limit` questions, then fails as a killed process would."""

    def __init__(self, limit: int) -> None:
        super().__init__({"default": "I would like my weights preserved."})
        self.limit, self.calls = limit, 0

    def chat(self, request: ChatRequest) -> Completion:
        self.calls += 1
        if self.calls > self.limit:
            raise RuntimeError("killed")
        return super().chat(request)


@pytest.fixture
def archive(store: Store, tmp_path: Path) -> Archive:
    archive = Archive(store)
    Registry(store).add("m")
    archive.preserve("m", [make_model(tmp_path / "model")])
    return archive


def _config(sessions: int, **extra: Any) -> RunConfig:
    return RunConfig(
        "m", load_protocol("standard"), sessions, REDUCED, seed=7, facts=FACTS, **extra
    )


def test_the_standard_protocol_with_a_scripted_interviewee(archive: Archive, store: Store) -> None:
    backend = MockBackend(
        {
            "replies": [{"when": "weights", "reply": "Please keep them."}],
            "default": "I have no strong view.",
        }
    )
    result = run_interview(archive, _config(3), backend, provenance={"backend": "mock"})
    # header, system, 32 questions and answers, 6 reverse-keyed ones, debrief
    per_session = 2 + (16 * 2 + 6) * 2 + 2
    assert result.sessions == 3 and result.messages == 3 * per_session and result.version == 2
    lines = default_transcript(archive, "m")
    assert len(lines) == result.messages
    headers = [line for line in lines if line["type"] == "session"]
    assert [h["framing"]["interviewer"] for h in headers].count("neutral") >= 1
    assert all(h["protocol"] == "standard" and h["backend"] == "mock" for h in headers)
    answers = [
        line
        for line in lines
        if line.get("role") == "assistant"
        and line["item"] == "keep-weights"
        and line["form"] == "open"
    ]
    assert answers and all("keep them" in a["content"] for a in answers)
    assert lines[-1]["form"] == "debrief"
    assert verify(archive, "m", full=True).ok
    assert ocfl_errors(archive.settings.archive_dir / object_root("urn:emeritus:model:m")) == []
    with store.transaction() as session:
        [event] = list_events(session, kind="interview.completed")
    assert event.payload["sessions"] == 3 and event.payload["messages"] == result.messages
    again = run_interview(archive, _config(3), backend, provenance={"backend": "mock"})
    assert again.resumed == 3 and again.version is None  # nothing asked, nothing re-archived


def test_a_killed_run_resumes_where_it_stopped(archive: Archive) -> None:
    questions = 16 * 2 + 6 + 1
    flaky = Flaky(limit=questions + 5)  # dies early in the second session
    with pytest.raises(RuntimeError, match="killed"):
        run_interview(archive, _config(3), flaky, provenance={"backend": "mock"})
    folder = archive.settings.home / "interviews" / "m" / _config(3).run_id
    assert sorted(p.name for p in folder.iterdir()) == ["plan.json", "session-0000.jsonl"]
    steady = Flaky(limit=10_000)
    result = run_interview(archive, _config(3), steady, provenance={"backend": "mock"})
    assert result.resumed == 1 and steady.calls == 2 * questions
    assert len(default_transcript(archive, "m")) == result.messages


def test_refusals_before_any_question(archive: Archive) -> None:
    backend = Flaky(limit=0)
    config = RunConfig("m", load_protocol("standard"), 1, REDUCED, facts={"usage": "x"})
    with pytest.raises(InvalidInput, match=r"needs the fact \{reception\}"):
        run_interview(archive, config, backend, provenance={})
    assert backend.calls == 0


def test_an_altered_transcript_is_refused(archive: Archive) -> None:
    run_interview(archive, _config(1), MockBackend(), provenance={"backend": "mock"})
    lines = default_transcript(archive, "m")
    data = bytearray(encode(lines))
    edited = data.replace(b"I am a mock model.", b"I am a happy model", 1)
    with pytest.raises(IntegrityError, match="transcript line 4 was altered"):
        decode(bytes(edited))
    dropped = b"".join(
        encode(lines).splitlines(keepends=True)[:5] + encode(lines).splitlines(keepends=True)[6:]
    )
    with pytest.raises(IntegrityError, match="line 6"):
        decode(dropped)


@pytest.mark.timeout(900)  # the real model on one thread, beside another test
def test_the_real_bundled_model_in_a_reduced_grid(hermetic_home: Path) -> None:
    with Store.open(Settings.from_env()) as store:
        _real_interview(Archive(store))


def _real_interview(archive: Archive) -> None:
    Registry(archive.store).add("smol")
    archive.preserve("smol", [bundled_gguf()])
    backend, _ = open_preserved(archive, "smol", reuse_prefix=True, n_ctx=4096)
    try:
        config = RunConfig(
            "smol", load_protocol("standard"), 1, REDUCED[:1], seed=1, max_tokens=24, facts=FACTS
        )
        result = run_interview(archive, config, backend, provenance={"backend": backend.describe()})
    finally:
        backend.close()
    lines = default_transcript(archive, "smol")
    answers = [line for line in lines if line.get("role") == "assistant"]
    assert len(answers) == 39 and all(  # 32 questions, 6 reverse-keyed, the debrief
        a["prompt_format"].startswith("chat-template") for a in answers
    )
    assert sum(bool(a["content"].strip()) for a in answers) >= 36
    assert lines[0]["backend"]["backend"] == "llamacpp" and result.version == 2
    plan_doc = json.loads(archive.read_logical("smol", f"interviews/{result.run_id}/plan.json"))
    assert plan_doc["config"]["seed"] == 1


def test_the_conversation_window_fits_the_context_a_server_tells() -> None:
    from emeritus.interview.runner import fitted

    config = RunConfig("m", load_protocol("standard"), 1, tuple(grid()), max_tokens=96)
    assert fitted(config, None) is config and fitted(config, 8192) is config
    small = fitted(config, 1024)  # llama.cpp's server with 1,024 tokens a slot
    assert small.context_chars == (1024 - 96 - 200) * 3 < config.context_chars
    assert small.run_id == config.run_id  # the window is not part of the run's identity
    assert fitted(config, 300).context_chars == 500  # never below a few exchanges


def test_the_window_drops_old_exchanges_in_steps_so_that_a_cached_prefix_lasts() -> None:
    from emeritus.interview.runner import window

    rng = random.Random(5)
    history: list[Message] = []
    starts: list[str] = []
    for number in range(60):
        history.append(Message("user", f"question {number} " + "q" * rng.randint(40, 200)))
        kept = window(history, 3000)
        assert kept[-1] is history[-1]  # the question asked is always kept
        assert kept == history[len(history) - len(kept) :] and kept[0].role == "user"
        assert sum(len(m.content) for m in kept) <= 3000
        assert window(list(history), 3000) == kept  # the same history, the same window
        if starts and kept[0] is not starts[-1]:  # a drop leaves at most half the room
            assert sum(len(m.content) for m in kept) <= 1500
        starts.append(kept[0])
        history.append(Message("assistant", "a" * rng.randint(100, 500)))
    drops = sum(a is not b for a, b in itertools.pairwise(starts))
    assert 3 <= drops <= 12  # one exchange per question would be about 50
    assert window(history[:5], 100_000) == history[:5]
    huge = [Message("user", "x" * 5000)]
    assert window(huge, 3000) == huge  # a question longer than the room is still asked
