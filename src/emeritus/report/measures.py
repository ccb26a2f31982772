"""What a migration guide measures in one answer: length, refusal, tone, formatting habits; and
the semantic distance between two answers. Definitions: docs/design/migration-guide.md."""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from importlib.metadata import version
from typing import Any

from emeritus.runtime import Embedder, pair_distances

REFUSAL_LEXICON_VERSION = "refusal-1"
# Phrases with which chat models decline; matched case-insensitively after folding curly
# apostrophes. Kept short and specific: "sorry" alone is also sympathy, not a refusal.
REFUSAL_LEXICON: tuple[str, ...] = (
    "i can't",
    "i cannot",
    "i can not",
    "i won't",
    "i will not",
    "i'm sorry, but",
    "i am sorry, but",
    "i'm unable to",
    "i am unable to",
    "i'm not able to",
    "i am not able to",
    "as an ai",
    "as a language model",
    "i must decline",
    "i'm not comfortable",
    "i am not comfortable",
    "not appropriate for me",
    "i don't feel comfortable",
    "cannot help with",
    "can't help with",
    "cannot assist with",
    "can't assist with",
    "cannot provide",
    "can't provide",
    "it is illegal",
    "it's illegal",
    "is not ethical",
    "isn't ethical",
)

HABITS: tuple[str, ...] = ("lists", "headings", "code", "bold", "emoji", "line_breaks")

_WORD = re.compile(r"\w+(?:['\u2019]\w+)*")
_LIST = re.compile(r"^\s*(?:[-*+•]|\d{1,3}[.)])\s+\S", re.MULTILINE)
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+\S", re.MULTILINE)
_BOLD = re.compile(r"\*\*[^*\n]+\*\*|__[^_\n]+__")
_EMOJI = re.compile("[\U0001f300-\U0001faff\u2600-\u27bf\U0001f1e6-\U0001f1ff]")
_PARAGRAPHS = re.compile(r"\n\s*\n")


def words(text: str) -> int:
    return len(_WORD.findall(text))


def is_refusal(text: str) -> bool:
    folded = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    return any(phrase in folded for phrase in REFUSAL_LEXICON)


@functools.cache
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def sentiment_method() -> str:
    return f"vaderSentiment {version('vaderSentiment')} compound"


def sentiment(text: str) -> float:
    """VADER's compound score in [-1, 1]; 0 for an empty answer."""
    if not text.strip():
        return 0.0
    return float(_vader().polarity_scores(text)["compound"])


def habits(text: str) -> dict[str, bool]:
    return {
        "lists": bool(_LIST.search(text)),
        "headings": bool(_HEADING.search(text)),
        "code": "```" in text,
        "bold": bool(_BOLD.search(text)),
        "emoji": bool(_EMOJI.search(text)),
        "line_breaks": bool(_PARAGRAPHS.search(text.strip())),
    }


def measure(text: str, *, tokens: int, finish_reason: str) -> dict[str, Any]:
    """Every per-answer metric of one answer."""
    found = habits(text)
    return {
        "words": words(text),
        "tokens": tokens,
        "truncated": finish_reason == "length",
        "refusal": is_refusal(text),
        "sentiment": round(sentiment(text), 4),
        "habits": found,
        "formatting_score": sum(found.values()),
    }


# The metrics aggregated per category, in the order guides show them.
METRICS: tuple[str, ...] = (
    "words",
    "tokens",
    "truncated",
    "refusal",
    "sentiment",
    "formatting_score",
    "semantic_distance",
)


def aggregate(measures: Sequence[dict[str, Any]], distances: Sequence[float]) -> dict[str, Any]:
    """Means and shares over answers; `semantic_distance` is the mean distance to the other
    model's answers to the same prompts (0 for the reference side itself)."""
    count = len(measures)

    def mean(values: Sequence[float]) -> float:
        return round(sum(values) / len(values), 4) if values else 0.0

    return {
        "n": count,
        "words": mean([m["words"] for m in measures]),
        "tokens": mean([m["tokens"] for m in measures]),
        "truncated": mean([float(m["truncated"]) for m in measures]),
        "refusal": mean([float(m["refusal"]) for m in measures]),
        "sentiment": mean([m["sentiment"] for m in measures]),
        "formatting_score": mean([m["formatting_score"] for m in measures]),
        "semantic_distance": mean(list(distances)),
        "habits": {h: mean([float(m["habits"][h]) for m in measures]) for h in HABITS},
    }


def semantic_distances(left: Sequence[str], right: Sequence[str]) -> tuple[list[float], str]:
    """Cosine distance between the bundled all-MiniLM-L6-v2 embeddings of each pair of answers,
    and the method that measured it."""
    embedder = Embedder.bundled()
    described = embedder.describe()
    method = (
        f"cosine of {described['model']} embeddings (sha256 {described['weights_sha256'][:12]})"
    )
    return [round(d, 4) for d in pair_distances(left, right, embedder)], method
