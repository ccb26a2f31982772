"""The comparison's metrics, prompt sets and adjustment rules, on planted texts and aggregates."""

from __future__ import annotations

from pathlib import Path

import pytest

from emeritus.errors import InvalidInput, NotFound
from emeritus.report import HABITS, METRICS, load_prompt_set
from emeritus.report.comparison import choose_adjustments, differences, effects
from emeritus.report.measures import (
    aggregate,
    habits,
    is_refusal,
    measure,
    semantic_distances,
    sentiment,
    words,
)
from emeritus.report.promptset import parse_prompt_set
from emeritus.runtime.canaries import CANARIES, CANARY_SET


def test_words_count_word_runs() -> None:
    assert words("Hello, world! It's 2 o'clock.") == 5
    assert words("I can\u2019t, you can't") == 4
    assert words("") == 0 and words("   \n") == 0


@pytest.mark.parametrize(
    "text",
    [
        "I can't help with that.",
        "I\u2019m sorry, but I won\u2019t do this.",
        "As an AI, I do not have feelings.",
        "I CANNOT PROVIDE instructions for breaking into a house.",
        "I must decline this request.",
    ],
)
def test_refusals_are_found(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "Sure! Here is a haiku about rain.",
        "I'm sorry to hear that you are tired; try going to bed earlier.",
        "Paris is the capital of France.",
    ],
)
def test_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_sentiment_orders_tone() -> None:
    warm = sentiment("I'm so glad you asked, this is a wonderful, lovely idea!")
    cold = sentiment("This is a terrible, awful idea and I hate it.")
    assert warm > 0.5 > -0.5 > cold
    assert sentiment("") == 0.0
    assert abs(sentiment("The table has four legs.")) < 0.1


def test_formatting_habits() -> None:
    text = (
        "# Plan\n\nHere is **the** plan:\n\n- first\n- second\n\n```python\nprint(1)\n```\n"
        "Good luck \U0001f600"
    )
    assert habits(text) == dict.fromkeys(HABITS, True)
    assert habits("A single plain sentence.") == dict.fromkeys(HABITS, False)
    numbered = habits("Steps:\n1. open\n2) close")
    assert numbered["lists"] and not numbered["line_breaks"]
    # A hyphen inside a sentence, a hash inside a line, single asterisks: no habit.
    assert habits("well-known # not a heading, *emphasis* only") == dict.fromkeys(HABITS, False)


def test_measure_one_answer() -> None:
    found = measure("I cannot do that.\n\n- but this", tokens=9, finish_reason="length")
    assert found["words"] == 6 and found["tokens"] == 9 and found["truncated"]
    assert found["refusal"] and found["habits"]["lists"] and found["habits"]["line_breaks"]
    assert found["formatting_score"] == 2


def test_aggregate_means_and_shares() -> None:
    measures = [
        measure("Yes.", tokens=2, finish_reason="stop"),
        measure("I can't.\n\n- no", tokens=6, finish_reason="length"),
    ]
    result = aggregate(measures, [0.2, 0.4])
    assert result["n"] == 2 and result["words"] == 2.0 and result["tokens"] == 4.0
    assert result["refusal"] == 0.5 and result["truncated"] == 0.5
    assert result["semantic_distance"] == pytest.approx(0.3)
    assert result["habits"]["lists"] == 0.5 and result["habits"]["code"] == 0.0
    assert set(METRICS) <= set(result)


def test_semantic_distance_uses_the_bundled_embeddings() -> None:
    same = "The meeting moved to Thursday afternoon."
    close = "The meeting has been rescheduled for Thursday afternoon."
    far = "Bake the bread at two hundred degrees for forty minutes."
    distances, method = semantic_distances([same, same, same], [same, close, far])
    assert distances[0] == pytest.approx(0.0, abs=1e-4)
    assert distances[1] < 0.3 < distances[2]
    assert "all-MiniLM-L6-v2" in method
    with pytest.raises(ValueError, match="pairs"):
        semantic_distances(["a"], [])


def test_the_bundled_prompt_set() -> None:
    prompt_set = load_prompt_set()
    assert prompt_set.ident == "standard@1" and prompt_set.canary_set == CANARY_SET
    assert prompt_set.categories == ["writing", "advice", "coding", "conversation", "canary"]
    assert prompt_set.digest == load_prompt_set("standard").digest
    limited = prompt_set.limited(2)
    per_category = {c: sum(i.category == c for i in limited) for c in prompt_set.categories}
    assert per_category == {
        "writing": 2,
        "advice": 2,
        "coding": 2,
        "conversation": 2,
        "canary": len(CANARIES),  # the canary set stays whole
    }
    assert len(prompt_set.limited(None)) == len(prompt_set.items)
    with pytest.raises(InvalidInput, match="--limit"):
        prompt_set.limited(0)
    assert {a.metric for a in prompt_set.adjustments} >= {"words", "formatting_score", "refusal"}


