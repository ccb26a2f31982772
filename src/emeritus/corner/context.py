"""What a model may read before it writes: news items from a local feed or folder, and its own
previous posts, cut to a character budget so the prompt fits a small model's window."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from emeritus.errors import InvalidInput

SUMMARY_CHARS = 200
TEXT_SUFFIXES = (".txt", ".md")


@dataclass(frozen=True)
class ContextItem:
    title: str
    summary: str

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "summary": self.summary}


def check_news_source(path: Path) -> Path:
    """A feed file or a folder of text files; refused at `corner open`, not at the first tick."""
    path = path.expanduser().resolve()
    if path.is_dir():
        return path
    if not path.is_file():
        raise InvalidInput(f"news source {path} is neither a feed file nor a folder")
    import feedparser

    parsed = feedparser.parse(path.read_bytes())
    if parsed.bozo and not parsed.entries:
        raise InvalidInput(
            f"news source {path} is not an Atom or RSS feed: {parsed.bozo_exception}"
        )
    return path


def _clip(text: str, limit: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def news_items(source: Path, limit: int) -> list[ContextItem]:
    """The newest `limit` items: feed entries in feed order, or files newest first."""
    if limit <= 0:
        return []
    if source.is_dir():
        files = sorted(
            (p for p in source.iterdir() if p.is_file() and p.suffix in TEXT_SUFFIXES),
            key=lambda p: (p.stat().st_mtime, p.name),
            reverse=True,
        )
        items = []
        for file in files[:limit]:
            lines = file.read_text(encoding="utf-8", errors="replace").strip().splitlines()
            title = lines[0].lstrip("# ").strip() if lines else file.stem
            items.append(ContextItem(_clip(title, 120), _clip(" ".join(lines[1:]), SUMMARY_CHARS)))
        return items
    if not source.is_file():
        raise InvalidInput(f"news source {source} has gone")
    import feedparser

    parsed = feedparser.parse(source.read_bytes())
    return [
        ContextItem(
            _clip(str(entry.get("title", "untitled")), 120),
            _clip(str(entry.get("summary", "")), SUMMARY_CHARS),
        )
        for entry in parsed.entries[:limit]
    ]


def fit(news: list[ContextItem], previous: list[ContextItem], budget: int) -> dict[str, Any]:
    """Keep items in order (news first, then posts) while they fit; record what was cut."""
    kept: dict[str, Any] = {"news": [], "previous": [], "cut": 0}
    used = 0
    for kind, items in (("news", news), ("previous", previous)):
        for item in items:
            size = len(item.title) + len(item.summary) + 8
            if used + size > budget:
                kept["cut"] += 1
                continue
            used += size
            kept[kind].append(item.to_dict())
    return kept


def render_context(context: dict[str, Any]) -> str:
    """The context as plain text for the prompt ("" when there is none)."""
    parts = []
    if context["news"]:
        lines = [f"- {i['title']}: {i['summary']}".rstrip(": ") for i in context["news"]]
        parts.append("Some recent news:\n" + "\n".join(lines))
    if context["previous"]:
        lines = [f"- {i['title']}: {i['summary']}".rstrip(": ") for i in context["previous"]]
        parts.append("Essays you have published before:\n" + "\n".join(lines))
    return "\n\n".join(parts)