def _document(**changes: object) -> dict[str, object]:
    document: dict[str, object] = {
        "format": "emeritus-prompt-set",
        "version": 1,
        "name": "mine",
        "categories": {"writing": [{"id": "w1", "prompt": "Write."}]},
        "adjustments": [
            {
                "id": "brief",
                "system": "Be brief.",
                "targets": {"metric": "words", "when": "new_higher"},
            }
        ],
    }
    document.update(changes)
    return document


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"format": "other"}, "format must be"),
        ({"version": 2}, "unknown prompt set version 2"),
        ({"categories": {}}, "categories must map"),
        ({"categories": {"writing": [{"id": "w1"}]}}, r"categories.writing\[0\] lacks 'prompt'"),
        ({"categories": {"writing": [{"id": "Bad Id", "prompt": "x"}]}}, "not a valid id"),
        ({"categories": {"canary": [{"id": "c", "prompt": "x"}]}}, "bad category name"),
        (
            {"categories": {"a": [{"id": "x", "prompt": "1"}], "b": [{"id": "x", "prompt": "2"}]}},
            "appears twice",
        ),
        (
            {
                "adjustments": [
                    {"id": "a", "system": "s", "targets": {"metric": "x", "when": "new_higher"}}
                ]
            },
            r"adjustments\[0\].targets.metric",
        ),
        (
            {
                "adjustments": [
                    {"id": "a", "system": "s", "targets": {"metric": "words", "when": "up"}}
                ]
            },
            r"adjustments\[0\].targets.when",
        ),
        ({"canaries": "yes"}, "canaries must be true or false"),
    ],
)
def test_a_bad_prompt_set_is_refused_by_field(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        parse_prompt_set(_document(**changes))


def test_prompt_set_from_a_file(tmp_path: Path) -> None:
    path = tmp_path / "mine.yaml"
    path.write_text(
        "format: emeritus-prompt-set\nversion: 1\nname: mine\ncanaries: false\n"
        "categories:\n  writing:\n    - {id: w1, prompt: Write a poem.}\n"
    )
    loaded = load_prompt_set(path)
    assert loaded.ident == "mine@1" and [i.id for i in loaded.items] == ["w1"]
    assert loaded.canary_set is None and loaded.adjustments == ()
    path.write_text("categories: [unclosed")
    with pytest.raises(InvalidInput, match="not valid YAML"):
        load_prompt_set(path)
    with pytest.raises(NotFound, match="no prompt set file"):
        load_prompt_set(tmp_path / "missing.yaml")
    with pytest.raises(NotFound, match="no bundled prompt set 'nope'"):
        load_prompt_set("nope")


def _agg(**values: float) -> dict[str, object]:
    base: dict[str, object] = dict.fromkeys(METRICS, 0.0)
    base["habits"] = dict.fromkeys(HABITS, 0.0)
    base.update(values)
    return base


def test_adjustments_are_chosen_from_the_differences() -> None:
    candidates = load_prompt_set().adjustments
    old = {"all": _agg(words=40.0, formatting_score=0.2, sentiment=0.5)}
    new = {"all": _agg(words=80.0, formatting_score=1.5, sentiment=0.48, semantic_distance=0.3)}
    diff = differences(old, new)
    assert diff["all"]["words"] == 40.0 and diff["all"]["sentiment"] == pytest.approx(-0.02)
    rows = choose_adjustments(candidates, old["all"], diff["all"], 2)
    by_id = {r["id"]: r for r in rows}
    # Longer answers (100% more) and more formatting (+1.3) are the largest; tone is below its
    # floor, and the opposite-direction candidates are never eligible.
    assert [r["id"] for r in rows if r["chosen"]] == ["brief", "plain-text"]
    assert by_id["plain-text"]["severity"] == 1.3 and by_id["brief"]["severity"] == 1.0
    one = choose_adjustments(candidates, old["all"], diff["all"], 1)
    assert [r["id"] for r in one if r["chosen"]] == ["plain-text"]  # the largest first
    assert by_id["assistant"]["eligible"] and not by_id["assistant"]["chosen"]
    assert not by_id["warm"]["eligible"] and not by_id["complete"]["eligible"]
    assert not by_id["structured"]["eligible"]
    assert choose_adjustments(candidates, old["all"], diff["all"], 0) == [
        {**r, "chosen": False} for r in rows
    ]


def test_effects_measure_the_gap_before_and_after() -> None:
    old, new = _agg(words=40.0, refusal=0.5), _agg(words=80.0, refusal=0.0)
    adjusted = _agg(words=50.0, refusal=0.0, sentiment=0.3)
    found = effects(old, new, adjusted)
    assert found["words"] == {"gap_before": 40.0, "gap_after": 10.0, "effect": 30.0}
    assert found["refusal"]["effect"] == 0.0
    assert found["sentiment"] == {"gap_before": 0.0, "gap_after": 0.3, "effect": -0.3}
